"""Dispatching rules: a feasible plan in milliseconds, the instant answer, the solver's warm start and the fallback
when its time runs out with nothing better.

Plans are built as active schedules (Giffler–Thompson): at each step the operation that could finish first fixes a
machine and a time; among the operations that could start on that machine before then, the rule picks one. For a
flexible operation each job offers its option that finishes first. Release times, unavailability windows (an
operation never overlaps one; it waits for the machine to come back) and setup times are respected, and
operations already fixed (started, in a replan) are kept as given.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable

from linewatch.scheduling.model import Instance
from linewatch.scheduling.plan import Assignment, Plan

RULES: dict[str, str] = {
    "spt": "shortest processing time first",
    "lpt": "longest processing time first",
    "mwkr": "most work remaining first",
    "edd": "earliest due date first",
    "cr": "smallest critical ratio (time to due date / work remaining) first",
    "atc": "apparent tardiness cost (weight, duration and slack; Vepsalainen & Morton)",
}
ATC_K = 2.0
INF = float("inf")


def _fits(windows: list[tuple[int, float]], t: float, d: int) -> float:
    """The earliest start >= t at which [start, start + d) overlaps none of the (sorted) windows."""
    if d <= 0:
        return t
    for ws, we in windows:
        if t + d <= ws:
            break
        if t < we:
            t = we
    return t


def dispatch(
    inst: Instance,
    rule: str = "mwkr",
    *,
    objective: str = "makespan",
    fixed: Iterable[Assignment] = (),
    now: int = 0,
) -> Plan:
    """A plan by one rule. ``fixed`` operations (a prefix of their jobs) stay; the rest start at ``now`` or later."""
    if rule not in RULES:
        from linewatch.errors import LinewatchError

        raise LinewatchError(f"unknown rule {rule!r}: choose one of {', '.join(RULES)}")
    t0 = time.perf_counter()
    jobs = inst.jobs
    n, m = len(jobs), inst.n_machines
    windows = [[(w.start, INF if w.end is None else w.end) for w in inst.windows_on(k)] for k in range(m)]
    setups = inst.setups
    out: list[Assignment] = list(fixed)
    nxt = [0] * n
    job_ready = [max(j.release, now) for j in jobs]
    mach_free = [float(now)] * m
    mach_last: list[int | None] = [None] * m
    last_end = [-1] * m
    for a in out:
        nxt[a.job] = max(nxt[a.job], a.index + 1)
        job_ready[a.job] = max(job_ready[a.job], a.end)
        mach_free[a.machine] = max(mach_free[a.machine], a.end)
        if a.end > last_end[a.machine]:
            last_end[a.machine], mach_last[a.machine] = a.end, a.job
    remaining = [sum(op.min_duration for op in job.operations[nxt[j] :]) for j, job in enumerate(jobs)]
    mean_d = sum(op.min_duration for job in jobs for op in job.operations) / max(1, inst.n_operations)

    def candidate(j: int) -> tuple[float, float, int, int]:
        """(start, end, machine, duration) of job j's next operation on its machine that finishes first."""
        best = (INF, INF, -1, 0)
        for o in jobs[j].operations[nxt[j]].options:
            s = max(job_ready[j], mach_free[o.machine])
            if setups.get(o.machine) and mach_last[o.machine] is not None:
                s = max(s, mach_free[o.machine] + setups[o.machine][mach_last[o.machine]][j])
            s = _fits(windows[o.machine], s, o.duration)
            if (s + o.duration, o.duration) < (best[1], best[3]):
                best = (s, s + o.duration, o.machine, o.duration)
        return best

    def priority(j: int, s: float, d: int) -> tuple:
        job = jobs[j]
        due = INF if job.due is None else job.due
        if rule == "spt":
            p: float = d
        elif rule == "lpt":
            p = -d
        elif rule == "mwkr":
            p = -remaining[j]
        elif rule == "edd":
            p = due
        elif rule == "cr":
            p = (due - s) / max(remaining[j], 1)
        else:  # atc
            slack = max(0.0, due - d - s)
            p = -(job.weight / max(d, 1)) * (0.0 if slack == INF else math.exp(-slack / (ATC_K * max(mean_d, 1e-9))))
        return (p, -remaining[j], j)

    cand: dict[int, tuple[float, float, int, int]] = {
        j: candidate(j) for j in range(n) if nxt[j] < len(jobs[j].operations)
    }
    while cand:
        c_star = min(c[1] for c in cand.values())
        m_star = min(c[2] for c in cand.values() if c[1] == c_star)
        if c_star == INF:
            raise_unplannable(inst, cand)
        conflict = [j for j, c in cand.items() if c[2] == m_star and c[0] < c_star]
        if not conflict:  # zero-duration operations
            conflict = [j for j, c in cand.items() if c[2] == m_star and c[1] == c_star]
        pick = min(conflict, key=lambda j: priority(j, cand[j][0], cand[j][3]))
        s, e, mach, d = cand[pick]
        out.append(Assignment(pick, nxt[pick], mach, int(s), int(e)))
        job_ready[pick] = int(e)
        mach_free[mach] = max(mach_free[mach], e)
        mach_last[mach] = pick
        remaining[pick] -= jobs[pick].operations[nxt[pick]].min_duration
        nxt[pick] += 1
        if nxt[pick] < len(jobs[pick].operations):
            cand[pick] = candidate(pick)
        else:
            del cand[pick]
        for j in cand:
            if j != pick and mach in jobs[j].operations[nxt[j]].machines:
                cand[j] = candidate(j)
    return Plan(
        inst,
        out,
        objective=objective,
        solver=f"rule:{rule}",
        status="feasible",
        wall_s=time.perf_counter() - t0,
        now=now,
    )


