"""Thresholds from normal data: the score that held-out normal rows exceed at the target false-alarm rate."""

from __future__ import annotations

import numpy as np

from linewatch.errors import LinewatchError


def calibrate(normal_scores: np.ndarray, false_alarm_rate: float) -> float:
    """The ``1 - false_alarm_rate`` quantile of scores on normal rows the model did not learn from. With fewer
    rows than ``1 / false_alarm_rate`` the quantile is the largest score seen: the rate cannot be resolved finer
    than one row, so the threshold errs towards fewer alarms."""
    s = np.asarray(normal_scores, dtype=float)
    s = s[np.isfinite(s)]
    if not len(s):
        raise LinewatchError("no finite scores on the held-out normal rows: cannot set a threshold")
    return float(np.quantile(s, 1.0 - false_alarm_rate, method="higher"))
