"""Split-conformal intervals for RUL, Mondrian by predicted RUL: residuals are grouped by how large the
prediction is, because an engine predicted to fail soon is known to within a few cycles while one predicted
healthy may have anything from 100 to 300 cycles left; one width for both would be too wide for the first and
too narrow for the second. Residuals are signed (true - predicted), so an interval can be asymmetric."""

from __future__ import annotations

import numpy as np

BINS = 6
MIN_PER_BIN = 50


def _level(n: int, q: float) -> float:
    """The finite-sample conformal quantile level for n calibration points."""
    return float(min(1.0, np.ceil((n + 1) * q) / n))


def fit_intervals(pred: np.ndarray, truth: np.ndarray, coverage: float) -> dict[str, np.ndarray]:
    """Bin edges on the held-out predictions and the lower/upper residual quantiles in each bin."""
    alpha = 1.0 - coverage
    n_bins = int(max(1, min(BINS, len(pred) // MIN_PER_BIN)))
    edges = np.unique(np.quantile(pred, np.linspace(0, 1, n_bins + 1)[1:-1])) if n_bins > 1 else np.zeros(0)
    which = np.searchsorted(edges, pred, side="right")
    resid = truth - pred
    low, high = np.zeros(len(edges) + 1), np.zeros(len(edges) + 1)
    for b in range(len(edges) + 1):
        r = resid[which == b]
        if len(r) == 0:
            r = resid
        low[b] = np.quantile(r, 1 - _level(len(r), 1 - alpha / 2), method="lower")
        high[b] = np.quantile(r, _level(len(r), 1 - alpha / 2), method="higher")
    return {"edges": edges, "low": low, "high": high}


def apply_intervals(pred: np.ndarray, state: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The interval of each prediction, never excluding the prediction itself: in the top bin of a capped target
    nearly every residual is positive (the truth runs on past the cap), so the lower quantile can lie above the
    prediction; the interval is then widened down to the prediction rather than stating rul_low > rul."""
    which = np.searchsorted(state["edges"], pred, side="right")
    low = np.minimum(pred + state["low"][which], pred)
    high = np.maximum(pred + state["high"][which], pred)
    return np.maximum(low, 0.0), np.maximum(high, 0.0)