def raise_unplannable(inst: Instance, cand: dict) -> None:
    from linewatch.scheduling.model import InstanceError

    j = next(j for j, c in cand.items() if c[1] == INF)
    raise InstanceError(f"job {inst.job_label(j)} cannot be planned: all its eligible machines are down indefinitely")


def objective_value(plan: Plan, objective: str, weights: tuple[float, float] = (1.0, 1.0)) -> tuple:
    """A key to compare plans on an objective (smaller is better); combinations rank as the solver does."""
    ms, td = plan.makespan, plan.weighted_tardiness
    if objective == "tardiness":
        return (td, ms)
    if objective == "weighted":
        return (weights[0] * ms + weights[1] * td, ms)
    if objective == "lexicographic":
        return (td, ms)
    return (ms, td)


def best_rule(
    inst: Instance,
    objective: str = "makespan",
    *,
    rules: Iterable[str] = tuple(RULES),
    fixed: Iterable[Assignment] = (),
    now: int = 0,
    weights: tuple[float, float] = (1.0, 1.0),
) -> tuple[Plan, dict[str, Plan]]:
    """The best plan over the rules for an objective, and every rule's plan."""
    fixed = list(fixed)
    if not any(j.due is not None for j in inst.jobs):
        # without due dates EDD, CR and ATC all fall back to their tie-break (MWKR): skip the repeats
        rules = [r for r in rules if r not in ("edd", "cr", "atc")] or ["mwkr"]
    plans = {r: dispatch(inst, r, objective=objective, fixed=fixed, now=now) for r in rules}
    best = min(plans.values(), key=lambda p: objective_value(p, objective, weights))
    return best, plans


def solve_rules(
    inst: Instance,
    *,
    objective: str = "makespan",
    rule: str = "best",
    makespan_weight: float = 1.0,
    tardiness_weight: float = 1.0,
) -> Plan:
    """The registry's entry point: one rule's plan, or the best over all rules for the objective."""
    weights = (makespan_weight, tardiness_weight)
    if rule == "best":
        plan = best_rule(inst, objective, weights=weights)[0]
    else:
        plan = dispatch(inst, rule, objective=objective)
    plan.status, plan.weights = "rule", weights
    return plan
