"""What the sensor engine costs: the streaming detectors' points per second on one core with many series side by
side, their state memory per series, and batch scoring of 1M rows x 8 sensors with the default table detector.
Generated data (the cost does not depend much on the values: noise is the surprise detector's worst case, every
window a new pattern).

    python benchmarks/sensors_cost.py [--series 2000] [--steps 500] [--rows 1000000] [--skip-batch]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core, as stated


def main() -> None:
    from linewatch.sensors.methods import DEFAULT_METHOD, METHODS
    from linewatch.sensors.streaming import StreamingDetector
    from linewatch.sensors.surprise import SurpriseDetector

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--series", type=int, default=2000)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--skip-batch", action="store_true")
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    print("| what | figure |")
    print("|---|---|")
    for n in (1, 8, 100, a.series):
        block = rng.normal(0, 1, (a.steps if n > 8 else 100_000, n))
        det = StreamingDetector().start(n)
        t0 = time.perf_counter()
        det.update_many(block)
        secs = time.perf_counter() - t0
        print(f"| streaming, {n} series side by side | {block.size / secs:,.0f} points/s |")
    state = sum(v.nbytes for v in det.state().values()) / a.series
    print(f"| streaming state per series | {state:.0f} bytes |")
    for n in (1, 100, a.series):
        block = rng.normal(0, 1, (a.steps if n > 1 else 5_000, n))
        det = SurpriseDetector().start(n)
        det.update_many(block[:50])  # past the first steps (histograms laid out)
        t0 = time.perf_counter()
        det.update_many(block[50:])
        secs = time.perf_counter() - t0
        print(f"| surprise, {n} series side by side | {block[50:].size / secs:,.0f} points/s |")
    print(f"| surprise state per series | {det.state_bytes():,} bytes |")
    if a.skip_batch:
        return
    x = np.column_stack([np.sin(np.arange(a.rows) / (50 + 7 * j)) + rng.normal(0, 0.1, a.rows) for j in range(8)])
    t0 = time.perf_counter()
    det = METHODS.create(DEFAULT_METHOD).fit(x[:100_000])
    fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    alarms = det.predict(x)
    secs = time.perf_counter() - t0
    print(f"| batch fit, {DEFAULT_METHOD}, 100k rows x 8 sensors | {fit:.1f} s |")
    print(f"| batch score, {DEFAULT_METHOD}, {a.rows:,} rows x 8 sensors | {secs:.1f} s ({alarms.mean():.2%} alarms) |")


if __name__ == "__main__":
    main()
