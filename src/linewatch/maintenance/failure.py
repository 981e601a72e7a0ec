"""Failure risk from machine readings (AI4I-like tables): a calibrated probability of any failure and of each
failure mode the table labels.

Rows are taken in the table's order, which is time. Each target gets ``folds`` gradient-boosted models, each
trained without one contiguous time block; their predictions on the block they did not see fit a Platt scaling,
so the probabilities are calibrated on data later (or earlier) than what the model learned, not on shuffled
neighbours. The final log-odds are the members' mean, then scaled. Features are the numeric readings, small
categories as codes, and every pairwise product and difference of the readings: failure physics such as power
(torque x speed), strain (wear x torque) and heat dissipation (process - air temperature) are such terms, and
trees cannot form them from single features."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

from linewatch.core.estimator import Estimator
from linewatch.errors import LinewatchError
from linewatch.maintenance.methods import FailureParams
from linewatch.maintenance.tables import LABEL_NAMES, MODE_PATTERN, DataError, read_table
from linewatch.maintenance.trees import forest_arrays, forest_raw

ID_NAMES = ("udi", "id", "rowid", "unit", "machine", "machineid")
MAX_CATEGORIES = 20
ANY = "any"


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def _is_binary(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s) and set(pd.unique(s.dropna())) <= {0, 1}


def as_table(data: Any) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        return data.set_axis([str(c) for c in data.columns], axis=1)
    if isinstance(data, str) or hasattr(data, "__fspath__"):
        df = read_table(data)
        return df.set_axis([str(c) for c in df.columns], axis=1)
    raise LinewatchError(f"failure data must be a file path or a DataFrame, not {type(data).__name__}")


def row_ids(df: pd.DataFrame) -> np.ndarray:
    """The table's id column (UDI, id, ...) when it has one, else the row number from 1."""
    keys = {_key(c): c for c in df.columns}
    col = next((keys[k] for k in ID_NAMES if k in keys), None)
    if col is not None and pd.api.types.is_integer_dtype(df[col]):
        return df[col].to_numpy(dtype=np.int64)
    return np.arange(1, len(df) + 1, dtype=np.int64)


def label_columns(df: pd.DataFrame, target: str | None, modes: list[str] | None) -> tuple[str, list[str]]:
    cols = list(df.columns)
    if target is None:
        keys = {_key(c): c for c in cols}
        target = next((keys[k] for k in LABEL_NAMES if k in keys), None)
        if target is None:
            raise DataError(
                "no failure label column found (looked for 'Machine failure', 'failure'): name it with "
                "--label-column or in the table"
            )
    if target not in cols:
        raise DataError(f"the table has no label column {target!r}")
    if modes is None:
        modes = [c for c in cols if c != target and re.fullmatch(MODE_PATTERN, c) and _is_binary(df[c])]
    missing = [m for m in modes if m not in cols]
    if missing:
        raise DataError(f"the table has no failure-mode column(s) {', '.join(missing)}")
    for c in (target, *modes):
        if not _is_binary(df[c]):
            raise DataError(f"label column {c!r} must hold only 0 and 1")
    return target, list(modes)


@dataclass
class FailurePrediction:
    ids: np.ndarray
    probability: np.ndarray  # (n,) any failure
    modes: dict[str, np.ndarray]  # mode -> (n,)

    def records(self) -> list[dict[str, Any]]:
        out = []
        for i, row_id in enumerate(self.ids):
            rec: dict[str, Any] = {"unit": int(row_id), "failure_probability": round(float(self.probability[i]), 6)}
            if self.modes:
                rec["modes"] = {m: round(float(p[i]), 6) for m, p in self.modes.items()}
            out.append(rec)
        return out


