"""Alarm metrics over rows, as SKAB reports them: F1, false-alarm rate (FAR: alarms among normal rows) and
missed-alarm rate (MAR: normal verdicts among anomalous rows), with precision and recall beside them."""

from __future__ import annotations

import numpy as np


def alarm_metrics(truth: np.ndarray, alarms: np.ndarray) -> dict:
    y, p = np.asarray(truth, dtype=bool), np.asarray(alarms, dtype=bool)
    tp, fp = int(np.sum(p & y)), int(np.sum(p & ~y))
    fn, tn = int(np.sum(~p & y)), int(np.sum(~p & ~y))
    return {
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / (tp + fn) if tp + fn else 0.0,
        "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0,
        "far": fp / (fp + tn) if fp + tn else 0.0,
        "mar": fn / (fn + tp) if fn + tp else 0.0,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
    }
