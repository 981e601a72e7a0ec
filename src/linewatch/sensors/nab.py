"""The Numenta Anomaly Benchmark's scoring (Lavin & Ahmad 2015; NAB v1.1 ``nab/sweeper.py``, ``optimizer.py``,
``runner.py``), written from its description and checked against its published numbers by re-scoring the
shipped HTM outputs (``benchmarks/sensors_nab.py``).

- Each labelled anomaly has a window. A detection inside a window scores by a scaled sigmoid of its position
  (``+1`` at the window's start, about 0 at its end); only the window's earliest detection counts; a window
  without a detection costs ``fnWeight``.
- A detection outside every window costs ``fpWeight`` times a sigmoid of its distance past the previous window
  (a detection just after a window costs little, one far from any costs the full weight; before the first
  window the full weight).
- The first 15% of each file (at most 750 rows) is a probationary period and not scored.
- One threshold per profile for the whole corpus, chosen to maximise the summed raw score. Here the sweep is
  exhaustive over every distinct score (NAB's optimiser is a local search, so ours is at least as good).
- Normalised score: ``100 * (raw - null) / (perfect - null)``, null = every window missed, perfect = every
  window detected at its start.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

PROFILES = {
    "standard": {"tp": 1.0, "fp": 0.11, "fn": 1.0},
    "reward_low_FP_rate": {"tp": 1.0, "fp": 0.22, "fn": 1.0},
    "reward_low_FN_rate": {"tp": 1.0, "fp": 0.11, "fn": 2.0},
}
PROBATIONARY_PERCENT = 0.15


def scaled_sigmoid(x: float) -> float:
    return -1.0 if x > 3.0 else 2.0 / (1.0 + math.exp(5.0 * x)) - 1.0


def probationary_length(n: int) -> int:
    return int(min(math.floor(PROBATIONARY_PERCENT * n), PROBATIONARY_PERCENT * 5000))


def window_indices(times: np.ndarray, windows: list[tuple]) -> list[tuple[int, int]]:
    """Windows given as (start, end) times turned into inclusive row ranges of ``times`` (sorted datetime64)."""
    out = []
    for start, end in windows:
        a = int(np.searchsorted(times, np.datetime64(start), side="left"))
        b = int(np.searchsorted(times, np.datetime64(end), side="right")) - 1
        if b >= a:
            out.append((a, b))
    return out


@dataclass
class FileSweep:
    """One file's raw score as a function of the threshold, for one profile."""

    thresholds: np.ndarray  # distinct scores, descending
    scores: np.ndarray  # raw score when detections are the rows with score >= thresholds[i]
    base: float  # raw score when nothing is detected
    windows: int


def row_weights(n: int, windows: list[tuple[int, int]], w: dict) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the score a detection there earns (tp) or costs (fp), and its window id (-1 outside)."""
    weight, win = np.empty(n), np.full(n, -1)
    max_tp = scaled_sigmoid(-1.0)
    prev_right = prev_width = None
    starts = {a: (k, a, b) for k, (a, b) in enumerate(windows)}
    cur = None
    for i in range(n):
        if i in starts:
            cur = starts[i]
        if cur is not None:
            k, a, b = cur
            width = b - a + 1
            weight[i] = scaled_sigmoid(-(b - i + 1) / width) * w["tp"] / max_tp
            win[i] = k
            if i == b:
                prev_right, prev_width, cur = b, width, None
        elif prev_right is not None:
            weight[i] = scaled_sigmoid(abs(prev_right - i) / max(prev_width - 1, 1)) * w["fp"]
        else:
            weight[i] = -w["fp"]
    return weight, win


def sweep_file(scores: np.ndarray, windows: list[tuple[int, int]], profile: str) -> FileSweep:
    w = PROFILES[profile]
    n = len(scores)
    weight, win = row_weights(n, windows, w)
    keep = np.arange(n) >= probationary_length(n)
    s, weight, win = np.asarray(scores, dtype=float)[keep], weight[keep], win[keep]
    n_windows = len(set(win[win >= 0].tolist()))
    order = np.argsort(-s, kind="stable")
    best: dict[int, float] = {}
    fp_total = 0.0
    thresholds, totals = [], []
    i = 0
    while i < len(order):
        j = i
        level = s[order[i]]
        while j < len(order) and s[order[j]] == level:
            r = order[j]
            if win[r] >= 0:
                best[win[r]] = max(best.get(win[r], -1.0), weight[r])
            else:
                fp_total += weight[r]
            j += 1
        thresholds.append(level)
        totals.append(sum(best.values()) + fp_total - w["fn"] * (n_windows - len(best)))
        i = j
    return FileSweep(np.array(thresholds), np.array(totals), -w["fn"] * n_windows, n_windows)


def corpus_score(sweeps: list[FileSweep], threshold: float) -> float:
    """Summed raw score of every file at one threshold (detections: score >= threshold)."""
    total = 0.0
    for f in sweeps:
        k = int(np.searchsorted(-f.thresholds, -threshold, side="right")) - 1
        total += f.scores[k] if k >= 0 else f.base
    return total


def best_threshold(sweeps: list[FileSweep]) -> tuple[float, float]:
    """The corpus threshold with the highest summed raw score, by evaluating every distinct score."""
    cands = np.unique(np.concatenate([f.thresholds for f in sweeps] + [np.array([np.inf])]))
    total = np.zeros(len(cands))
    for f in sweeps:
        k = np.searchsorted(-f.thresholds, -cands, side="right") - 1
        total += np.where(k >= 0, f.scores[np.maximum(k, 0)], f.base)
    i = int(np.argmax(total))
    return float(cands[i]), float(total[i])


def normalise(raw: float, sweeps: list[FileSweep], profile: str) -> float:
    w = PROFILES[profile]
    windows = sum(f.windows for f in sweeps)
    null, perfect = -w["fn"] * windows, w["tp"] * windows
    return 100.0 * (raw - null) / (perfect - null)
