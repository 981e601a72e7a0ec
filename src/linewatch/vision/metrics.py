"""Anomaly detection metrics: image and pixel AUROC (scikit-learn), AUPRO, F1-max, rates at a threshold."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from linewatch.vision.regions import label
from linewatch.vision.thresholds import f1_optimal_threshold


def auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    labels = np.asarray(labels).ravel().astype(bool)
    if labels.all() or not labels.any():
        return float("nan")  # undefined with one class
    return float(roc_auc_score(labels, np.asarray(scores).ravel()))


def aupro(masks: np.ndarray, maps: np.ndarray, max_fpr: float = 0.3) -> float:
    """Area under the per-region-overlap curve up to ``max_fpr``, divided by ``max_fpr`` (1.0 is perfect).

    PRO at a threshold is the mean, over every connected defect region of every image, of the fraction of
    that region above the threshold; FPR is the fraction of defect-free pixels above it. Computed exactly
    at every distinct score by one sort of all pixels.
    """
    masks = np.asarray(masks, dtype=bool)
    maps = np.asarray(maps, dtype=np.float64)
    weight = np.zeros(masks.shape, dtype=np.float64)
    n_regions = 0
    for i in range(masks.shape[0]):
        lab, n = label(masks[i], connectivity=8)
        if n == 0:
            continue
        sizes = np.bincount(lab.ravel())
        w = np.zeros(n + 1)
        w[1:] = 1.0 / sizes[1:]
        weight[i] = w[lab]
        n_regions += n
    normal = ~masks
    if n_regions == 0 or not normal.any():
        return float("nan")
    scores = maps.ravel()
    order = np.argsort(-scores, kind="stable")
    s = scores[order]
    fpr = np.cumsum(normal.ravel()[order]) / normal.sum()
    pro = np.cumsum(weight.ravel()[order]) / n_regions
    last = np.r_[s[1:] != s[:-1], True]  # one point per distinct threshold
    fpr = np.r_[0.0, fpr[last]]
    pro = np.r_[0.0, pro[last]]
    # cut the curve at max_fpr, interpolating the last point
    k = int(np.searchsorted(fpr, max_fpr, side="right"))
    x, y = fpr[:k], pro[:k]
    if k < len(fpr) and x[-1] < max_fpr:
        x1, y1 = fpr[k], pro[k]
        y_cut = y[-1] + (y1 - y[-1]) * (max_fpr - x[-1]) / (x1 - x[-1])
        x, y = np.r_[x, max_fpr], np.r_[y, y_cut]
    return float(np.trapezoid(y, x) / max_fpr)


def image_metrics(labels: np.ndarray, scores: np.ndarray, threshold: float | None) -> dict:
    labels = np.asarray(labels, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    f1_threshold, f1_max = f1_optimal_threshold(scores, labels)
    out = {"image_auroc": auroc(labels, scores), "f1_max": f1_max, "f1_threshold": f1_threshold}
    if threshold is not None:
        flagged = scores >= threshold
        good, bad = ~labels, labels
        out["false_alarm_rate"] = float(flagged[good].mean()) if good.any() else float("nan")
        out["miss_rate"] = float((~flagged[bad]).mean()) if bad.any() else float("nan")
    return out
