"""Remaining useful life on NASA C-MAPSS with the defaults: fit on train_FDxxx.txt, predict each test unit's RUL
at its last cycle, compare with RUL_FDxxx.txt. Prints RMSE, NASA score, interval coverage and width, training
time, and the out-of-fold validation figures the defaults were chosen on (training units only).

    python benchmarks/maintenance_cmapss.py /work/shared/data [FD001 FD003] [--params JSON]
    python benchmarks/maintenance_cmapss.py /work/shared/data --models DIR   # DIR/model-FD001 ... already fitted

With --models the models (e.g. those `linewatch maintenance fit` wrote for the contract check) are loaded, not
refitted; the training time is the one their manifest recorded.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from linewatch.maintenance.metrics import rul_metrics
from linewatch.maintenance.rul import RulCNN
from linewatch.maintenance.saving import load
from linewatch.maintenance.tables import read_histories, read_truth


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data_root", type=Path, help="folder holding factory/cmapss (or the cmapss folder itself)")
    ap.add_argument("subsets", nargs="*", default=["FD001", "FD003"])
    ap.add_argument("--params", default="{}", help="JSON object of RulCNN parameters (default: the defaults)")
    ap.add_argument("--models", type=Path, help="folder with model-FDxxx directories to evaluate instead of fitting")
    a = ap.parse_args()
    root = a.data_root / "factory" / "cmapss" if (a.data_root / "factory").is_dir() else a.data_root
    params = json.loads(a.params)
    rows, nominal = [], 0.9
    for fd in a.subsets:
        if a.models:
            model = load(a.models / f"model-{fd}")
            fit_s = model.train_info_["seconds"]
        else:
            train = read_histories(root / f"train_{fd}.txt")
            t0 = time.perf_counter()
            model = RulCNN(**params).fit(train)
            fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        p = model.predict(root / f"test_{fd}.txt")
        pred_s = time.perf_counter() - t0
        m = rul_metrics(p.rul, p.rul_low, p.rul_high, read_truth(root / f"RUL_{fd}.txt", p.unit))
        info = model.train_info_
        nominal = model.params_["coverage"]
        rows.append((fd, m, info, fit_s, pred_s))
        print(json.dumps({"subset": fd, **m, **{f"train_{k}": v for k, v in info.items()}, "fit_s": fit_s}), flush=True)
    print(f"\nparameters {params or 'defaults'}, nominal coverage {nominal:.0%}\n")
    print(
        "| subset | RMSE | NASA score | coverage | mean width | interval horizon | val RMSE degrading "
        "(CNN / trees / blend) | blend | regimes | train s | predict s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for fd, m, info, fit_s, pred_s in rows:
        print(
            f"| {fd} | {m['rmse']:.2f} | {m['nasa_score']:.0f} | {m['coverage']:.0%} | "
            f"{m['mean_interval_width']:.1f} | {info.get('interval_horizon', float('nan')):.0f} | "
            f"{info['oof_rmse_degrading_cnn']:.2f} / "
            f"{info['oof_rmse_degrading_trees']:.2f} / {info['oof_rmse_degrading']:.2f} | {info['blend']:.1f} | "
            f"{info['regimes']} | {fit_s:.0f} | {pred_s:.2f} |"
        )


if __name__ == "__main__":
    main()
