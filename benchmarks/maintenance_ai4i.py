"""Failure risk on AI4I 2020 with a time-ordered split: fit on the first 70% of rows (UDI order), judge on the
last 30%. Prints ROC-AUC, PR-AUC, recall and precision at p >= 0.5 and the Brier score of any failure and of
each mode, with the number of positives each figure rests on.

    python benchmarks/maintenance_ai4i.py /work/shared/data [--train-share 0.7]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from linewatch.maintenance.failure import FailureRisk, as_table
from linewatch.maintenance.metrics import failure_metrics


def fmt(v) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data_root", type=Path)
    ap.add_argument("--train-share", type=float, default=0.7)
    a = ap.parse_args()
    path = a.data_root / "factory" / "ai4i2020" / "ai4i2020.csv"
    df = as_table(path if path.is_file() else a.data_root)
    df = df.sort_values("UDI", kind="stable").reset_index(drop=True)
    n = int(len(df) * a.train_share)
    train, test = df.iloc[:n], df.iloc[n:]
    t0 = time.perf_counter()
    model = FailureRisk().fit(train)
    fit_s = time.perf_counter() - t0
    p = model.predict(test)
    rows = [
        ("any failure", failure_metrics(p.probability, test[model.target_].to_numpy()), int(train[model.target_].sum()))
    ]
    rows += [(m, failure_metrics(p.modes[m], test[m].to_numpy()), int(train[m].sum())) for m in model.modes_]
    for name, m, _ in rows:
        print(json.dumps({"target": name, **m}))
    print(f"\nrows 1-{n} train, {n + 1}-{len(df)} test (UDI order); fit {fit_s:.0f} s\n")
    print("| target | train positives | test positives | ROC-AUC | PR-AUC | recall@0.5 | precision@0.5 | Brier |")
    print("|---|---|---|---|---|---|---|---|")
    for name, m, tp in rows:
        print(
            f"| {name} | {tp} | {m['positives']} | {fmt(m['roc_auc'])} | {fmt(m['pr_auc'])} | {fmt(m['recall'])} | "
            f"{fmt(m['precision'])} | {m['brier']:.4f} |"
        )


if __name__ == "__main__":
    main()
