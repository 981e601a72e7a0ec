"""What a table model costs live, per method: fit time on a machine's history and CPU per scored time step.

    python benchmarks/table_live_cost.py [--rows 50000] [--sensors 8] [--piece 25] [--steps 5000]
        [--methods mahalanobis,pca,knn,lof,hbos,ecod,copod,iforest]

A generated machine (each sensor a slow sine of its own period plus noise, one row a second) is fitted with each of
the sensor engine's table methods at its defaults on ``--rows`` rows (the engine keeps at most ``max_train_rows``,
50,000 by default, as the service's training does), then scored live through ``LiveTable`` as the service's
ingester scores it: ``--steps`` new time steps in pieces of ``--piece`` (one MQTT message of the ingest benchmark
carries 25 time steps). Prints the fit time (wall clock) and the CPU time per time step and per reading (this
process, all its threads), and so the time steps a second one core's worth of CPU keeps up with. The figures
scale with the training rows for the neighbour methods (knn, lof), with the trees for iforest, and barely for the
others.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=50_000, help="training rows (time steps)")
    ap.add_argument("--sensors", type=int, default=8)
    ap.add_argument("--piece", type=int, default=25, help="time steps scored per update")
    ap.add_argument("--steps", type=int, default=5_000, help="time steps scored live")
    ap.add_argument("--methods", default="mahalanobis,pca,knn,lof,hbos,ecod,copod,iforest")
    a = ap.parse_args()
    from linewatch.sensors.live import LiveTable
    from linewatch.sensors.methods import METHODS

    rng = np.random.default_rng(0)
    n = a.rows + a.steps
    t = np.arange(n, dtype=float)
    x = np.sin(t[:, None] / np.arange(50, 50 + a.sensors)) + rng.normal(scale=0.1, size=(n, a.sensors))
    names = [f"s{i}" for i in range(a.sensors)]
    print(f"{a.sensors} sensors, fitted on {a.rows:,} rows, {a.steps:,} time steps scored live in pieces of {a.piece}")
    print("| method | fit s | µs per time step | µs per reading | time steps/s per core |")
    print("|---|---:|---:|---:|---:|")
    for method in a.methods.split(","):
        t0 = time.perf_counter()
        det = METHODS.create(method).fit([(x[: a.rows], t[: a.rows])], sensors=names)
        fit = time.perf_counter() - t0
        live = LiveTable(det)
        live.update(x[a.rows - live.context : a.rows], t[a.rows - live.context : a.rows])  # the training's last rows
        t0 = time.process_time()
        for i in range(a.rows, n, a.piece):
            live.update(x[i : i + a.piece], t[i : i + a.piece])
        step = (time.process_time() - t0) / a.steps
        print(
            f"| {method} | {fit:.1f} | {step * 1e6:.0f} | {step * 1e6 / a.sensors:.1f} | {1 / step:,.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
