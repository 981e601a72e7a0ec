"""Scheduling quality on the classic job-shop benchmarks, and replanning speed after a machine failure.

    python benchmarks/schedule_jsplib.py DATA_ROOT [--time-limit 60] [--workers 2]
        [--instances ft06,ft10,la01-40,ta01-10] [--tabu-share 0.5]
    python benchmarks/schedule_jsplib.py DATA_ROOT --replan-only        (or --no-replan)
    python benchmarks/schedule_jsplib.py DATA_ROOT --tabu-restarts 2000,250000 --time-limit 30 --instances swv11-13
    python benchmarks/schedule_jsplib.py DATA_ROOT --tabu-moves n5,n6,n7 --time-limit 20 --instances ta41,ta45,swv07

DATA_ROOT holds factory/jsplib (instances/ and bounds_merged.csv). Per instance: the dispatching rules' makespans
(SPT, LPT, MWKR; EDD, CR and ATC equal MWKR without due dates), the solver's makespan after the time limit (a tabu
search warm start for ``--tabu-share`` of it, then CP-SAT; 0 = CP-SAT alone), which of the two found it, the proven
bound, when the best plan was found, and the gap to the best known solution (the 2020 BKS). Per family: the geometric
mean of (1 + gap). Then replanning 100 jobs x 10 machines (generated, seed 1): a machine down for 500 time units in a
classic job shop, and a machine down for good in a flexible one (two eligible machines per operation): time to the
first feasible repair, to the final plan, and what moved. Rows are printed as they finish.

``--tabu-restarts N,N,...`` runs the tabu search alone instead (from the best rule's plan, ``--workers`` threads,
``--time-limit`` seconds), once per value of its ``restart_after`` (iterations without a better plan before it goes
back to its best plan), and prints each makespan with the number of times it went back. ``--tabu-moves n5,n6,n7``
runs it alone once per neighbourhood (``tabu.MOVES``: N5's swaps only; with the insertion moves of a block's inner
operations to its ends; with its ends moved into it too) and prints each makespan with the iterations.
"""

from __future__ import annotations

import argparse
import csv
import math
import re
import sys
import time
from pathlib import Path

from linewatch.scheduling.cpsat import solve_cpsat
from linewatch.scheduling.formats import load_instance
from linewatch.scheduling.generators import random_jobshop
from linewatch.scheduling.plan import check_plan
from linewatch.scheduling.replan import Event, replan
from linewatch.scheduling.rules import best_rule, dispatch
from linewatch.scheduling.tabu import tabu_search, warm

RULES = ("spt", "lpt", "mwkr")


def expand(spec: str) -> list[str]:
    """``la01-40`` -> la01..la40; names pass through."""
    names = []
    for part in spec.split(","):
        m = re.fullmatch(r"([a-z]+)(\d+)-(\d+)", part.strip())
        if m:
            width = len(m.group(2))
            names += [f"{m.group(1)}{i:0{width}d}" for i in range(int(m.group(2)), int(m.group(3)) + 1)]
        elif part.strip():
            names.append(part.strip())
    return names


def geo(gaps: list[float]) -> float:
    return (math.exp(sum(math.log(1 + g) for g in gaps) / len(gaps)) - 1) if gaps else float("nan")


def best_known(base: Path) -> dict[str, float]:
    """Each instance's best known makespan (the 2020 BKS, else JSPLIB's optimum)."""
    with open(base / "bounds_merged.csv") as f:
        return {r["name"]: float(r["weise2020_bks"] or r["jsplib_optimum"]) for r in csv.DictReader(f)}


def quality(root: Path, names: list[str], time_limit: float, workers: int, tabu_share: float) -> None:
    base = root / "factory" / "jsplib"
    bks = best_known(base)
    print(
        f"| instance | size | BKS | {' | '.join(r.upper() for r in RULES)} | ours | by | bound | status "
        "| best at s | gap | rule gap (best) |"
    )
    print("|---|---|---|" + "---|" * len(RULES) + "---|---|---|---|---|---|---|")
    fam: dict[str, list[tuple[float, float]]] = {}
    for name in names:
        inst = load_instance(base / "instances" / name)
        rule_ms = {r: dispatch(inst, r).makespan for r in RULES}
        plan = solve_cpsat(inst, time_limit=time_limit, workers=workers, tabu_share=tabu_share)
        problems = check_plan(plan)
        assert not problems, problems[0]
        hist = plan.meta["incumbents"]
        t_best = next((t for t, v in hist if v <= plan.makespan), 0.0) if hist else 0.0
        gap = (plan.makespan - bks[name]) / bks[name]
        rgap = (min(rule_ms.values()) - bks[name]) / bks[name]
        fam.setdefault(re.sub(r"\d+$", "", name), []).append((gap, rgap))
        size = f"{len(inst.jobs)}x{inst.n_machines}"
        tabu = plan.meta.get("tabu")
        by = "tabu" if tabu and tabu["makespan"] == plan.makespan else "cpsat"
        bound = "" if plan.bound is None else f"{plan.bound:g}"
        rules = " | ".join(str(rule_ms[r]) for r in RULES)
        print(
            f"| {name} | {size} | {bks[name]:g} | {rules} | {plan.makespan} | {by} | {bound} | {plan.status} | "
            f"{t_best:.1f} | {100 * gap:.2f}% | {100 * rgap:.1f}% |",
            flush=True,
        )
    print()
    print("| family | instances | geometric-mean gap | best rule's geometric-mean gap |")
    print("|---|---|---|---|")
    for f, rows in fam.items():
        print(
            f"| {f} | {len(rows)} | {100 * geo([g for g, _ in rows]):.2f}% | {100 * geo([r for _, r in rows]):.1f}% |"
        )
    print(flush=True)


