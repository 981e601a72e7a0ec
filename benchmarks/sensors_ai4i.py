"""AI4I 2020 (milling machine, 10,000 rows, 339 failures): unsupervised failure detection. Blocked split by UDI (the
stricter one, see the data's PROVENANCE.md): fit on the failure-free rows of the first half, score the second
half; AUROC of the score against `Machine failure`, and the share of each failure mode's rows alarmed at the
calibrated threshold. Rows are independent parts, so the pipeline has no windows or differences.

    python benchmarks/sensors_ai4i.py DATA_ROOT [--methods mahalanobis,ecod,...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
from sklearn.metrics import roc_auc_score

from linewatch.sensors.methods import METHODS

SENSORS = ["Air temperature [K]", "Process temperature [K]", "Rotational speed [rpm]", "Torque [Nm]", "Tool wear [min]"]
MODES = ["TWF", "HDF", "PWF", "OSF", "RNF"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("--methods", default="mahalanobis,ecod,copod,iforest,knn,pca,hbos,ensemble")
    a = ap.parse_args()
    d = pd.read_csv(a.root / "factory" / "ai4i2020" / "ai4i2020.csv", encoding="utf-8-sig")
    half = len(d) // 2
    train = d.iloc[:half]
    train = train[train["Machine failure"] == 0]
    test = d.iloc[half:]
    y = test["Machine failure"].to_numpy() > 0
    print(f"AI4I 2020: fit on {len(train)} failure-free rows of UDI 1-{half}; {len(test)} scored, {y.sum()} failures")
    print("| method | AUROC | alarms on failures | alarms on normal | " + " | ".join(MODES) + " |")
    print("|---|---|---|---|" + "---|" * len(MODES))
    for m in a.methods.split(","):
        det = METHODS.create(m, windows=[], diffs=[], holdout=0.2).fit(train[SENSORS].to_numpy(float), sensors=SENSORS)
        s = det.score(test[SENSORS].to_numpy(float))
        alarm = s > det.threshold_
        modes = []
        for mode in MODES:
            rows = test[mode].to_numpy() > 0
            modes.append(f"{alarm[rows].sum()}/{rows.sum()}")
        print(
            f"| {m} | {roc_auc_score(y, s):.3f} | {alarm[y].mean():.1%} | {alarm[~y].mean():.1%} | "
            + " | ".join(modes)
            + " |"
        )


if __name__ == "__main__":
    main()
