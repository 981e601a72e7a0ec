"""Split-conformal intervals for RUL, Mondrian by predicted RUL: residuals are grouped by how large the
prediction is, because an engine predicted to fail soon is known to within a few cycles while one predicted
healthy may have anything from 100 to 300 cycles left; one width for both would be too wide for the first and
too narrow for the second. Residuals are signed (true - predicted), so an interval can be asymmetric.

*Which* held-out rows calibrate matters as much as how. A prediction is asked for at one cycle of a unit (C-MAPSS's
test units are each cut once, some time before failure; a machine is asked at its current cycle), so each
calibration unit stands for one random cut point: its rows are weighted so that every unit counts once, instead of
long lives counting more by having more rows. And the cut points are drawn within ``horizon`` cycles of failure
(the estimator's default: the training units' median life). Without a horizon, the bin of predictions at the cap
(an engine that looks healthy) is calibrated on early-life rows of the longest lives, whose true RUL runs to 300+;
its upper ends then lie far above any unit cut nearer failure than that, and coverage overshoots the nominal where
lives are long (C-MAPSS FD003). The upper end of a healthy-looking unit's interval is a statement about the
population of cut points, not about its sensors, so the intervals are stated for units within ``horizon`` cycles of
failure; a unit further out is predicted near the cap and its upper end understates how long it may still run."""

from __future__ import annotations

import numpy as np

BINS = 6
MIN_UNITS_PER_BIN = 15  # units' worth of weight per bin at least (rows of one unit are not independent)


def _level(n: float, q: float) -> float:
    """The finite-sample conformal quantile level for n (effective) calibration points."""
    return float(min(1.0, np.ceil((n + 1) * q) / n)) if n > 0 else 1.0


def weighted_quantile(x: np.ndarray, w: np.ndarray, q: float) -> float:
    """The smallest x whose weighted cumulative share reaches q (q = 0: the smallest x; 1: the largest)."""
    order = np.argsort(x, kind="stable")
    x, w = x[order], w[order]
    cum = np.cumsum(w) / w.sum()
    return float(x[min(int(np.searchsorted(cum, q - 1e-12, side="left")), len(x) - 1)])


def unit_weights(units: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Per row: 1 / (the unit's kept rows) where kept, else 0: every unit weighs one random cut point."""
    _, inverse, counts = np.unique(units[keep], return_inverse=True, return_counts=True)
    w = np.zeros(len(units))
    w[keep] = 1.0 / counts[inverse]
    return w


def median_life(truth: np.ndarray, starts: np.ndarray) -> float:
    """The median over units of the RUL at their first row (``starts``: each unit's first row, and the end)."""
    return float(np.median(truth[starts[:-1]]))


def fit_intervals(
    pred: np.ndarray,
    truth: np.ndarray,
    coverage: float,
    units: np.ndarray | None = None,
    horizon: float | None = None,
) -> dict[str, np.ndarray]:
    """Bin edges on the held-out predictions and the lower/upper residual quantiles in each bin, over the rows
    within ``horizon`` cycles of failure (None: every row), each unit weighing one.
    ``units`` (per row): None treats every row as its own unit."""
    pred, truth = np.asarray(pred, np.float64), np.asarray(truth, np.float64)
    units = np.arange(len(pred)) if units is None else np.asarray(units)
    horizon = np.inf if horizon is None else horizon
    keep = truth <= horizon
    if not keep.any():  # no row that near failure: calibrate on what there is rather than on nothing
        keep = np.ones(len(pred), bool)
    w = unit_weights(units, keep)
    pred, resid, w = pred[keep], (truth - pred)[keep], w[keep]
    alpha = 1.0 - coverage
    n_units = float(w.sum())
    n_bins = int(max(1, min(BINS, n_units // MIN_UNITS_PER_BIN)))
    inner = np.linspace(0, 1, n_bins + 1)[1:-1]
    edges = np.unique([weighted_quantile(pred, w, q) for q in inner]) if n_bins > 1 else np.zeros(0)
    which = np.searchsorted(edges, pred, side="right")
    low, high = np.zeros(len(edges) + 1), np.zeros(len(edges) + 1)
    for b in range(len(edges) + 1):
        r, wb = resid[which == b], w[which == b]
        if len(r) == 0:
            r, wb = resid, w
        n_eff = float(wb.sum() ** 2 / np.sum(wb**2))  # Kish: the units' worth of independent points in the bin
        level = _level(n_eff, 1 - alpha / 2)
        low[b] = -weighted_quantile(-r, wb, level)  # the mirror of the upper one: as conservative
        high[b] = weighted_quantile(r, wb, level)
    return {"edges": edges, "low": low, "high": high}


def apply_intervals(pred: np.ndarray, state: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The interval of each prediction, never excluding the prediction itself: in the top bin of a capped target
    nearly every residual is positive (the truth runs on past the cap), so the lower quantile can lie above the
    prediction; the interval is then widened down to the prediction rather than stating rul_low > rul."""
    which = np.searchsorted(state["edges"], pred, side="right")
    low = np.minimum(pred + state["low"][which], pred)
    high = np.maximum(pred + state["high"][which], pred)
    return np.maximum(low, 0.0), np.maximum(high, 0.0)
