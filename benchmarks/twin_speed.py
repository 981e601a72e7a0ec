"""Speed of the twin's simulation: one simulated week of a 10-machine line on one core.

    python benchmarks/twin_speed.py [--repeat 3] [--hours 168] [--write-line ten.yaml]

The line (built below, or written out with --write-line): 10 machines in series, cycle times 30-42 s (normal, lognormal,
uniform, fixed), every machine with a failure mode (MTBF 3-12 operating hours, MTTR 5-20 min), buffers of 10-40
parts, two products (one skips machine 6), an inspection station at machine 9 (3% defective, half reworked from
machine 7), running 24/7, saturated. Variants: the same line 3x faster (10-14 s cycles: 3x the parts), and the
bottling example (two 8 h shifts on weekdays, 5-6 s cycles). Per variant: parts out, machine cycles, state events,
CPU seconds of the run alone (record=False), and of the run that records every state event and computes the OEE
from them (what `linewatch twin simulate` does), best of --repeat; and the wall time of that run. CPU time is
reported because this machine is shared: the wall time depends on what else runs.
"""

from __future__ import annotations

import argparse
import os
import time
from importlib.resources import files

from linewatch.twin.model import line_from_dict, load_line
from linewatch.twin.sim import Simulation

CYCLES = [
    34,
    {"dist": "normal", "mean": 36, "sd": 3},
    {"dist": "lognormal", "mean": 38, "cv": 0.2},
    {"dist": "uniform", "low": 34, "high": 42},
    36,
    {"dist": "normal", "mean": 32, "sd": 2},
    {"dist": "gamma", "mean": 37, "cv": 0.3},
    35,
    30,
    {"dist": "triangular", "low": 30, "mode": 34, "high": 40},
]


def ten_machine_line(speed: float = 1.0) -> dict:
    def scale(c):
        if isinstance(c, dict):
            return {k: (v / speed if k not in ("dist", "cv") else v) for k, v in c.items()}
        return c / speed

    machines, buffers = [], []
    for i, c in enumerate(CYCLES, 1):
        machines.append(
            {
                "name": f"m{i}",
                "operation": f"op{i}",
                "cycle_time_s": scale(c),
                "failures": [{"cause": f"fault m{i}", "mtbf_h": 3 + i % 4 * 3, "mttr_min": 5 + i % 4 * 5}],
            }
        )
        if i > 1:
            buffers.append({"name": f"b{i}", "before": f"op{i}", "capacity": 10 + i % 4 * 10})
    ops = [f"op{i}" for i in range(1, 11)]
    return {
        "name": "ten",
        "machines": machines,
        "buffers": buffers,
        "inspections": [
            {"machine": "m9", "station": "camera", "defect_rate": 0.03, "rework_fraction": 0.5, "rework_to": "op7"}
        ],
        "products": [
            {"name": "a", "mix": 0.7, "routing": ops},
            {"name": "b", "mix": 0.3, "routing": [o for o in ops if o != "op6"]},
        ],
    }


def measure(line, hours: float, repeat: int) -> dict:
    best_plain = best_full = float("inf")
    wall = 0.0
    for _ in range(repeat):
        t = time.process_time()
        Simulation(line, hours, seed=1, record=False).run()
        best_plain = min(best_plain, time.process_time() - t)
        sim = Simulation(line, hours, seed=1)
        t, w = time.process_time(), time.perf_counter()
        res = sim.run()
        cpu = time.process_time() - t
        if cpu < best_full:
            best_full, wall = cpu, time.perf_counter() - w
    cycles = sum(m["parts"] for m in res["machines"].values())
    return {
        "parts": res["good"],
        "cycles": cycles,
        "events": res["events"],
        "plain": best_plain,
        "full": best_full,
        "wall": wall,
        "oee": res["output_oee"],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hours", type=float, default=168)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--write-line", default=None)
    a = ap.parse_args()
    if a.write_line:
        import yaml

        with open(a.write_line, "w") as f:
            yaml.safe_dump(ten_machine_line(), f, sort_keys=False)
    variants = [
        ("10 machines, 30-42 s cycles", line_from_dict(ten_machine_line())),
        ("10 machines, 10-14 s cycles", line_from_dict(ten_machine_line(3.0))),
        ("bottling example (2 shifts, 5-6 s)", load_line(str(files("linewatch.twin") / "examples" / "bottling.yaml"))),
    ]
    print(
        f"one core, {a.hours:g} simulated hours, best of {a.repeat}; load average at start "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    print(
        "| line | parts out | machine cycles | state events | run CPU s | run + events + OEE CPU s | wall s | "
        "line OEE (output) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, line in variants:
        r = measure(line, a.hours, a.repeat)
        print(
            f"| {name} | {r['parts']:,} | {r['cycles']:,} | {r['events']:,} | {r['plain']:.2f} | {r['full']:.2f} | "
            f"{r['wall']:.2f} | {100 * r['oee']:.1f}% |",
            flush=True,
        )
    print(f"load average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