class FailureRisk(Estimator):
    engine = "maintenance"
    method = "boosted"
    Params = FailureParams

    def _features(self, df: pd.DataFrame, source: str = "the table") -> np.ndarray:
        missing = [c for c in (*self.numeric_, *self.categories_) if c not in df.columns]
        if missing:
            raise DataError(f"{source} lacks the column(s) the model was trained on: {', '.join(missing[:8])}")
        try:
            num = df[self.numeric_].to_numpy(dtype=np.float64, copy=True)
        except (ValueError, TypeError):
            raise DataError(f"{source}: the columns {', '.join(self.numeric_)} must be numbers") from None
        num[~np.isfinite(num)] = np.nan  # an empty reading: the trees send missing values down a learned branch
        parts = [num]
        for c, values in self.categories_.items():
            codes = {v: float(i) for i, v in enumerate(values)}
            parts.append(np.array([codes.get(str(v), np.nan) for v in df[c]])[:, None])
        for i, j in combinations(range(num.shape[1]), 2):
            parts.append((num[:, i] * num[:, j])[:, None])
            parts.append((num[:, i] - num[:, j])[:, None])
        return np.hstack(parts)

    def missing_readings(self, data: Any) -> int:
        """How many of the model's numeric readings in ``data`` are empty (or not finite): the trees take them as
        missing values."""
        self._check_fitted()
        df = as_table(data)
        cols = [c for c in self.numeric_ if c in df.columns]
        values = df[cols].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
        return int((~np.isfinite(values)).sum())

    def fit(self, data: Any) -> FailureRisk:
        """Learn from a table of readings with 0/1 failure labels, rows in time order."""
        self.params_ = None
        p = self._validate_params()
        df = as_table(data)
        target, modes = label_columns(df, p["label_column"], p["modes"])
        unlabelled = df[[target, *modes]].isna().any(axis=1).to_numpy()
        if unlabelled.all():
            raise DataError(f"no row has a label in {target!r}{' and the mode columns' if modes else ''}")
        if unlabelled.any():  # a row without its outcome is left out: there is nothing to learn from it
            df = df[~unlabelled].reset_index(drop=True)
        labels = {ANY: df[target].to_numpy(dtype=np.int64), **{m: df[m].to_numpy(dtype=np.int64) for m in modes}}
        if labels[ANY].sum() < p["folds"]:
            raise LinewatchError(f"{int(labels[ANY].sum())} failure(s) in the data: too few to learn from")
        if len(labels[ANY]) - labels[ANY].sum() < p["folds"]:
            raise LinewatchError(
                f"{int(len(labels[ANY]) - labels[ANY].sum())} row(s) without a failure in the data: a failure risk "
                "is learnt from normal rows beside the failures"
            )
        t0 = time.perf_counter()
        keys = {_key(c): c for c in df.columns}
        skip = {target, *modes, *(keys[k] for k in ID_NAMES if k in keys)}
        _refuse_stray_text(df, skip)
        empty = [c for c in df.columns if c not in skip and df[c].isna().all()]
        self.numeric_ = [
            c
            for c in df.columns
            if c not in skip and c not in empty and pd.api.types.is_numeric_dtype(df[c]) and not _is_binary_label(c, df)
        ]
        self.categories_ = {}
        for c in df.columns:
            if c in skip or pd.api.types.is_numeric_dtype(df[c]):
                continue
            values = sorted(map(str, pd.unique(df[c].dropna())))
            if len(values) <= MAX_CATEGORIES:
                self.categories_[c] = values
        if not self.numeric_:
            raise DataError("the table has no numeric reading columns to learn from")
        from threadpoolctl import threadpool_limits

        x = self._features(df)
        block = np.minimum(np.arange(len(df)) * p["folds"] // len(df), p["folds"] - 1)
        self.forests_, self.scaling_ = {}, {}
        with threadpool_limits(limits=p["threads"] or None):  # the boosting's OpenMP threads
            for name, y in labels.items():
                members, oof = [], np.zeros(len(y))
                for k in range(p["folds"]):
                    forest = _fit_forest(x[block != k], y[block != k], p)
                    members.append(forest)
                    oof[block == k] = forest_raw(forest, x[block == k])
                self.forests_[name] = members
                self.scaling_[name] = _platt(oof, y)
        self.target_, self.modes_ = target, modes
        self.train_info_ = {
            "rows": len(df),
            "unlabelled_rows": int(unlabelled.sum()),
            "failures": {n: int(y.sum()) for n, y in labels.items()},
            "features": int(x.shape[1]),
            "empty_columns": [str(c) for c in empty],
            "seconds": round(time.perf_counter() - t0, 2),
        }
        self.params_ = p
        return self

    def predict(self, data: Any) -> FailurePrediction:
        self._check_fitted()
        df = as_table(data)
        x = self._features(df)
        probs = {name: self._probability(name, x) for name in self.forests_}
        return FailurePrediction(row_ids(df), probs.pop(ANY), probs)

    def _probability(self, name: str, x: np.ndarray) -> np.ndarray:
        raw = np.mean([forest_raw(f, x) for f in self.forests_[name]], axis=0)
        a, b = self.scaling_[name]
        return 1.0 / (1.0 + np.exp(-(a * raw + b)))


def _is_binary_label(c: str, df: pd.DataFrame) -> bool:
    """Mode-like 0/1 columns (TWF, HDF ...) are labels even when not asked for: never features."""
    return bool(re.fullmatch(MODE_PATTERN, c)) and _is_binary(df[c])


def _fit_forest(x: np.ndarray, y: np.ndarray, p: dict[str, Any]) -> dict[str, np.ndarray]:
    """Boosted trees; a constant log-odds (no trees) when the block has too few positives to learn from."""
    pos = int(y.sum())
    if pos < 2 or pos > len(y) - 2:
        prior = (pos + 0.5) / (len(y) + 1.0)
        return forest_arrays_constant(np.log(prior / (1 - prior)))
    from sklearn.ensemble import HistGradientBoostingClassifier

    clf = HistGradientBoostingClassifier(
        max_iter=p["max_iter"],
        learning_rate=p["learning_rate"],
        max_leaf_nodes=p["max_leaf_nodes"],
        early_stopping=False,
        random_state=p["seed"],
    ).fit(x, y)
    return forest_arrays(clf)


def forest_arrays_constant(log_odds: float) -> dict[str, np.ndarray]:
    empty_i, empty_f = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    return {
        "roots": empty_i,
        "feature": empty_i,
        "threshold": empty_f,
        "missing_left": empty_i,
        "left": empty_i,
        "right": empty_i,
        "leaf": empty_i,
        "value": empty_f,
        "baseline": np.array([log_odds]),
    }


def _platt(raw: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Platt scaling of held-out log-odds: ``sigmoid(a * raw + b)``; identity when a block had one class only."""
    if y.min() == y.max():
        return 1.0, 0.0
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=1e4).fit(raw[:, None], y)
    return float(lr.coef_[0, 0]), float(lr.intercept_[0])


def _refuse_stray_text(df: pd.DataFrame, skip: set) -> None:
    """A reading column that is numbers but for a few cells of text is a typo, not a category: refused with the cell,
    as ``predict`` refuses it (left to the categories, the readings would silently drop out of the model)."""
    for c in df.columns:
        if c in skip or pd.api.types.is_numeric_dtype(df[c]):
            continue
        cells = df[c].dropna().astype(str).str.strip()
        cells = cells[cells != ""]
        numbers = pd.to_numeric(cells, errors="coerce")
        if len(cells) and numbers.notna().mean() >= 0.95:
            i = numbers.isna().to_numpy().argmax()
            raise DataError(
                f"column {c!r} holds numbers but for {int(numbers.isna().sum())} cell(s) such as {cells.iloc[i]!r} "
                f"(row {cells.index[i] + 2}): correct or empty them"
            )
