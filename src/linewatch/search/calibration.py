"""Calibrating a suggestion's confidence: a monotone map from a raw score (the smoothed vote share) to the
probability that the suggestion is right, fitted on outcomes that are known (each reviewed inspection's
leave-one-out suggestion against its reviewed type).

The map is isotonic regression (pool adjacent violators) on the outcomes sorted by score, each pooled block then
shrunk towards the raw score it covers by ``prior`` pseudo-outcomes (a block of a few outcomes cannot read 0 or 1),
pooled again so it stays monotone, and interpolated linearly between the blocks' mean scores (flat beyond them).
Nothing is tuned by hand per installation: with fewer than ``MIN_OUTCOMES`` known outcomes there is no map and the
caller keeps the raw score.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_OUTCOMES = 20  # known outcomes before a fitted map replaces the raw score
PRIOR = 2.0  # pseudo-outcomes, at the raw score, added to every pooled block


def _pool(y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[list[int]]]:
    """Pool adjacent violators: the non-decreasing weighted fit of ``y``, as blocks (values, weights, members)."""
    vals: list[float] = []
    wts: list[float] = []
    members: list[list[int]] = []
    for i, (yi, wi) in enumerate(zip(y, w, strict=True)):
        vals.append(float(yi))
        wts.append(float(wi))
        members.append([i])
        while len(vals) > 1 and vals[-2] >= vals[-1]:
            v, wt, m = vals.pop(), wts.pop(), members.pop()
            vals[-1] = (vals[-1] * wts[-1] + v * wt) / (wts[-1] + wt)
            wts[-1] += wt
            members[-1].extend(m)
    return np.array(vals), np.array(wts), members


@dataclass(frozen=True)
class Calibration:
    """score -> probability; ``x`` increasing block scores, ``y`` non-decreasing probabilities in (0, 1)."""

    x: np.ndarray
    y: np.ndarray
    outcomes: int  # how many known outcomes it was fitted on

    def __call__(self, score: float) -> float:
        return float(np.interp(score, self.x, self.y))


def fit(scores, correct, min_outcomes: int = MIN_OUTCOMES, prior: float = PRIOR) -> Calibration | None:
    """The monotone map from ``scores`` (in [0, 1]) to the chance of being right, from known outcomes ``correct``;
    None with fewer than ``min_outcomes`` of them."""
    s = np.clip(np.asarray(scores, dtype=float), 0.0, 1.0)
    c = np.asarray(correct, dtype=float)
    if len(s) < max(min_outcomes, 1):
        return None
    order = np.argsort(s, kind="stable")
    s, c = s[order], c[order]
    # ties in the score must share one value: pool them first
    uniq, start = np.unique(s, return_index=True)
    ends = np.append(start[1:], len(s))
    y = np.array([c[a:b].mean() for a, b in zip(start, ends, strict=True)])
    w = (ends - start).astype(float)
    vals, wts, members = _pool(y, w)
    # shrink each block towards the raw score it covers, then pool again (shrinking can break the order)
    xs = np.array([np.average(uniq[m], weights=w[m]) for m in members])
    shrunk = (vals * wts + prior * xs) / (wts + prior)
    vals2, _, members2 = _pool(shrunk, wts + prior)
    x2 = np.array([np.average(xs[m], weights=wts[m]) for m in members2])
    return Calibration(x2, np.clip(vals2, 0.0, 1.0), len(s))


def reliability(confidence, correct, bins: int = 10) -> tuple[list[tuple[float, float, float, int]], float, float]:
    """Reliability table (bin low edge, mean confidence, accuracy, count), expected calibration error (the
    count-weighted mean gap between confidence and accuracy over equal-width bins) and Brier score."""
    p = np.asarray(confidence, dtype=float)
    y = np.asarray(correct, dtype=float)
    idx = np.minimum((p * bins).astype(int), bins - 1)
    rows, ece = [], 0.0
    for b in range(bins):
        sel = idx == b
        if sel.any():
            rows.append((b / bins, float(p[sel].mean()), float(y[sel].mean()), int(sel.sum())))
            ece += sel.sum() * abs(p[sel].mean() - y[sel].mean())
    return rows, float(ece / max(len(p), 1)), float(np.mean((p - y) ** 2)) if len(p) else float("nan")
