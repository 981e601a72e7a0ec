"""A streaming detector for many univariate series at once: every series is a column, every call to ``update``
is one time step, and the whole state is a handful of float arrays (memory per series is fixed, 72 bytes).

Per point and series:

1. *Online normalisation.* The point's deviation ``z`` from an exponentially weighted mean and variance; the
   point then updates them, clipped at ``clip`` standard deviations so one outlier does not drag the normal
   level. During the first ``learning_period`` points the weights are ``1/count`` (a plain running average), so
   a new series settles quickly.
2. *Short-term score.* ``|z|`` smoothed with weight ``short_window``: a burst of moderate deviations counts
   like one large one.
3. *Drift-adaptive threshold.* The short-term score is compared with its own long-term mean and variance (weight
   ``score_alpha``): the reported score is the Gaussian tail probability of that comparison (HTM's "anomaly
   likelihood" idea, Ahmad et al. 2017). A series whose noise or level drifts slowly moves its long-term
   statistics with it, so the alert threshold follows; a sudden change does not. The score is that tail
   probability as a surprise in decades, ``-log10(P)``: 3 means a one-in-1,000 short-term average.

An alert is a score above ``threshold`` once the series has passed its learning period. Missing points (NaN)
leave the state untouched and score 0. ``state()`` / ``from_state`` (and ``save`` / ``load``) checkpoint the
detector as plain arrays, so a restart continues exactly where it stopped.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from scipy.special import log_ndtr

from linewatch.core.estimator import Estimator
from linewatch.core.modelfiles import write_json_atomic
from linewatch.errors import LinewatchError, ModelFileError
from linewatch.sensors.methods import StreamParams

STATE = ("count", "mean", "var", "short", "long_mean", "long_var", "last_z", "alerts", "quiet")
STATE_VERSION = 1
SCALAR_SERIES = 8  # up to this many series, update_many runs a plain-float loop per series
_LN10 = math.log(10.0)
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def _surprise(u: float) -> float:
    """``-log10`` of the standard normal's upper tail beyond ``u`` (SciPy's ``log_ndtr(-u) / -ln 10``), for one
    float: ``erfc`` while it does not underflow, then the asymptotic series (relative error below 1e-10)."""
    if u < 37.0:
        return -math.log(0.5 * math.erfc(u / math.sqrt(2.0))) / _LN10
    r = 1.0 / (u * u)
    return (0.5 * u * u + math.log(u) + _HALF_LOG_2PI - math.log(1 - r + 3 * r * r - 15 * r * r * r)) / _LN10


class StreamingDetector(Estimator):
    """``StreamingDetector().start(n_series)`` then ``update(x)`` per time step (or ``update_many`` per block)."""

    engine = "sensors"
    method = "stream"
    Params = StreamParams

    def start(self, n_series: int, names: list[str] | None = None) -> StreamingDetector:
        """Fresh state for ``n_series`` series (the streaming counterpart of ``fit``: it learns as it goes)."""
        if n_series < 1:
            raise LinewatchError("a streaming detector needs at least one series")
        if names is not None and len(names) != n_series:
            raise LinewatchError(f"{len(names)} names for {n_series} series")
        self.params_ = self._validate_params()
        self.names_ = list(names) if names is not None else [f"s{i}" for i in range(n_series)]
        z = np.zeros(n_series)
        self.count_, self.mean_, self.var_, self.short_ = z.copy(), z.copy(), z.copy(), z.copy()
        self.long_mean_, self.long_var_, self.last_z_, self.alerts_ = z.copy(), z.copy(), z.copy(), z.copy()
        self.quiet_ = z.copy()
        return self

    @property
    def n_series(self) -> int:
        self._check_fitted()
        return len(self.count_)

    def update(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One time step: ``x`` holds one value per series (NaN: no reading). Returns each series' score
        (``-log10`` of the tail probability) and whether it alerts. Mutates the state: this is learning, not scoring."""
        self._check_fitted()
        x = np.asarray(x, dtype=float).reshape(-1)
        if x.shape[0] != len(self.count_):
            raise LinewatchError(f"expected {len(self.count_)} values (one per series), got {x.shape[0]}")
        p = self.params_
        seen = np.isfinite(x)
        count = self.count_ + seen
        sd = np.sqrt(self.var_)
        first = seen & (count == 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            z = np.where(seen & (sd > 0), (x - self.mean_) / np.where(sd > 0, sd, 1.0), 0.0)
        # a series whose history is constant: any move is a full-size deviation
        z = np.where(seen & (sd == 0) & ~first & (x != self.mean_), np.sign(x - self.mean_) * p["clip"], z)
        a = np.where(count <= p["learning_period"], 1.0 / np.maximum(count, 1), p["alpha"])
        a = np.maximum(a, p["alpha"])
        zc = np.clip(z, -p["clip"], p["clip"])
        xc = np.where(first, x, self.mean_ + zc * sd)
        xc = np.where(seen & (sd == 0), x, xc)
        delta = np.where(seen, xc - self.mean_, 0.0)
        a = np.where(seen, a, 0.0)
        self.mean_ = np.where(first, np.nan_to_num(x), self.mean_ + a * delta)
        self.var_ = np.where(first, 0.0, (1 - a) * (self.var_ + a * delta * delta))
        self.count_ = count
        raw = np.abs(z)
        b = np.where(seen, p["short_window"], 0.0)
        self.short_ = self.short_ + b * (raw - self.short_)
        la = np.where(seen, np.maximum(p["score_alpha"], 1.0 / np.maximum(count, 1)), 0.0)
        ld = self.short_ - self.long_mean_
        long_sd = np.sqrt(self.long_var_)
        with np.errstate(invalid="ignore", divide="ignore"):
            tail = log_ndtr(-ld / np.where(long_sd > 0, long_sd, 1.0)) / -np.log(10.0)
        score = np.where(seen & (long_sd > 0), tail, 0.0)
        self.long_mean_ = self.long_mean_ + la * ld
        self.long_var_ = (1 - la) * (self.long_var_ + la * ld * ld)
        self.last_z_ = np.where(seen, z, self.last_z_)
        quiet = self.quiet_ > 0
        alert = (score > p["threshold"]) & (count > p["learning_period"]) & ~quiet
        score = np.where(quiet & seen, 0.0, score)
        self.quiet_ = np.where(alert, float(p["suppress"]), np.maximum(self.quiet_ - seen, 0.0))
        self.alerts_ = self.alerts_ + alert
        return score, alert

    def update_many(self, block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Several time steps: ``block`` is (steps, series); returns scores and alerts of the same shape.

        Few series: each series runs through a plain-float loop (no NumPy call per point); many series: one
        vectorised step per row. Both compute the same recurrences; they differ only in rounding of the tail
        probability (``math.erfc`` against SciPy's ``log_ndtr``)."""
        self._check_fitted()
        block = np.asarray(block, dtype=float)
        if block.ndim == 1:
            block = block[:, None]
        if block.ndim != 2 or block.shape[1] != len(self.count_):
            raise LinewatchError(f"expected (steps, {len(self.count_)}) values, got shape {block.shape}")
        scores, alerts = np.empty_like(block), np.zeros(block.shape, dtype=bool)
        if block.shape[1] <= SCALAR_SERIES:
            for j in range(block.shape[1]):
                scores[:, j], alerts[:, j] = self._run_series(j, block[:, j])
            return scores, alerts
        for i, row in enumerate(block):
            scores[i], alerts[i] = self.update(row)
        return scores, alerts

    def _run_series(self, j: int, values: np.ndarray) -> tuple[list[float], list[bool]]:
        """The recurrences of :meth:`update` for series ``j`` over many points, in plain Python floats."""
        p = self.params_
        alpha, lp, clip, sw = float(p["alpha"]), int(p["learning_period"]), float(p["clip"]), float(p["short_window"])
        s_alpha, thr, suppress = float(p["score_alpha"]), float(p["threshold"]), float(p["suppress"])
        count, mean, var, short = (
            float(self.count_[j]),
            float(self.mean_[j]),
            float(self.var_[j]),
            float(self.short_[j]),
        )
        lmean, lvar, last_z, n_alerts, quiet = (
            float(self.long_mean_[j]),
            float(self.long_var_[j]),
            float(self.last_z_[j]),
            float(self.alerts_[j]),
            float(self.quiet_[j]),
        )
        sqrt, isfinite = math.sqrt, math.isfinite
        scores, alerts = [], []
        for x in values.tolist():
            if not isfinite(x):
                scores.append(0.0)
                alerts.append(False)
                continue
            count += 1.0
            sd = sqrt(var)
            if count == 1.0:
                z, mean, var = 0.0, x, 0.0
            else:
                if sd > 0:
                    z = (x - mean) / sd
                    zc = clip if z > clip else (-clip if z < -clip else z)
                    xc = mean + zc * sd
                else:
                    z = 0.0 if x == mean else (clip if x > mean else -clip)
                    xc = x
                a = 1.0 / count if count <= lp else alpha
                if a < alpha:
                    a = alpha
                delta = xc - mean
                mean = mean + a * delta
                var = (1 - a) * (var + a * delta * delta)
            short = short + sw * ((z if z >= 0 else -z) - short)
            la = 1.0 / count
            if la < s_alpha:
                la = s_alpha
            ld = short - lmean
            lsd = sqrt(lvar)
            score = _surprise(ld / lsd) if lsd > 0 else 0.0
            lmean = lmean + la * ld
            lvar = (1 - la) * (lvar + la * ld * ld)
            last_z = z
            if quiet > 0:
                scores.append(0.0)
                alerts.append(False)
                quiet -= 1.0
                continue
            alert = score > thr and count > lp
            if alert:
                quiet = suppress
                n_alerts += 1.0
            scores.append(score)
            alerts.append(alert)
        self.count_[j], self.mean_[j], self.var_[j], self.short_[j] = count, mean, var, short
        self.long_mean_[j], self.long_var_[j], self.last_z_[j] = lmean, lvar, last_z
        self.alerts_[j], self.quiet_[j] = n_alerts, quiet
        return scores, alerts

    def state(self) -> dict[str, np.ndarray]:
        self._check_fitted()
        return {k: getattr(self, f"{k}_").copy() for k in STATE}

    def save(self, path: Path) -> Path:
        """Checkpoint to a directory: ``state.json`` (parameters, series names) and ``state.npz`` (plain arrays)."""
        self._check_fitted()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        tmp = path / ".state.tmp.npz"
        np.savez(tmp, **self.state())
        tmp.replace(path / "state.npz")
        write_json_atomic(
            path / "state.json",
            {
                "engine": "sensors",
                "kind": "stream",
                "format_version": STATE_VERSION,
                "params": self.config(),
                "names": self.names_,
            },
        )
        return path

    @classmethod
    def load(cls, path: Path) -> StreamingDetector:
        path = Path(path)
        try:
            meta = json.loads((path / "state.json").read_text())
            arrays = np.load(path / "state.npz", allow_pickle=False)
        except (OSError, ValueError) as e:
            raise ModelFileError(f"{path} is not a streaming checkpoint ({e})") from None
        if meta.get("format_version", 0) > STATE_VERSION:
            version = meta["format_version"]
            raise ModelFileError(f"{path} was written by a newer linewatch (checkpoint format {version}): upgrade")
        det = cls(**meta["params"]).start(len(meta["names"]), meta["names"])
        for k in STATE:
            if k not in arrays or arrays[k].shape != (len(meta["names"]),):
                raise ModelFileError(f"{path}: the checkpoint's {k} array is missing or has the wrong shape")
            setattr(det, f"{k}_", arrays[k].astype(float))
        return det
