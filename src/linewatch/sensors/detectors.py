"""Table detectors for sensor rows: one base class that owns the feature pipeline, the held-out threshold and the
per-sensor attribution, and small adapters to PyOD and scikit-learn that only say how to build, fit and score
their model. The adapters wrap well-kept libraries rather than re-implement them (see ``METHODS``).

The learned model itself is never pickled: a saved detector keeps the (bounded) training features and rebuilds
its model from them at load, deterministically (fixed seeds), and checks that the rebuilt model reproduces the
scores it had when saved (see :mod:`linewatch.sensors.saving`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from linewatch.core.estimator import Estimator
from linewatch.errors import LinewatchError
from linewatch.sensors.features import FeaturePipeline
from linewatch.sensors.methods import (
    AutoEncoderParams,
    EnsembleParams,
    HBOSParams,
    IForestParams,
    MahalanobisParams,
    NeighboursParams,
    PCAParams,
    SensorParams,
)
from linewatch.sensors.thresholds import calibrate

Part = tuple[np.ndarray, "np.ndarray | None"]


class SensorDetector(Estimator, ABC):
    """``fit(values, times)`` on normal rows; ``score`` / ``predict`` / ``attribution`` on new rows.

    ``values`` is an ``(n, sensors)`` array (NaN for missing) or a list of ``(values, times)`` parts (files that
    windows must not span). The last ``holdout`` fraction of each part is kept out of the model's fit and sets
    ``threshold_`` at the target false-alarm rate.
    """

    engine = "sensors"
    Params = SensorParams

    # -- what an adapter provides --------------------------------------------------------------------------
    @abstractmethod
    def _fit_model(self, features: np.ndarray) -> object: ...

    @abstractmethod
    def _score_model(self, model: object, features: np.ndarray) -> np.ndarray: ...

    # -- the contract ---------------------------------------------------------------------------------------
    def fit(self, values, times: np.ndarray | None = None, *, sensors: list[str] | None = None):
        p = self._validate_params()
        parts = _parts(values, times)
        d = parts[0][0].shape[1]
        sensors = list(sensors) if sensors is not None else [f"s{i}" for i in range(d)]
        fit_parts, hold_parts = [], []
        for v, t in parts:
            n_hold = int(round(len(v) * p["holdout"]))
            if len(v) - n_hold < 2 or n_hold < 1:
                fit_parts.append((v, t))
                continue
            fit_parts.append((v[:-n_hold], None if t is None else t[:-n_hold]))
            hold_parts.append((v[-n_hold:], None if t is None else t[-n_hold:]))
        n_fit = sum(len(v) for v, _ in fit_parts)
        if n_fit < 20 or not hold_parts:
            raise LinewatchError(f"too few training rows ({sum(len(v) for v, _ in parts)}): give at least 50")
        pipe = FeaturePipeline(
            p["windows"],
            p["lags"],
            p["diffs"],
            p["normalise"],
            p["fill_limit"],
            p["gap_factor"],
            p["drift_ratio"],
            p["baseline_window"],
            p["scale_floor"],
        ).fit(fit_parts, sensors)
        train = np.vstack([pipe.transform(v, t) for v, t in fit_parts])
        if len(train) > p["max_train_rows"]:
            train = train[np.linspace(0, len(train) - 1, p["max_train_rows"]).astype(int)]
        hold = np.vstack([pipe.transform(v, t) for v, t in hold_parts])
        self.params_ = p
        self.pipeline_ = pipe
        self.train_features_ = train
        self.model_ = self._fit_model(train)
        hold_scores = self._score_model(self.model_, hold)
        self.threshold_ = calibrate(hold_scores, p["false_alarm_rate"]) * p["threshold_margin"]
        self.holdout_rows_ = len(hold)
        check = np.linspace(0, len(hold) - 1, min(len(hold), 64)).astype(int)
        self.check_features_, self.check_scores_ = hold[check], hold_scores[check]
        return self

    @property
    def sensors(self) -> list[str]:
        self._check_fitted()
        return self.pipeline_.sensors_

    def features(self, values: np.ndarray, times: np.ndarray | None = None) -> np.ndarray:
        self._check_fitted()
        return self.pipeline_.transform(np.asarray(values, dtype=float), times)

    def score(self, values: np.ndarray, times: np.ndarray | None = None) -> np.ndarray:
        """Anomaly score per row: higher is more anomalous; comparable with ``threshold_``."""
        return self.score_features(self.features(values, times))

    def score_features(self, features: np.ndarray) -> np.ndarray:
        self._check_fitted()
        return np.asarray(self._score_model(self.model_, features), dtype=float)

    def predict(self, values: np.ndarray, times: np.ndarray | None = None) -> np.ndarray:
        return self.score(values, times) > self.threshold_

    def attribution(self, features: np.ndarray) -> np.ndarray:
        """Each row's share of the anomaly per kept sensor (rows sum to 1): the squared standardised deviation
        of the sensor's features from normal. Model-agnostic, so every method's alerts name sensors alike."""
        self._check_fitted()
        idx = self.pipeline_.feature_sensor()
        sq = features**2
        per = np.zeros((len(features), len(self.pipeline_.kept)))
        np.add.at(per.T, idx, sq.T)
        total = per.sum(axis=1, keepdims=True)
        return np.divide(per, total, out=np.full_like(per, 1.0 / per.shape[1]), where=total > 0)

    def top_contributors(self, shares: np.ndarray, k: int | None = None) -> list[list[dict]]:
        k = k or self.params_["top_sensors"]
        kept = self.pipeline_.kept
        order = np.argsort(-shares, axis=1)[:, :k]
        return [
            [{"sensor": kept[j], "share": round(float(row[j]), 3)} for j in o]
            for o, row in zip(order, shares, strict=True)
        ]


def _parts(values, times) -> list[Part]:
    if isinstance(values, list):
        parts = [(np.asarray(v, dtype=float), None if t is None else np.asarray(t, dtype=float)) for v, t in values]
    else:
        if hasattr(values, "to_numpy"):
            values = values.to_numpy(dtype=float)
        parts = [(np.asarray(values, dtype=float), None if times is None else np.asarray(times, dtype=float))]
    if not parts or any(v.ndim != 2 for v, _ in parts):
        raise LinewatchError("sensor values must be a 2-D array (rows x sensors)")
    if len({v.shape[1] for v, _ in parts}) != 1:
        raise LinewatchError("every part must have the same sensor columns")
    return parts


class Mahalanobis(SensorDetector):
    """Squared Mahalanobis distance under a shrunk covariance (scikit-learn's LedoitWolf, or a fixed shrinkage):
    fast, no randomness, and robust with few training rows; the default."""

    method = "mahalanobis"
    Params = MahalanobisParams

    def _fit_model(self, features):
        from sklearn.covariance import LedoitWolf, ShrunkCovariance

        s = self.params_["shrinkage"]
        return (LedoitWolf() if s is None else ShrunkCovariance(shrinkage=s)).fit(features)

    def _score_model(self, model, features):
        return model.mahalanobis(features)


class PyodDetector(SensorDetector):
    """An adapter to one PyOD algorithm: subclasses name it and map our parameters to its constructor."""

    @abstractmethod
    def _make(self, features: np.ndarray):
        """The unfitted PyOD model for these training features."""

    def _fit_model(self, features):
        return self._make(features).fit(features)

    def _score_model(self, model, features):
        return model.decision_function(features)


class IForest(PyodDetector):
    method = "iforest"
    Params = IForestParams

    def _make(self, features):
        from pyod.models.iforest import IForest as M

        p = self.params_
        n = min(p["max_samples"], len(features))
        return M(n_estimators=p["n_estimators"], max_samples=n, random_state=p["seed"], n_jobs=1)


class TailProbabilities:
    """ECOD and COPOD scored inductively: each feature's left and right tail probability under the training
    rows' empirical CDF, combined as the papers do. PyOD's own ``decision_function`` for these two re-estimates
    the CDFs on the training rows plus the scored batch (a row's score then depends on the rows scored with it)
    and stores them on the model (scoring mutates it); here the CDFs are the training rows' only."""

    def __init__(self, combine: str):
        self.combine = combine

    def fit(self, X: np.ndarray) -> TailProbabilities:
        from scipy.stats import skew

        self.sorted_ = np.sort(X, axis=0)
        self.skew_ = np.sign(np.nan_to_num(skew(X, axis=0)))
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        n = len(self.sorted_)
        below = np.column_stack([np.searchsorted(c, x, side="right") for c, x in zip(self.sorted_.T, X.T, strict=True)])
        above = n - np.column_stack(
            [np.searchsorted(c, x, side="left") for c, x in zip(self.sorted_.T, X.T, strict=True)]
        )
        u_l = -np.log((below + 1) / (n + 1))
        u_r = -np.log((above + 1) / (n + 1))
        u_skew = u_l * -np.sign(self.skew_ - 1) + u_r * np.sign(self.skew_ + 1)
        both = np.maximum(u_l, u_r) if self.combine == "ecod" else (u_l + u_r) / 2
        return np.maximum(both, u_skew).sum(axis=1)


class ECOD(SensorDetector):
    """Empirical-CDF outlier detection (Li et al. 2022, PyOD's ECOD), parameter-free."""

    method = "ecod"

    def _fit_model(self, features):
        return TailProbabilities("ecod").fit(features)

    def _score_model(self, model, features):
        return model.decision_function(features)


class COPOD(ECOD):
    """Copula-based outlier detection (Li et al. 2020, PyOD's COPOD), parameter-free."""

    method = "copod"

    def _fit_model(self, features):
        return TailProbabilities("copod").fit(features)


class HBOS(PyodDetector):
    method = "hbos"
    Params = HBOSParams

    def _make(self, features):
        from pyod.models.hbos import HBOS as M

        return M(n_bins=self.params_["n_bins"])


class KNN(PyodDetector):
    method = "knn"
    Params = NeighboursParams

    def _make(self, features):
        from pyod.models.knn import KNN as M

        return M(n_neighbors=_neighbours(self.params_["n_neighbors"], features))


def _neighbours(k: int, features: np.ndarray) -> int:
    """``n_neighbors`` when the training rows have more than that many rows, else the product's error."""
    if k >= len(features):
        raise LinewatchError(f"n_neighbors {k} needs more than {k} training rows; the fit has {len(features)}")
    return k


class LOF(PyodDetector):
    """Scored as a novelty detector: new rows are compared with the training rows' neighbourhoods."""

    method = "lof"
    Params = NeighboursParams

    def _make(self, features):
        from pyod.models.lof import LOF as M

        return M(n_neighbors=_neighbours(self.params_["n_neighbors"], features), novelty=True)


class PCA(PyodDetector):
    method = "pca"
    Params = PCAParams

    def _make(self, features):
        from pyod.models.pca import PCA as M

        n = self.params_["n_components"]
        if n is not None and n >= 1:
            most = min(features.shape)
            if not float(n).is_integer() or n > most:
                raise LinewatchError(
                    f"n_components {n:g} must be a fraction below 1 (the variance explained) or a whole number of "
                    f"components up to {most} (the training rows' features and rows allow no more)"
                )
        return M(n_components=None if n is None else (n if n < 1 else int(n)), random_state=self.params_["seed"])


class AutoEncoder(PyodDetector):
    method = "autoencoder"
    Params = AutoEncoderParams

    def _make(self, features):
        from pyod.models.auto_encoder import AutoEncoder as M

        p = self.params_
        return M(
            hidden_neuron_list=list(p["hidden"]),
            epoch_num=p["epochs"],
            batch_size=min(p["batch_size"], len(features)),  # PyOD trains no step at all on a larger batch
            lr=p["learning_rate"],
            random_state=p["seed"],
            device="cpu",
            verbose=0,
            preprocessing=False,
        )

    def _fit_model(self, features):
        import torch

        torch.manual_seed(self.params_["seed"])
        return self._make(features).fit(features.astype(np.float32))

    def _score_model(self, model, features):
        return model.decision_function(features.astype(np.float32))


class Ensemble(SensorDetector):
    """Rank-averaged members: each member's score becomes its rank among its own training scores (beyond the
    largest, it keeps growing in units of that score's spread), and the ranks are averaged. Scores of different
    scales then vote alike."""

    method = "ensemble"
    Params = EnsembleParams

    def _check_params(self, values):
        from linewatch.sensors.methods import METHODS

        if not values["members"]:
            raise LinewatchError("an ensemble needs at least one member method")
        for name in values["members"]:
            if name == "ensemble":
                raise LinewatchError("an ensemble cannot contain an ensemble")
            METHODS[name]  # noqa: B018 - raises the registry's error for an unknown name

    def _members(self) -> list[SensorDetector]:
        from linewatch.sensors.methods import METHODS

        out = []
        for name in self.params_["members"]:
            det = METHODS.create(name, seed=self.params_["seed"])
            det.params_ = det._validate_params()
            out.append(det)
        return out

    def _fit_model(self, features):
        fitted = []
        for det in self._members():
            model = det._fit_model(features)
            ref = np.sort(det._score_model(model, features))
            fitted.append((det, model, ref))
        return fitted

    def _score_model(self, model, features):
        ranks = []
        for det, m, ref in model:
            s = det._score_model(m, features)
            r = np.searchsorted(ref, s, side="right") / len(ref)
            spread = max(ref[-1] - ref[len(ref) // 2], 1e-12)
            ranks.append(r + np.maximum(s - ref[-1], 0) / spread)
        return np.mean(ranks, axis=0)
