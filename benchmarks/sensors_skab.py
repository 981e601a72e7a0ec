"""SKAB's outlier-detection protocol (Katser & Kozitsin 2020, README "Proposed Leaderboard"): for each of the 34
labelled runs, fit on its first 400 rows, score the rest; F1, false-alarm rate (FAR) and missed-alarm rate (MAR)
over all test rows together. The same protocol as the `sensors-skab` contract check, run in-process.

    python benchmarks/sensors_skab.py DATA_ROOT [--methods mahalanobis,ecod] [-p name=value ...]

DATA_ROOT holds factory/skab/data (e.g. ../shared/data).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from linewatch.sensors.methods import DEFAULT_METHOD, METHODS
from linewatch.sensors.metrics import alarm_metrics

SENSORS = [
    "Accelerometer1RMS",
    "Accelerometer2RMS",
    "Current",
    "Pressure",
    "Temperature",
    "Thermocouple",
    "Voltage",
    "Volume Flow RateRMS",
]
PUBLISHED = [
    ("Conv-AE", 0.78, 13.55, 28.02),
    ("MSET", 0.78, 39.73, 14.13),
    ("T-squared+Q (PCA)", 0.76, 26.62, 24.92),
    ("LSTM-AE", 0.74, 29.96, 25.92),
    ("T-squared", 0.66, 19.21, 42.6),
    ("Isolation forest", 0.29, 2.56, 82.89),
]


def runs(root: Path):
    data = root / "factory" / "skab" / "data"
    for p in sorted(q for q in data.glob("*/*.csv") if q.parent.name != "anomaly-free"):
        d = pd.read_csv(p, sep=";")
        t = pd.to_datetime(d["datetime"])
        yield d[SENSORS].to_numpy(float), (t - t.iloc[0]).dt.total_seconds().to_numpy(), d["anomaly"].to_numpy() > 0


def evaluate(method: str, params: dict, data: list) -> tuple[dict, float]:
    truth, alarms = [], []
    t0 = time.perf_counter()
    for x, t, y in data:
        det = METHODS.create(method, **params).fit(x[:400], t[:400], sensors=SENSORS)
        alarms.append(det.predict(x[400:], t[400:]))
        truth.append(y[400:])
    return alarm_metrics(np.concatenate(truth), np.concatenate(alarms)), time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("--methods", default=DEFAULT_METHOD)
    ap.add_argument("-p", "--param", action="append", default=[], help="NAME=VALUE for every method")
    a = ap.parse_args()
    params = dict(kv.split("=", 1) for kv in a.param)
    for k, v in params.items():
        params[k] = [int(x) for x in v.split(",") if x] if k in ("windows", "lags", "diffs") else v
    data = list(runs(a.root))
    print(f"SKAB outlier protocol, {len(data)} runs, fit on the first 400 rows of each; params {params or 'defaults'}")
    print(f"| {'method':<22} | F1    | FAR %  | MAR %  | seconds |")
    print("|---|---|---|---|---|")
    for m in a.methods.split(","):
        r, secs = evaluate(m, params, data)
        far, mar = 100 * r["far"], 100 * r["mar"]
        print(f"| {'linewatch ' + m:<22} | {r['f1']:.3f} | {far:6.2f} | {mar:6.2f} | {secs:7.1f} |")
    for name, f1, far, mar in PUBLISHED:
        print(f"| {name + ' (published)':<22} | {f1:.2f}  | {far:6.2f} | {mar:6.2f} |         |")


if __name__ == "__main__":
    main()