def tabu_alone(root: Path, names: list[str], time_limit: float, workers: int, variants: dict, shown) -> None:
    """The tabu search alone from the best rule's plan, once per variant (column name: ``tabu_search`` keywords);
    each cell the makespan and ``shown(plan)`` in brackets."""
    base = root / "factory" / "jsplib"
    bks = best_known(base)
    warm()
    print(f"| instance | size | BKS | rule | {' | '.join(variants)} |")
    print("|---|---|---|---|" + "---|" * len(variants))
    for name in names:
        inst = load_instance(base / "instances" / name)
        start, _ = best_rule(inst, "makespan")
        cells = []
        for kwargs in variants.values():
            plan = tabu_search(inst, start, time_limit=time_limit, threads=workers, **kwargs)
            problems = check_plan(plan)
            assert not problems, problems[0]
            cells.append(f"{plan.makespan} ({shown(plan)})")
        size = f"{len(inst.jobs)}x{inst.n_machines}"
        print(f"| {name} | {size} | {bks[name]:g} | {start.makespan} | {' | '.join(cells)} |", flush=True)


def replanning(time_limit: float, workers: int, solve_s: float) -> None:
    print(
        "| scenario | before | first feasible (s) | first value | final (s) | final value | moved | shifted "
        "| total shift |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    cases = [
        ("classic 100x10, machine 3 down 500", random_jobshop(100, 10, seed=1), 500),
        (
            "flexible 100x10 (2 machines/op), machine 3 down for good",
            random_jobshop(100, 10, seed=1, alternatives=2),
            None,
        ),
    ]
    for label, inst, length in cases:
        plan = solve_cpsat(inst, time_limit=solve_s, workers=workers)
        now = plan.makespan // 3
        ev = Event("machine_down", now, machine=3, until=None if length is None else now + length)
        r = replan(plan, ev, time_limit=time_limit, workers=workers)
        for p in (r.first, r.plan):
            problems = check_plan(p)
            assert not problems, problems[0]
        c = r.changes
        print(
            f"| {label} | {plan.makespan} | {r.first_s:.3f} | {r.first.makespan} | {r.total_s:.2f} "
            f"| {r.plan.makespan} | "
            f"{len(c.moved)} | {c.shifted} | {c.total_shift} |",
            flush=True,
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("--time-limit", type=float, default=60.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--instances", default="ft06,ft10,la01-40,ta01-10")
    ap.add_argument("--tabu-share", type=float, default=0.5, help="0 = CP-SAT alone (no tabu search warm start)")
    ap.add_argument("--replan-limit", type=float, default=5.0)
    ap.add_argument("--replan-only", action="store_true")
    ap.add_argument("--no-replan", action="store_true")
    ap.add_argument("--tabu-restarts", default="", help="the tabu search alone, once per restart_after in this list")
    ap.add_argument("--tabu-moves", default="", help="the tabu search alone, once per neighbourhood in this list")
    a = ap.parse_args()
    t0 = time.time()
    if a.tabu_moves:
        variants = {f"{m} (iterations)": {"moves": m} for m in a.tabu_moves.split(",")}
        tabu_alone(
            a.root, expand(a.instances), a.time_limit, a.workers, variants,
            lambda plan: f"{plan.meta['iterations'] / 1e6:.1f} M",
        )  # fmt: skip
    elif a.tabu_restarts:
        variants = {f"back after {int(v):,}": {"restart_after": int(v)} for v in a.tabu_restarts.split(",")}
        tabu_alone(
            a.root, expand(a.instances), a.time_limit, a.workers, variants, lambda plan: f"{plan.meta['restarts']:,}"
        )
    elif not a.replan_only:
        quality(a.root, expand(a.instances), a.time_limit, a.workers, a.tabu_share)
    if not a.no_replan and not a.tabu_restarts and not a.tabu_moves:
        replanning(a.replan_limit, a.workers, solve_s=10.0)
    print(f"\n(total {time.time() - t0:.0f} s)", file=sys.stderr)


if __name__ == "__main__":
    main()
