"""Remaining useful life from multivariate sensor histories: an ensemble of small 1-D CNNs over the last
``window`` cycles, blended with gradient-boosted trees on summaries of the same windows (last value, mean, slopes,
age) and of the unit's whole history so far (each sensor's slope since its first cycle: the engine's wear rate),
trained on the piecewise-linear target (RUL capped at ``rul_cap``), with conformal intervals.
The two model kinds err differently (the trees use the age and are sharp on noisy sensors, the CNNs read the
shape of the window), so their blend is better than either; the weight is chosen on held-out units.

The ensemble is built by unit folds: member k is trained without fold k's units, so every training unit gets a
prediction from a model that never saw it. Those out-of-fold predictions calibrate the intervals (split by unit,
not by row: rows of one engine are not independent) and give an honest validation error, at the cost of
nothing beyond the ensemble itself. The prediction is the members' mean."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from linewatch.core.estimator import Estimator
from linewatch.errors import LinewatchError
from linewatch.maintenance.intervals import apply_intervals, fit_intervals, median_life
from linewatch.maintenance.methods import RulParams
from linewatch.maintenance.regimes import fit_regimes, normalise
from linewatch.maintenance.tables import Histories, histories, read_histories
from linewatch.maintenance.trees import forest_arrays, forest_raw


@dataclass
class RulPrediction:
    """One row per predicted cycle (each unit's last cycle unless all cycles were asked for)."""

    unit: np.ndarray
    cycle: np.ndarray
    rul: np.ndarray
    rul_low: np.ndarray
    rul_high: np.ndarray

    def records(self) -> list[dict[str, Any]]:
        return [
            {
                "unit": int(u),
                "cycle": float(c),
                "rul": round(float(r), 3),
                "rul_low": round(float(lo), 3),
                "rul_high": round(float(hi), 3),
            }
            for u, c, r, lo, hi in zip(self.unit, self.cycle, self.rul, self.rul_low, self.rul_high, strict=True)
        ]


@contextmanager
def threads(n: int) -> Iterator[int]:
    """Torch and the trees' OpenMP limited to ``n`` threads (0: every core this process may use) while inside,
    as they were after. The networks are small: with more threads than free cores (a shared machine) the
    threads wait on each other and a fit takes several times longer for the same work."""
    import torch
    from threadpoolctl import threadpool_limits

    n = n or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with threadpool_limits(limits=n):
            yield n
    finally:
        torch.set_num_threads(before)


def as_histories(data: Any, **names) -> Histories:
    """Histories from a Histories, a DataFrame or a file path."""
    if isinstance(data, Histories):
        if names.get("sensor_names") is not None and data.sensor_names != names["sensor_names"]:
            raise LinewatchError(
                f"the data's sensors {data.sensor_names} differ from the model's {names['sensor_names']}"
            )
        return data
    if isinstance(data, pd.DataFrame):
        return histories(data, "the table", **names)
    if isinstance(data, str) or hasattr(data, "__fspath__"):
        return read_histories(data, **names)
    raise LinewatchError(f"maintenance data must be a file path, a DataFrame or Histories, not {type(data).__name__}")


def smooth(features: np.ndarray, starts: np.ndarray, weight: float) -> np.ndarray:
    """Exponential smoothing along each unit's cycles (causal: a cycle sees only the past)."""
    if weight >= 1.0:
        return features
    out = features.copy()
    for s, e in zip(starts[:-1], starts[1:], strict=True):
        for t in range(s + 1, e):
            out[t] = weight * features[t] + (1 - weight) * out[t - 1]
    return out


def windows(features: np.ndarray, starts: np.ndarray, window: int) -> np.ndarray:
    """(rows, window, features): the ``window`` cycles ending at every row, left-padded with the unit's first
    reading when its history is shorter (test engines can be cut after a few cycles)."""
    parts = []
    for s, e in zip(starts[:-1], starts[1:], strict=True):
        x = features[s:e]
        padded = np.concatenate([np.repeat(x[:1], window - 1, axis=0), x])
        parts.append(np.lib.stride_tricks.sliding_window_view(padded, window, axis=0).transpose(0, 2, 1))
    return np.ascontiguousarray(np.concatenate(parts)).astype(np.float32)


def _net(n_features: int, window: int, channels: int):
    from torch import nn

    return nn.Sequential(
        nn.Conv1d(n_features, channels, 5, padding=2),
        nn.ReLU(),
        nn.Conv1d(channels, channels, 5, padding=2),
        nn.ReLU(),
        nn.Conv1d(channels, channels, 5, padding=2),
        nn.ReLU(),
        nn.Conv1d(channels, 8, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Dropout(0.2),
        nn.Linear(8 * window, 64),
        nn.ReLU(),
        nn.Linear(64, 1),
    )


class RulCNN(Estimator):
    engine = "maintenance"
    method = "cnn"
    Params = RulParams

    def fit(self, data: Any, progress=None) -> RulCNN:
        """Learn from run-to-failure histories (each unit's RUL is cycles to its last one unless the table has a
        ``rul`` column). ``progress(stage, done, total)`` is called after each member's epoch."""
        self.params_ = None
        p = self._validate_params()
        h = as_histories(data)
        with threads(p["threads"]):
            return self._fit(h, p, progress)

    def _fit(self, h: Histories, p: dict[str, Any], progress) -> RulCNN:
        starts = h.starts()
        n_units = len(starts) - 1
        if n_units < p["folds"]:
            raise LinewatchError(
                f"{n_units} unit(s) in the training data; the {p['folds']} folds need one each at "
                "least (use fewer --folds or more units)"
            )
        t0 = time.perf_counter()
        regimes = fit_regimes(h.settings, h.sensors, p["max_regimes"], p["seed"])
        if not regimes["keep"].any():
            raise LinewatchError("every sensor is constant in the training data: nothing to learn from")
        x, slopes = _inputs(h, regimes, p)
        truth = h.rul_to_failure()
        y = np.minimum(truth, p["rul_cap"]) / p["rul_cap"]
        unit_of_row = np.repeat(np.arange(n_units), np.diff(starts))
        fold_of_unit = np.random.default_rng(p["seed"]).permutation(n_units) % p["folds"]
        fold = fold_of_unit[unit_of_row]
        feats = window_features(x, h.cycles, p, slopes)
        members, trees, oof, oof_trees = [], [], np.zeros(len(y)), np.zeros(len(y))
        for k in range(p["folds"]):
            trees.append(_fit_trees(feats[fold != k], y[fold != k] * p["rul_cap"], p))
            oof_trees[fold == k] = forest_raw(trees[-1], feats[fold == k])
            net = self._train(
                x[fold != k],
                y[fold != k],
                p,
                seed=p["seed"] * 1000 + k,
                report=(lambda e, k=k: progress("train", k * p["epochs"] + e, p["folds"] * p["epochs"]))
                if progress
                else None,
            )
            members.append(net)
            oof[fold == k] = _predict(net, x[fold == k]) * p["rul_cap"]
        capped = np.minimum(truth, p["rul_cap"])
        degrading = truth <= p["rul_cap"]  # where the target is the data's, not the cap's
        blend = p["blend"]
        if blend is None:
            grid = np.linspace(0, 1, 11)
            errs = [np.mean(((1 - w) * oof + w * oof_trees - capped)[degrading] ** 2) for w in grid]
            blend = float(grid[int(np.argmin(errs))])
        cnn_only = oof
        oof = np.clip((1 - blend) * oof + blend * oof_trees, 0, None)
        last = starts[1:] - 1
        self.regimes_ = regimes
        self.members_ = members
        self.trees_ = trees
        self.blend_ = blend
        horizon = p["interval_horizon"] if p["interval_horizon"] is not None else median_life(truth, starts)
        self.intervals_ = fit_intervals(oof, truth, p["coverage"], unit_of_row, horizon)
        # the held-out predictions the intervals were calibrated on (not saved): recalibrate without refitting
        self.calibration_ = {"pred": oof, "truth": truth, "units": unit_of_row}
        self.sensor_names_ = list(h.sensor_names)
        self.setting_names_ = list(h.setting_names)
        self.train_info_ = {
            "units": n_units,
            "rows": len(y),
            "regimes": len(regimes["centers"]),
            "sensors_used": int(regimes["keep"].sum()),
            "oof_rmse": float(np.sqrt(np.mean((oof - capped) ** 2))),
            "oof_rmse_degrading": float(np.sqrt(np.mean((oof - capped)[degrading] ** 2))),
            "oof_rmse_degrading_cnn": float(np.sqrt(np.mean((cnn_only - capped)[degrading] ** 2))),
            "oof_rmse_degrading_trees": float(np.sqrt(np.mean((oof_trees - capped)[degrading] ** 2))),
            "blend": blend,
            "oof_last_cycle_mae": float(np.mean(np.abs(oof[last] - truth[last]))),
            "interval_horizon": float(horizon),
            "seconds": round(time.perf_counter() - t0, 2),
        }
        self.params_ = p
        return self

    @staticmethod
    def _train(x: np.ndarray, y: np.ndarray, p: dict[str, Any], seed: int, report=None):
        import torch

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = _net(x.shape[2], p["window"], p["channels"])
            xt, yt = torch.from_numpy(x).transpose(1, 2).contiguous(), torch.from_numpy(y.astype(np.float32))
            opt = torch.optim.Adam(net.parameters(), lr=p["learning_rate"])
            steps = p["epochs"] * max(1, -(-len(xt) // p["batch_size"]))
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
            gen = torch.Generator().manual_seed(seed)
            net.train()
            for epoch in range(p["epochs"]):
                order = torch.randperm(len(xt), generator=gen)
                for i in range(0, len(xt), p["batch_size"]):
                    idx = order[i : i + p["batch_size"]]
                    loss = torch.nn.functional.mse_loss(net(xt[idx]).squeeze(1), yt[idx])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    sched.step()
                if report:
                    report(epoch + 1)
        net.eval()
        for q in net.parameters():
            q.requires_grad_(False)
        return net

    def predict(self, data: Any, all_cycles: bool = False) -> RulPrediction:
        """RUL with its interval at each unit's last cycle (or at every cycle)."""
        self._check_fitted()
        p = self.params_
        h = as_histories(data, sensor_names=self.sensor_names_, setting_names=self.setting_names_)
        with threads(p["threads"]):
            return self._predict(h, p, all_cycles)

    def _predict(self, h: Histories, p: dict[str, Any], all_cycles: bool) -> RulPrediction:
        starts = h.starts()
        x, slopes = _inputs(h, self.regimes_, p)
        rows = np.arange(len(x)) if all_cycles else starts[1:] - 1
        x = x[rows]
        cnn = np.mean([_predict(m, x) for m in self.members_], axis=0) * p["rul_cap"]
        feats = window_features(x, h.cycles[rows], p, slopes[rows])
        boosted = np.mean([forest_raw(t, feats) for t in self.trees_], axis=0)
        pred = np.clip((1 - self.blend_) * cnn + self.blend_ * boosted, 0, None)
        low, high = apply_intervals(pred, self.intervals_)
        return RulPrediction(h.units[rows], h.cycles[rows], pred, low, high)


def history_slopes(z: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Each sensor's least-squares slope over its unit's whole history up to every row (causal; 0 at a unit's
    first cycle). A window sees only recent cycles; the slope since the start says how fast this engine has been
    wearing, which separates engines whose sensors sit at the same level today."""
    out = np.zeros(z.shape, dtype=np.float64)
    for s, e in zip(starts[:-1], starts[1:], strict=True):
        x = z[s:e].astype(np.float64)
        n = np.arange(1, e - s + 1, dtype=np.float64)[:, None]
        t = n - 1
        mean_t, mean_x = np.cumsum(t, axis=0) / n, np.cumsum(x, axis=0) / n
        var = np.cumsum(t * t, axis=0) / n - mean_t**2
        cov = np.cumsum(t * x, axis=0) / n - mean_t * mean_x
        out[s:e] = np.where(var > 1e-9, cov / np.maximum(var, 1e-9), 0.0)
    return out


def window_features(x: np.ndarray, cycles: np.ndarray, p: dict[str, Any], slopes: np.ndarray) -> np.ndarray:
    """Per window: each input's last value, mean, and least-squares slope over the window and its last third,
    the age in cycles, and ``slopes`` (each sensor's slope over the unit's history so far, or no columns): what a
    tree needs to see a trend it cannot compute itself."""
    x = x[:, :, : x.shape[2] - int(p["age"])]  # the age column (if any) is given once, unsmoothed
    w = x.shape[1]
    t = np.arange(w) - (w - 1) / 2
    short = max(3, w // 3)
    ts = np.arange(short) - (short - 1) / 2
    slope = np.einsum("nwf,w->nf", x, t) / (t**2).sum()
    slope_short = np.einsum("nwf,w->nf", x[:, -short:], ts) / (ts**2).sum()
    return np.hstack([x[:, -1], x.mean(axis=1), slope, slope_short, cycles[:, None], slopes]).astype(np.float64)


def _fit_trees(feats: np.ndarray, y: np.ndarray, p: dict[str, Any]) -> dict[str, np.ndarray]:
    from sklearn.ensemble import HistGradientBoostingRegressor

    reg = HistGradientBoostingRegressor(
        max_iter=p["tree_iter"], learning_rate=0.05, max_leaf_nodes=31, early_stopping=False, random_state=p["seed"]
    ).fit(feats, y)
    return forest_arrays(reg)


def _inputs(h: Histories, regimes: dict[str, np.ndarray], p: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """The network's input windows (smoothed per-regime sensors, and the cycle in units of the cap if asked) and
    the whole-history slopes of the per-regime sensors for the trees ((rows, 0) when ``history`` is off)."""
    starts = h.starts()
    z = normalise(h.settings, h.sensors, regimes)
    slopes = history_slopes(z, starts) if p["history"] else np.zeros((len(z), 0))
    z = smooth(z, starts, p["smoothing"])
    if p["age"]:
        z = np.hstack([z, (h.cycles / p["rul_cap"]).astype(np.float32)[:, None]])
    return windows(z, starts, p["window"]), slopes


def _predict(net, x: np.ndarray, batch: int = 4096) -> np.ndarray:
    import torch

    out = []
    with torch.inference_mode():
        for i in range(0, len(x), batch):
            out.append(net(torch.from_numpy(x[i : i + batch]).transpose(1, 2)).squeeze(1).numpy())
    return np.concatenate(out).astype(np.float64) if out else np.zeros(0)
