"""Data for the maintenance story: a synthetic run-to-failure history (the file an engineer uploads) and one unit of
it lived again as a machine's readings, a cycle per minute, three readings a minute, ending now.

``python e2e/maintenance_history.py history OUT.csv``; ``python e2e/maintenance_history.py readings OUT.json``."""

from __future__ import annotations

import json
import sys
import time

import numpy as np

from linewatch.maintenance.synthetic import run_to_failure

CYCLE_S = 60


def main() -> None:
    what, out = sys.argv[1], sys.argv[2]
    history, _ = run_to_failure(12, n_sensors=4, seed=1, min_life=40, max_life=60)
    if what == "history":
        history.to_csv(out, index=False)
        return
    columns = [c for c in history.columns if c not in ("unit", "cycle")]
    unit = history[history.unit == 1]
    t0 = int(time.time()) - len(unit) * CYCLE_S  # the unit's last cycle still running now
    times = [t0 + (cyc - 1) * CYCLE_S + k * 20 for cyc in unit.cycle for k in range(3)]
    values = {c: np.repeat(unit[c].to_numpy(), 3).tolist() for c in columns}
    with open(out, "w") as f:
        json.dump({"columns": columns, "cycles": len(unit), "time": times, "values": values}, f)


if __name__ == "__main__":
    main()
