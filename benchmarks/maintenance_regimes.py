"""Remaining useful life when a fleet runs under several operating conditions, as C-MAPSS FD002 and FD004 do (those
subsets are not on the development machine): FD001's or FD003's engines re-run under FD002's six flight conditions.

Each cycle of every engine is given one of the six conditions at random (as in FD002, where the condition changes
from cycle to cycle), its three settings columns set to that condition's altitude, Mach number and throttle angle
(with FD002's small jitter), and every sensor moved to the condition's own level and spread: ``level[c, s] +
spread[c, s] * (x - mean[s])``, the levels up to ±30 % of the sensor's mean and the spreads 0.5-2×, drawn once per
seed. The degradation and its noise are the real engines'; what the condition does to the sensors is made up, and
larger than a sensor's wear over a whole life. A model that finds the conditions from the settings and normalises
each sensor within its condition should land near its figure on the plain subset; one that does not, far above it.

    python benchmarks/maintenance_regimes.py /work/shared/data [FD001 FD003] [--seeds 0 1]

Prints, per subset and seed, RMSE and NASA score at each test unit's last cycle, interval coverage, the number of
conditions the model found, and the same figures for the plain subset (fitted once, for comparison).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from linewatch.maintenance.metrics import rul_metrics
from linewatch.maintenance.rul import RulCNN
from linewatch.maintenance.tables import read_histories, read_truth

# FD002/FD004's six operating conditions: altitude (thousands of ft), Mach number, throttle resolver angle
CONDITIONS = np.array(
    [[0.0, 0.0, 100.0], [10.0, 0.25, 100.0], [20.0, 0.70, 100.0], [25.0, 0.62, 60.0], [35.0, 0.84, 100.0],
     [42.0, 0.84, 100.0]]
)  # fmt: skip
JITTER = np.array([0.004, 0.0004, 0.0])  # the settings' spread around each condition, as in FD002


def under_conditions(table: np.ndarray, level: np.ndarray, spread: np.ndarray, mean: np.ndarray, rng) -> np.ndarray:
    """A C-MAPSS table (unit, cycle, 3 settings, 21 sensors) with each row put under a random condition."""
    out = table.copy()
    c = rng.integers(0, len(CONDITIONS), len(table))
    out[:, 2:5] = CONDITIONS[c] + rng.normal(0.0, 1.0, (len(table), 3)) * JITTER
    out[:, 5:] = level[c] + spread[c] * (table[:, 5:] - mean)
    return out


def _save(table: np.ndarray, path: Path) -> None:
    np.savetxt(path, table, fmt=["%d", "%d"] + ["%.6g"] * (table.shape[1] - 2), delimiter=" ")


def _evaluate(model: RulCNN, test: Path, truth: Path) -> dict:
    p = model.predict(test)
    return rul_metrics(p.rul, p.rul_low, p.rul_high, read_truth(truth, p.unit))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data_root", type=Path, help="folder holding factory/cmapss (or the cmapss folder itself)")
    ap.add_argument("subsets", nargs="*", default=["FD001"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--no-plain", action="store_true", help="skip fitting the plain subset")
    args = ap.parse_args()
    root = args.data_root / "factory" / "cmapss" if (args.data_root / "factory").is_dir() else args.data_root
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for fd in args.subsets:
            print(f"{fd} ...", flush=True)
            train, test, truth = root / f"train_{fd}.txt", root / f"test_{fd}.txt", root / f"RUL_{fd}.txt"
            if not args.no_plain:
                t0 = time.perf_counter()
                model = RulCNN().fit(read_histories(train))
                rows.append((fd, "plain", 1, time.perf_counter() - t0, _evaluate(model, test, truth)))
            tr, te = np.loadtxt(train), np.loadtxt(test)
            mean = tr[:, 5:].mean(0)
            for seed in args.seeds:
                rng = np.random.default_rng(seed)
                level = mean * (1.0 + rng.uniform(-0.3, 0.3, (len(CONDITIONS), len(mean))))
                spread = rng.uniform(0.5, 2.0, (len(CONDITIONS), len(mean)))
                a, b = Path(tmp) / f"train_{fd}_{seed}.txt", Path(tmp) / f"test_{fd}_{seed}.txt"
                _save(under_conditions(tr, level, spread, mean, rng), a)
                _save(under_conditions(te, level, spread, mean, rng), b)
                t0 = time.perf_counter()
                model = RulCNN().fit(read_histories(a))
                found = model.train_info_["regimes"]
                rows.append(
                    (fd, f"6 conditions, seed {seed}", found, time.perf_counter() - t0, _evaluate(model, b, truth))
                )
    print("| subset | data | conditions found | RMSE | NASA score | 90% coverage | fit s |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for fd, what, found, secs, m in rows:
        print(
            f"| {fd} | {what} | {found} | {m['rmse']:.2f} | {m['nasa_score']:.0f} | {m['coverage']:.0%} | {secs:.0f} |"
        )


if __name__ == "__main__":
    main()
