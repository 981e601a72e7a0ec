"""A fitted table detector (``linewatch sensors fit``: mahalanobis, PCA, …) scoring rows as they arrive.

A table detector's features of a row look back over earlier rows (rolling windows, lags, differences, a wandering
sensor's recent level, values carried forward over short gaps). :class:`LiveTable` keeps just enough of the newest
rows (``context``) to give every new row the features it would have had in one batch over the whole stream, so a
stream scored in pieces of any size scores as the whole stream at once. Its state is those rows and their times
(``state.json`` + ``state.npz``, no pickle); the fitted detector stays in its own model directory.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from linewatch.core.modelfiles import write_json_atomic
from linewatch.errors import ModelFileError

STATE_VERSION = 1


class LiveTable:
    """``LiveTable(detector)`` then ``update(values, times)`` per batch of new rows (oldest first)."""

    def __init__(self, det):
        det._check_fitted()
        self.det = det
        p = det.pipeline_
        reach = [*(w - 1 for w in p.windows), *p.lags, *p.diffs, 0]
        if p.wandering_.any():
            reach.append(p.baseline_window - 1)
        #: rows of history a new row's features read: the longest look-back plus the values carried forward into it
        self.context = max(reach) + p.fill_limit
        self.values_ = np.empty((0, len(p.sensors_)))
        self.times_: np.ndarray | None = None

    @property
    def names_(self) -> list[str]:
        return list(self.det.sensors)

    @property
    def n_series(self) -> int:
        return len(self.det.sensors)

    @property
    def threshold(self) -> float:
        return float(self.det.threshold_)

    def update(self, values: np.ndarray, times: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Score new rows ``(n, sensors)`` (NaN where a sensor has no reading), ``times`` in seconds or None for
        evenly spaced rows: (score per row, each sensor's share of it per row (rows sum to 1), alert per row)."""
        values = np.asarray(values, dtype=float)
        n = len(values)
        if values.ndim != 2 or values.shape[1] != self.n_series:
            raise ValueError(f"expected rows of {self.n_series} sensors, got an array of shape {values.shape}")
        if (times is None) != (self.times_ is None) and len(self.values_):
            raise ValueError("give times with every batch or with none")
        if n == 0:
            return np.empty(0), np.empty((0, self.n_series)), np.empty(0, bool)
        rows = np.vstack([self.values_, values])
        t = None if times is None else np.concatenate([self.times_ if self.times_ is not None else [], times])
        feats = self.det.features(rows, t)[-n:]
        scores = self.det.score_features(feats)
        shares = np.zeros((n, self.n_series))
        shares[:, ~self.det.pipeline_.constant_] = self.det.attribution(feats)
        self.values_ = rows[-self.context :]
        self.times_ = None if t is None else np.asarray(t[-self.context :], dtype=float)
        return scores, shares, scores > self.det.threshold_

    def state(self) -> dict[str, np.ndarray]:
        out = {"values": self.values_}
        if self.times_ is not None:
            out["times"] = self.times_
        return out

    def save(self, path: Path) -> Path:
        """The rows kept (not the detector): ``state.json`` + ``state.npz``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        np.savez(path / "state.npz", **self.state())
        write_json_atomic(
            path / "state.json",
            {"kind": "live_table", "state_version": STATE_VERSION, "method": self.det.method, "sensors": self.names_},
        )
        return path

    def restore(self, path: Path) -> LiveTable:
        """Take back the rows a ``save`` kept, for the same detector's sensors."""
        path = Path(path)
        try:
            meta = json.loads((path / "state.json").read_text())
            with np.load(path / "state.npz", allow_pickle=False) as z:
                values = np.asarray(z["values"], dtype=float)
                times = np.asarray(z["times"], dtype=float) if "times" in z.files else None
        except (OSError, ValueError, KeyError) as e:
            raise ModelFileError(f"{path}: not a live table state ({e})") from None
        if meta.get("kind") != "live_table" or meta.get("sensors") != self.names_:
            raise ModelFileError(f"{path}: the live state of another model")
        if values.ndim != 2 or values.shape[1] != self.n_series or (times is not None and len(times) != len(values)):
            raise ModelFileError(f"{path}: the kept rows do not fit the model")
        self.values_, self.times_ = values[-self.context :], None if times is None else times[-self.context :]
        return self
