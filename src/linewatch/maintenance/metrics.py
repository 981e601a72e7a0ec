"""The figures maintenance models are judged by: RUL error at each unit's last cycle (RMSE and the PHM08 NASA
score, which punishes late predictions more than early ones because a missed failure costs more than an early
service), interval coverage, and failure-risk ranking and calibration."""

from __future__ import annotations

import numpy as np


def nasa_score(pred: np.ndarray, truth: np.ndarray) -> float:
    """Sum of exp(-d/13) - 1 for early (d < 0) and exp(d/10) - 1 for late predictions, d = pred - truth."""
    d = np.asarray(pred, dtype=np.float64) - np.asarray(truth, dtype=np.float64)
    return float(np.sum(np.where(d < 0, np.exp(-d / 13.0) - 1.0, np.exp(d / 10.0) - 1.0)))


def rul_metrics(pred: np.ndarray, low: np.ndarray, high: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    d = pred - truth
    return {
        "units": int(len(truth)),
        "rmse": float(np.sqrt(np.mean(d**2))),
        "mae": float(np.mean(np.abs(d))),
        "nasa_score": nasa_score(pred, truth),
        "coverage": float(np.mean((low <= truth) & (truth <= high))),
        "mean_interval_width": float(np.mean(high - low)),
    }


def failure_metrics(prob: np.ndarray, y: np.ndarray, threshold: float = 0.5) -> dict[str, float | int | None]:
    """ROC-AUC and PR-AUC (None when the labels hold one class), recall and precision at ``threshold``, Brier."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    y = np.asarray(y).astype(int)
    both = 0 < y.sum() < len(y)
    flagged = prob >= threshold
    return {
        "positives": int(y.sum()),
        "rows": int(len(y)),
        "roc_auc": float(roc_auc_score(y, prob)) if both else None,
        "pr_auc": float(average_precision_score(y, prob)) if both else None,
        "recall": float(flagged[y == 1].mean()) if y.sum() else None,
        "precision": float(y[flagged].mean()) if flagged.any() else None,
        "brier": float(np.mean((prob - y) ** 2)),
    }
