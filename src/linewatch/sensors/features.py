"""The feature pipeline: how rows of several sensors become the vectors a table detector scores.

Declared by a few numbers (``windows``, ``lags``, ``diffs``, ``normalise``, ``fill_limit``, ``gap_factor``),
learned on the training rows, stored as JSON with the model. Per sensor it produces: the normalised value,
a rolling mean and a rolling standard deviation per window (a level shift moves the mean, a burst or a frozen
sensor moves the std), lagged copies and differences. Every feature is then standardised by its training
mean and std, so distance-based detectors weigh sensors alike and attribution can compare them.

Data problems and what happens to them:

- Missing values (NaN, empty cells, inf): carried forward for at most ``fill_limit`` rows; a longer gap reads
  as the sensor's training centre, so a dead sensor does not raise alerts by itself and does not hide others.
- Gaps in time (a step over ``gap_factor`` times the training's median step): a new segment starts; rolling
  windows, lags and differences never reach across it.
- Irregular sampling: windows, lags and differences count rows, not seconds; with a time column, only gaps
  (above) are detected. Resample first if the rate varies a lot within a segment.
- Start of a segment (too little history for a window, a lag or a difference): that feature reads as its
  training mean (neutral) until the history exists, so a fresh file does not alert on its first rows.
- Constant sensors (no spread in the training rows): left out of the model and listed in its manifest; the
  detector cannot learn what normal variation of such a sensor is.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from linewatch.errors import LinewatchError

_TINY = 1e-9


@dataclass
class FeaturePipeline:
    windows: list[int] = field(default_factory=lambda: [10, 30])
    lags: list[int] = field(default_factory=list)
    diffs: list[int] = field(default_factory=lambda: [1])
    normalise: str = "robust"
    fill_limit: int = 5
    gap_factor: float = 5.0
    drift_ratio: float = 0.0
    baseline_window: int = 120
    scale_floor: float = 0.0

    def fit(self, parts: list[tuple[np.ndarray, np.ndarray | None]], sensors: list[str]) -> FeaturePipeline:
        """Learn per-sensor scaling and per-feature standardisation from training ``(values, times)`` parts."""
        if any(w < 1 for w in self.windows) or any(k < 1 for k in self.lags + self.diffs):
            raise LinewatchError("windows, lags and diffs must be positive row counts")
        values = np.vstack([v for v, _ in parts])
        if values.shape[1] != len(sensors):
            raise LinewatchError(f"{values.shape[1]} value columns for {len(sensors)} sensors")
        self.sensors_ = list(sensors)
        empty = [s for s, ok in zip(sensors, np.isfinite(values).any(axis=0), strict=True) if not ok]
        if empty:
            raise LinewatchError(f"sensor {', '.join(map(repr, empty))} has no values in the training data")
        with np.errstate(all="ignore"):
            if self.normalise == "robust":
                q1, center, q3 = np.nanpercentile(values, [25, 50, 75], axis=0)
                scale = (q3 - q1) / 1.349
                std = np.nanstd(values, axis=0)
                scale = np.where(scale > _TINY * (1 + np.abs(center)), scale, std)
            else:
                center, scale = np.nanmean(values, axis=0), np.nanstd(values, axis=0)
        self.constant_ = ~(scale > _TINY * (1 + np.abs(center)))
        if self.constant_.all():
            raise LinewatchError(f"every sensor is constant in the training data ({', '.join(sensors)})")
        self.center_, self.scale_ = center, np.where(self.constant_, 1.0, scale)
        steps = [np.diff(t) for _, t in parts if t is not None and len(t) > 1]
        self.step_ = float(np.median(np.concatenate(steps))) if steps else None
        self.wandering_ = np.zeros(len(sensors), dtype=bool)
        self.wandering_[~self.constant_] = self._wandering(parts)
        raw = np.vstack([self._raw(v, t) for v, t in parts])
        with np.errstate(all="ignore"):
            mean, std = np.nanmean(raw, axis=0), np.nanstd(raw, axis=0)
        self.feature_mean_ = np.nan_to_num(mean)
        std = np.nan_to_num(std)
        if self.scale_floor:
            # a feature's spread is at least scale_floor x its sensor's value spread: a rolling mean or std that
            # barely moved in training does not turn a small sustained offset into a large deviation
            k = int((~self.constant_).sum())
            std = np.maximum(std, self.scale_floor * np.tile(std[:k], len(self.kinds())))
        self.feature_scale_ = np.where(std > _TINY, std, 1.0)
        return self

    def _wandering(self, parts: list[tuple[np.ndarray, np.ndarray | None]]) -> np.ndarray:
        """Per kept sensor: does its level wander in the training rows? Its spread over the whole training data
        against its short-term noise (the spread around a centred 10-row mean, within each segment): about 1 for
        a sensor whose level is steady, large for one that drifts (a temperature warming up, a slowly moving
        baseline). Such a sensor's level is judged against its own recent past, not the training level."""
        if not self.drift_ratio:
            return np.zeros(int((~self.constant_).sum()), dtype=bool)
        spread, noise = [], []
        for v, t in parts:
            z = self.normalised(np.asarray(v, dtype=float))
            for s in self.segments(t, len(z)):
                df = pd.DataFrame(z[s])
                spread.append(df)
                noise.append(df - df.rolling(10, center=True, min_periods=1).mean())
        with np.errstate(all="ignore"):
            total = pd.concat(spread).std().to_numpy()
            short = pd.concat(noise).std().to_numpy()
        return np.nan_to_num(total / np.where(short > _TINY, short, np.inf)) > self.drift_ratio

    @property
    def kept(self) -> list[str]:
        return [s for s, c in zip(self.sensors_, self.constant_, strict=True) if not c]

    def kinds(self) -> list[str]:
        """What each of a sensor's features is, in order (the same for every sensor)."""
        return (
            ["value"]
            + [f"{k}{w}" for w in self.windows for k in ("mean", "std")]
            + [f"lag{k}" for k in self.lags]
            + [f"diff{k}" for k in self.diffs]
        )

    def feature_names(self) -> list[str]:
        return [f"{s}:{k}" for k in self.kinds() for s in self.kept]

    def feature_sensor(self) -> np.ndarray:
        """For each feature column, the index (into ``kept``) of the sensor it comes from."""
        return np.tile(np.arange(len(self.kept)), len(self.kinds()))

    def transform(self, values: np.ndarray, times: np.ndarray | None = None) -> np.ndarray:
        """Standardised features, one row per input row, no NaN."""
        if values.shape[1] != len(self.sensors_):
            raise LinewatchError(f"expected {len(self.sensors_)} sensor columns, got {values.shape[1]}")
        raw = self._raw(values, times)
        out = (raw - self.feature_mean_) / self.feature_scale_
        return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)

    def normalised(self, values: np.ndarray) -> np.ndarray:
        keep = ~self.constant_
        return (values[:, keep] - self.center_[keep]) / self.scale_[keep]

    def segments(self, times: np.ndarray | None, n: int) -> list[slice]:
        if times is None or self.step_ is None or n < 2:
            return [slice(0, n)]
        cuts = np.flatnonzero(np.diff(times) > self.gap_factor * self.step_) + 1
        bounds = [0, *cuts.tolist(), n]
        return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]

    def _raw(self, values: np.ndarray, times: np.ndarray | None) -> np.ndarray:
        """Unstandardised features with NaN where a feature lacks history."""
        z = self.normalised(np.asarray(values, dtype=float))
        blocks = [self._segment(z[s]) for s in self.segments(times, len(z))]
        return np.vstack(blocks) if blocks else np.empty((0, len(self.kinds()) * z.shape[1]))

    def _segment(self, z: np.ndarray) -> np.ndarray:
        df = pd.DataFrame(z).ffill(limit=self.fill_limit) if self.fill_limit else pd.DataFrame(z)
        df = df.fillna(0.0)
        wander = self.wandering_[~self.constant_]
        base = np.zeros(df.shape)
        if wander.any():
            b = self.baseline_window
            base[:, wander] = df.loc[:, wander].rolling(b, min_periods=max(2, b // 4)).mean().to_numpy()
        cols = [df.to_numpy() - base]
        for w in self.windows:
            roll = df.rolling(w, min_periods=max(2, w // 2))
            cols += [roll.mean().to_numpy() - base, roll.std(ddof=0).to_numpy()]
        cols += [df.shift(k).to_numpy() for k in self.lags]
        cols += [df.diff(k).to_numpy() for k in self.diffs]
        return np.hstack(cols)

    def state(self) -> dict:
        """JSON-ready: the declaration and what was learned."""
        return {
            "windows": self.windows,
            "lags": self.lags,
            "diffs": self.diffs,
            "normalise": self.normalise,
            "fill_limit": self.fill_limit,
            "gap_factor": self.gap_factor,
            "drift_ratio": self.drift_ratio,
            "baseline_window": self.baseline_window,
            "scale_floor": self.scale_floor,
            "wandering": [bool(w) for w in self.wandering_],
            "sensors": self.sensors_,
            "constant": [bool(c) for c in self.constant_],
            "center": self.center_.tolist(),
            "scale": self.scale_.tolist(),
            "step": self.step_,
            "feature_mean": self.feature_mean_.tolist(),
            "feature_scale": self.feature_scale_.tolist(),
        }

    @classmethod
    def from_state(cls, s: dict) -> FeaturePipeline:
        p = cls(s["windows"], s["lags"], s["diffs"], s["normalise"], s["fill_limit"], s["gap_factor"])
        p.drift_ratio, p.baseline_window = s.get("drift_ratio", 0.0), s.get("baseline_window", 120)
        p.scale_floor = s.get("scale_floor", 0.0)
        p.sensors_ = list(s["sensors"])
        p.wandering_ = np.array(s.get("wandering", [False] * len(p.sensors_)), dtype=bool)
        p.constant_ = np.array(s["constant"], dtype=bool)
        p.center_, p.scale_ = np.array(s["center"], dtype=float), np.array(s["scale"], dtype=float)
        p.step_ = s["step"]
        p.feature_mean_ = np.array(s["feature_mean"], dtype=float)
        p.feature_scale_ = np.array(s["feature_scale"], dtype=float)
        return p
