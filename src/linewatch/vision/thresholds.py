"""Decision thresholds learned from good images only, and the score normalisation stored with a model.
numpy only."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import NormalDist

import numpy as np

from linewatch.errors import ModelFileError


@dataclass(frozen=True)
class Calibration:
    """Image and pixel thresholds at a target false-alarm rate on held-out good images.

    Normalised score = sigmoid((raw - threshold) / scale): 0.5 at the threshold, in (0, 1),
    with ``scale`` the spread of held-out good scores so that the number means the same across models.
    """

    image_threshold: float
    image_scale: float
    pixel_threshold: float
    pixel_scale: float
    false_alarm_rate: float
    holdout_images: int

    def normalize(self, raw: np.ndarray | float) -> np.ndarray | float:
        return _sigmoid((np.asarray(raw, dtype=np.float64) - self.image_threshold) / self.image_scale)

    def normalize_map(self, amap: np.ndarray) -> np.ndarray:
        z = (amap.astype(np.float64) - self.pixel_threshold) / self.pixel_scale
        return _sigmoid(z).astype(np.float32)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Calibration:
        """The calibration a manifest holds; ModelFileError when it is not one (a manifest edited by hand or damaged):
        thresholds finite, spreads above 0, the rate in (0, 1), a count of images."""
        if not isinstance(d, dict) or any(k not in d for k in cls.__dataclass_fields__):
            raise ModelFileError(f"the manifest's calibration lacks {', '.join(cls.__dataclass_fields__)}")
        values = {k: d[k] for k in cls.__dataclass_fields__}
        for k, v in values.items():
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise ModelFileError(f"the manifest's calibration.{k} is {v!r}, not a finite number")
        bad = [k for k in ("image_scale", "pixel_scale") if values[k] <= 0]
        if not 0 < values["false_alarm_rate"] < 1:
            bad.append("false_alarm_rate")
        if values["holdout_images"] < 0 or not float(values["holdout_images"]).is_integer():
            bad.append("holdout_images")
        if bad:
            raise ModelFileError(f"the manifest's calibration.{bad[0]} is {values[bad[0]]!r}: out of its range")
        values["holdout_images"] = int(values["holdout_images"])
        return cls(**values)


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))


#: the least spread of held-out good scores a fitted threshold assumes, relative to their mean. Scores of identical
#: images differ by rounding alone (kernels that depend on the batch, the 8-bit search, ONNX Runtime against PyTorch),
#: and a threshold at their mean would flag the training images themselves. Real good images spread by more (the
#: standard deviation is 2.4 % of the mean on bottle, 7.5 % on magnetic_tile), so this binds only where they do not
MIN_SPREAD = 0.01


def threshold_at_false_alarm_rate(good_scores: np.ndarray, rate: float) -> float:
    """The score above which a fraction ``rate`` of good parts would be flagged.

    The empirical quantile alone is too low when there are fewer held-out images than 1 / rate (it can
    be no higher than the largest score seen), so the threshold is the larger of it and the quantile of a
    normal distribution fitted to the scores (whose spread is taken as at least ``MIN_SPREAD`` of their mean).
    """
    s = np.asarray(good_scores, dtype=np.float64)
    if s.size == 0:
        raise ValueError("need at least one held-out good image to set a threshold")
    empirical = float(np.quantile(s, 1.0 - rate))
    if s.size < 2:
        return empirical
    spread = max(float(s.std(ddof=1)), MIN_SPREAD * abs(float(s.mean())))
    fitted = float(s.mean() + NormalDist().inv_cdf(1.0 - rate) * spread)
    return max(empirical, fitted)


def _spread(scores: np.ndarray) -> float:
    s = np.asarray(scores, dtype=np.float64)
    spread = float(np.std(s)) if s.size > 1 else 0.0
    return spread if spread > 1e-12 else max(abs(float(np.mean(s))) * 0.05, 1e-6)


def calibrate(
    good_image_scores: np.ndarray, good_map_peaks: np.ndarray, rate: float = 0.01, floor: float = 0.0
) -> Calibration:
    """Thresholds from held-out good images: image scores and the peak of each smoothed anomaly map; neither below
    ``floor`` (a score the method never calls a defect, such as PaDiM's one standard deviation)."""
    return Calibration(
        image_threshold=max(threshold_at_false_alarm_rate(good_image_scores, rate), floor),
        image_scale=_spread(good_image_scores),
        pixel_threshold=max(threshold_at_false_alarm_rate(good_map_peaks, rate), floor),
        pixel_scale=_spread(good_map_peaks),
        false_alarm_rate=rate,
        holdout_images=int(np.asarray(good_image_scores).size),
    )


def f1_optimal_threshold(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(threshold, F1) maximising F1 of "anomalous" over labelled images (labels: 1 = defect)."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    if y.sum() == 0:
        return float("nan"), float("nan")
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    tp = np.cumsum(y)
    fp = np.cumsum(~y)
    # only cut where the score changes, so tied scores are not split
    last = np.r_[s[1:] != s[:-1], True]
    tp, fp, cut = tp[last], fp[last], s[last]
    f1 = 2 * tp / (tp + fp + y.sum())
    best = int(np.argmax(f1))
    return float(cut[best]), float(f1[best])
