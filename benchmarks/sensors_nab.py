"""NAB v1.1 with linewatch's scorer: first re-score the published raw outputs of numenta HTM that ship with the
data (proof that the scorer matches NAB: HTM is 70.10 / 63.12 / 74.32), then score linewatch's streaming
detectors on the 58 series, point by point, each series learning from nothing.

    python benchmarks/sensors_nab.py DATA_ROOT [--detector surprise|stream ...] [--skip-ours] [-p name=value ...]

DATA_ROOT holds factory/nab (e.g. ../shared/data). All 58 series stream side by side through one detector, one
parameter set. The surprise detector gets each series' learning period from NAB's rule (the first 15% of the
file, at most 750 points: NAB's probationary period, which NAB lets a detector learn from); ``--fixed-learning``
gives every series the ``learning_period`` parameter instead. Labels are used only by NAB's threshold sweep.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from linewatch.sensors.nab import (
    PROFILES,
    best_threshold,
    corpus_score,
    normalise,
    probationary_length,
    sweep_file,
    window_indices,
)
from linewatch.sensors.streaming import StreamingDetector
from linewatch.sensors.surprise import SurpriseDetector

PUBLISHED = {
    "ARTime": (74.85, 65.15, 80.36),
    "numenta HTM": (70.10, 63.12, 74.32),
    "CAD OSE": (69.90, 66.98, 73.18),
    "KNN CAD": (57.99, 43.41, 64.81),
    "Random Cut Forest": (51.72, 38.36, 59.75),
    "Windowed Gaussian": (39.65, 20.87, 47.41),
}


def corpus(root: Path):
    nab = root / "factory" / "nab"
    windows = json.loads((nab / "labels" / "combined_windows.json").read_text())
    for name in sorted(windows):
        d = pd.read_csv(nab / "data" / name)
        times = pd.to_datetime(d["timestamp"]).to_numpy()
        yield name, times, d["value"].to_numpy(float), window_indices(times, windows[name])


def score_table(outputs: dict[str, np.ndarray], files: list, fixed: dict | None = None) -> dict:
    res = {}
    for prof in PROFILES:
        sweeps = [sweep_file(outputs[name], win, prof) for name, _, _, win in files]
        if fixed is not None:
            thr = fixed[prof]
            raw = corpus_score(sweeps, thr)
        else:
            thr, raw = best_threshold(sweeps)
        res[prof] = (normalise(raw, sweeps, prof), thr)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("--skip-ours", action="store_true")
    ap.add_argument("--detector", action="append", choices=("surprise", "stream"), help="default: surprise")
    ap.add_argument("--fixed-learning", action="store_true", help="every series learns for learning_period points")
    ap.add_argument("-p", "--param", action="append", default=[], help="detector parameter NAME=VALUE")
    a = ap.parse_args()
    files = list(corpus(a.root))
    nab = a.root / "factory" / "nab"
    htm = {}
    for name, *_ in files:
        cat, base = name.split("/")
        htm[name] = pd.read_csv(nab / "results" / "numenta" / cat / f"numenta_{base}")["anomaly_score"].to_numpy()
    published_thr = {
        p: v["threshold"] for p, v in json.loads((nab / "config" / "thresholds.json").read_text())["numenta"].items()
    }
    rows = []
    r = score_table(htm, files, published_thr)
    rows.append(("numenta HTM, re-scored at NAB's thresholds", r))
    rows.append(("numenta HTM, re-scored, exhaustive threshold", score_table(htm, files)))
    if not a.skip_ours:
        params = {k: float(v) if "." in v or "e" in v else int(v) for k, v in (kv.split("=", 1) for kv in a.param)}
        # all 58 series stream side by side; the shorter ones end in NaN (no reading: state untouched)
        longest = max(len(v) for _, _, v, _ in files)
        block = np.full((longest, len(files)), np.nan)
        for j, (_, _, values, _) in enumerate(files):
            block[: len(values), j] = values
        points = sum(len(v) for _, _, v, _ in files)
        for kind in a.detector or ["surprise"]:
            t0 = time.perf_counter()
            if kind == "surprise":
                learning = None if a.fixed_learning else [probationary_length(len(v)) for _, _, v, _ in files]
                det = SurpriseDetector(**params).start(len(files), learning_periods=learning)
            else:
                det = StreamingDetector(**params).start(len(files))
            scores, _ = det.update_many(block)
            secs = time.perf_counter() - t0
            ours = {name: scores[: len(v), j] for j, (name, _, v, _) in enumerate(files)}
            how = ", ".join(
                ([str(params)] if params else ["defaults"])
                + (["learning: 15% of each file"] if kind == "surprise" and not a.fixed_learning else [])
            )
            rows.append((f"linewatch {kind} ({how})", score_table(ours, files)))
            print(f"{kind}: streamed {points} points of {len(files)} series side by side in {secs:.1f} s")
    print("| detector | standard | reward_low_FP | reward_low_FN |")
    print("|---|---|---|---|")
    for label, res in rows:
        print(f"| {label} | " + " | ".join(f"{res[p][0]:.2f} (thr {res[p][1]:.4f})" for p in PROFILES) + " |")
    for label, (s, fp, fn) in PUBLISHED.items():
        print(f"| {label} (published) | {s:.2f} | {fp:.2f} | {fn:.2f} |")


if __name__ == "__main__":
    main()
