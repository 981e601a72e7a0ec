"""How the RUL intervals' calibration population changes their coverage and width on C-MAPSS, without refitting
per variant: the default model is fitted once per subset (its out-of-fold predictions on the training units and
its predictions at each test unit's last cycle kept in a cache), then calibrated again for each variant.

    python benchmarks/maintenance_cmapss_calibration.py /work/shared/data [FD001 FD003] [--cache DIR]

Variants: every training row as one calibration point (the calibration before the horizon), every unit weighing
one random cut point anywhere in its life, and cut points within a horizon of failure set by a quantile of the
training lives (the shortest, 10%, 25%, the median: the default, the longest). The test files are read for the
coverage of each variant: the table is the evidence the default was chosen on, so its coverage figure for the
default is not an out-of-sample one.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from linewatch.maintenance.intervals import apply_intervals, fit_intervals
from linewatch.maintenance.rul import RulCNN
from linewatch.maintenance.tables import read_histories, read_truth


def cached(root: Path, fd: str, cache: Path) -> dict[str, np.ndarray]:
    f = cache / f"calibration-{fd}.npz"
    if f.exists():
        return dict(np.load(f))
    train = read_histories(root / f"train_{fd}.txt")
    t0 = time.perf_counter()
    model = RulCNN().fit(train)
    fit_s = time.perf_counter() - t0
    p = model.predict(root / f"test_{fd}.txt")
    c = model.calibration_
    out = {
        "oof": c["pred"],
        "truth": c["truth"],
        "units": c["units"],
        "test_pred": p.rul,
        "test_truth": read_truth(root / f"RUL_{fd}.txt", p.unit),
        "fit_s": np.array(fit_s),
    }
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(f, **out)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data_root", type=Path, help="folder holding factory/cmapss (or the cmapss folder itself)")
    ap.add_argument("subsets", nargs="*", default=["FD001", "FD003"])
    ap.add_argument("--cache", type=Path, default=Path("/tmp/linewatch-cmapss-calibration"))
    ap.add_argument("--coverage", type=float, default=0.9)
    a = ap.parse_args()
    root = a.data_root / "factory" / "cmapss" if (a.data_root / "factory").is_dir() else a.data_root
    print(
        f"nominal coverage {a.coverage:.0%}; coverage (below / above the interval), mean width at each test unit's "
        "last cycle\n"
    )
    print("| subset | calibration | horizon | coverage | below / above | mean width |")
    print("|---|---|---|---|---|---|")
    for fd in a.subsets:
        d = cached(root, fd, a.cache)
        pred, truth, units = d["oof"], d["truth"], d["units"]
        starts = np.flatnonzero(np.r_[True, units[1:] != units[:-1]])
        spans = truth[starts]  # each unit's RUL at its first row
        variants = [("every row (before)", None, None)]
        variants.append(("one cut per unit, whole life", units, np.inf))
        for q, name in ((0, "shortest"), (0.1, "10%"), (0.25, "25%"), (0.5, "median (default)")):
            variants.append((f"one cut per unit, {name} life", units, float(np.quantile(spans, q))))
        for name, u, horizon in variants:
            state = fit_intervals(pred, truth, a.coverage, units=u, horizon=horizon)
            low, high = apply_intervals(d["test_pred"], state)
            t = d["test_truth"]
            cov = np.mean((low <= t) & (t <= high))
            h = "-" if horizon is None or np.isinf(horizon) else f"{horizon:.0f}"
            print(
                f"| {fd} | {name} | {h} | {cov:.0%} | {np.mean(t < low):.0%} / {np.mean(t > high):.0%} | "
                f"{np.mean(high - low):.1f} |"
            )


if __name__ == "__main__":
    main()
