"""Repairing a plan after an event, without throwing the day away.

At the event's time ``now`` operations already started stay where they are (an operation running on a machine that
goes down is interrupted: its work is lost and it is planned again). Everything else is replanned for the objective
plus the cost of change (operations moved to another machine, start shifts; :class:`ChangeCost`). Two answers come
back: the *first feasible* repair in milliseconds (the old plan's order and machines, pushed right where needed,
or the best dispatching rule if that is better), then the solver's plan.

Events (JSON ``{"type": ..., "time": ...}``):

- ``machine_down``: ``machine``, optional ``until`` (absent/null: indefinitely), from ``time``;
- ``machine_up``: ``machine`` is back at ``time`` (its current unavailability ends there);
- ``rush_order``: ``job`` (as in the instance JSON: operations, due, weight) released at ``time``;
- ``operation_delayed``: operation ``index`` of ``job`` takes ``delay`` longer.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from linewatch.errors import LinewatchError
from linewatch.scheduling.formats import instance_from_json
from linewatch.scheduling.model import MAX_TIME, Instance, InstanceError, Operation, Option, Window
from linewatch.scheduling.plan import Assignment, Plan
from linewatch.scheduling.rules import INF, _fits, best_rule

EVENT_TYPES = ("machine_down", "machine_up", "rush_order", "operation_delayed")


class EventError(LinewatchError):
    """An event that cannot be applied to the plan (unknown type, machine, job or operation)."""


@dataclass
class Event:
    type: str
    time: int
    machine: int | None = None
    until: int | None = None
    job: int | None = None
    index: int | None = None
    delay: int = 0
    new_job: dict[str, Any] | None = None  # rush order, as in the instance JSON


def event_from_json(doc: Any, inst: Instance, where: str = "event") -> Event:
    if not isinstance(doc, dict):
        raise EventError(f"{where}: expected a JSON object with 'type' and 'time'")
    kind = doc.get("type")
    if kind not in EVENT_TYPES:
        raise EventError(f"{where}: unknown event type {kind!r}: choose one of {', '.join(EVENT_TYPES)}")
    t = doc.get("time")
    if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t <= MAX_TIME:
        raise EventError(f"{where}: 'time' must be a whole number from 0 to {MAX_TIME:,}")
    ev = Event(kind, t)
    if kind in ("machine_down", "machine_up"):
        mach = doc.get("machine")
        if isinstance(mach, str) and inst.machine_names and mach in inst.machine_names:
            mach = inst.machine_names.index(mach)
        if isinstance(mach, bool) or not isinstance(mach, int) or not 0 <= mach < inst.n_machines:
            raise EventError(f"{where}: unknown machine {mach!r} (machines are 0..{inst.n_machines - 1})")
        ev.machine = mach
        until = doc.get("until")
        if until is not None and (isinstance(until, bool) or not isinstance(until, int) or not t < until <= MAX_TIME):
            raise EventError(f"{where}: 'until' must be a whole number after 'time' (at most {MAX_TIME:,}), or null")
        ev.until = until
    elif kind == "rush_order":
        if not isinstance(doc.get("job"), dict):
            raise EventError(f"{where}: a rush order needs a 'job' object (operations, due, weight)")
        ev.new_job = doc["job"]
    else:
        j, k, d = doc.get("job"), doc.get("index"), doc.get("delay")
        if isinstance(j, bool) or not isinstance(j, int) or not 0 <= j < len(inst.jobs):
            raise EventError(f"{where}: unknown job {j!r}")
        if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < len(inst.jobs[j].operations):
            raise EventError(f"{where}: job {j} has no operation {k!r}")
        if isinstance(d, bool) or not isinstance(d, int) or not 0 < d <= MAX_TIME:
            raise EventError(f"{where}: 'delay' must be a whole number from 1 to {MAX_TIME:,}")
        ev.job, ev.index, ev.delay = j, k, d
    return ev


def load_event(path: str | Path, inst: Instance) -> Event:
    p = Path(path)
    try:
        doc = json.loads(p.read_text())
    except FileNotFoundError:
        raise EventError(f"event file {p} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise EventError(f"cannot read event file {p}: {e}") from None
    except json.JSONDecodeError as e:
        raise EventError(f"{p} is not valid JSON: {e}") from None
    except RecursionError:
        raise EventError(f"{p} is nested too deeply to read") from None
    return event_from_json(doc, inst, where=str(p))


@dataclass
class ChangeCost:
    """The price of changing the plan, in objective units: per operation moved to another machine and per time unit
    an operation's start shifts. Zero both to replan for the objective alone."""

    per_move: float = 5.0
    per_shift: float = 0.01


@dataclass
class Changes:
    moved: list[tuple[int, int, int, int]] = field(default_factory=list)  # job, index, old machine, new machine
    shifted: int = 0  # operations whose start changed
    total_shift: int = 0
    max_shift: int = 0
    interrupted: list[tuple[int, int]] = field(default_factory=list)

    def cost(self, cc: ChangeCost) -> float:
        return cc.per_move * len(self.moved) + cc.per_shift * self.total_shift

    def to_json(self) -> dict[str, Any]:
        return {
            "moved": [{"job": j, "index": k, "from": a, "to": b} for j, k, a, b in self.moved],
            "moved_operations": len(self.moved),
            "shifted_operations": self.shifted,
            "total_shift": self.total_shift,
            "max_shift": self.max_shift,
            "interrupted": [{"job": j, "index": k} for j, k in self.interrupted],
        }


def compare(old: Plan, new: Plan) -> Changes:
    """What changed from ``old`` to ``new`` among the operations both plan."""
    ch = Changes()
    before = old.by_op()
    for a in new.assignments:
        b = before.get((a.job, a.index))
        if b is None:
            continue
        if a.machine != b.machine:
            ch.moved.append((a.job, a.index, b.machine, a.machine))
        d = abs(a.start - b.start)
        if d:
            ch.shifted += 1
            ch.total_shift += d
            ch.max_shift = max(ch.max_shift, d)
    return ch


def apply_event(plan: Plan, ev: Event) -> tuple[Instance, list[Assignment], list[tuple[int, int]]]:
    """The instance after the event, the operations that stay (started before ``ev.time`` and not interrupted),
    and the interrupted ones."""
    inst = copy.deepcopy(plan.instance)
    now = ev.time
    started = [a for a in plan.assignments if a.start < now]
    interrupted: list[tuple[int, int]] = []
    if ev.type == "machine_down":
        inst.unavailable.append(Window(ev.machine, now, ev.until))
        keep = []
        for a in started:
            if a.machine == ev.machine and a.end > now and a.end > a.start:
                interrupted.append((a.job, a.index))
            else:
                keep.append(a)
        started = keep
    elif ev.type == "machine_up":
        wins = []
        for w in inst.unavailable:
            if w.machine == ev.machine and w.start <= now and (w.end is None or w.end > now):
                if w.start < now:
                    wins.append(Window(w.machine, w.start, now))
            else:
                wins.append(w)
        inst.unavailable = wins
    elif ev.type == "rush_order":
        n = len(inst.jobs)
        doc = {"machines": inst.machine_names or inst.n_machines, "jobs": [ev.new_job]}
        try:
            (job,) = instance_from_json(doc, where="rush order").jobs
        except InstanceError as e:
            raise EventError(str(e)) from None
        job.release = max(job.release, now)
        job.name = job.name or f"rush-{n}"
        inst.jobs.append(job)
        for table in inst.setups.values():  # no setup to or from the new job unless the file says so
            for row in table:
                row.append(0)
            table.append([0] * (n + 1))
    else:
        op = inst.jobs[ev.job].operations[ev.index]
        inst.jobs[ev.job].operations[ev.index] = Operation(
            [Option(o.machine, o.duration + ev.delay) for o in op.options]
        )
        started = [
            Assignment(a.job, a.index, a.machine, a.start, a.end + ev.delay)
            if (a.job, a.index) == (ev.job, ev.index)
            else a
            for a in started
        ]
    # a job's kept operations must be a prefix: drop anything after an interrupted one
    cut = {j: k for j, k in interrupted}
    started = [a for a in started if a.index < cut.get(a.job, 1 << 30)]
    try:
        inst.validate()
    except InstanceError as e:
        raise EventError(f"after the event: {e}") from None
    gone = {w.machine for w in inst.unavailable if w.end is None and w.start <= now}
    kept = {(a.job, a.index) for a in started}
    for j, job in enumerate(inst.jobs):
        for k, op in enumerate(job.operations):
            if (j, k) not in kept and all(o.machine in gone for o in op.options):
                raise EventError(
                    f"after the event, job {inst.job_label(j)} operation {k} has no machine left: "
                    f"machine(s) {', '.join(map(str, op.machines))} down indefinitely"
                )
    return inst, started, interrupted


def right_shift(old: Plan, inst: Instance, fixed: list[Assignment], now: int) -> Plan:
    """The least-change repair: the old plan's order and machines, each operation started as early as the event
    allows (after ``now``, its job, its machine and any window); an operation whose machine is down for good goes to
    its eligible machine that finishes first."""
    t0 = time.perf_counter()
    fixed_keys = {(a.job, a.index) for a in fixed}
    job_ready = [max(j.release, now) for j in inst.jobs]
    mach_free = [float(now)] * inst.n_machines
    mach_last: list[int | None] = [None] * inst.n_machines
    windows = [[(w.start, INF if w.end is None else w.end) for w in inst.windows_on(m)] for m in range(inst.n_machines)]
    for a in fixed:
        job_ready[a.job] = max(job_ready[a.job], a.end)
        if a.end >= mach_free[a.machine]:
            mach_free[a.machine], mach_last[a.machine] = a.end, a.job
    old_by = old.by_op()
    todo = [(j, k) for j, job in enumerate(inst.jobs) for k in range(len(job.operations)) if (j, k) not in fixed_keys]
    # old order first (start time, then job order); new operations (a rush order) after the old ones of equal start
    todo.sort(key=lambda jk: (old_by[jk].start if jk in old_by else now, jk[1], jk[0]))
    # the order must respect each job's sequence: process by repeatedly taking the earliest ready operation
    nxt = {j: min((k for jj, k in todo if jj == j), default=None) for j in range(len(inst.jobs))}
    pending = list(todo)
    out = list(fixed)
    while pending:
        i = next(i for i, (j, k) in enumerate(pending) if nxt[j] == k)
        j, k = pending.pop(i)
        op = inst.jobs[j].operations[k]
        prefer = old_by[(j, k)].machine if (j, k) in old_by else None
        best = None
        for o in op.options:
            s = max(job_ready[j], mach_free[o.machine])
            setup = inst.setups.get(o.machine)
            if setup and mach_last[o.machine] is not None:
                s = max(s, mach_free[o.machine] + setup[mach_last[o.machine]][j])
            s = _fits(windows[o.machine], s, o.duration)
            key = (o.machine != prefer or s == INF, s + o.duration)
            if best is None or key < best[0]:
                best = (key, s, o)
        _, s, o = best
        if s == INF:
            raise EventError(f"job {inst.job_label(j)} operation {k} has no machine left to run on")
        out.append(Assignment(j, k, o.machine, int(s), int(s + o.duration)))
        job_ready[j] = int(s + o.duration)
        mach_free[o.machine] = max(mach_free[o.machine], s + o.duration)
        mach_last[o.machine] = j
        nxt[j] = k + 1 if k + 1 < len(inst.jobs[j].operations) else None
    return Plan(
        inst,
        out,
        objective=old.objective,
        solver="repair:right-shift",
        status="feasible",
        wall_s=time.perf_counter() - t0,
        now=now,
    )


@dataclass
class Replan:
    """The outcome of a replan: the first feasible repair, the final plan, what changed, and the timings."""

    event: Event
    first: Plan
    plan: Plan
    changes: Changes
    first_s: float
    total_s: float

    def to_json(self) -> dict[str, Any]:
        return {
            "event": {k: v for k, v in self.event.__dict__.items() if v is not None},
            "first_feasible": {
                "solver": self.first.solver,
                "value": self.first.value(),
                "seconds": round(self.first_s, 3),
            },
            "seconds": round(self.total_s, 3),
            "changes": self.changes.to_json(),
            "plan": self.plan.to_json(),
        }


def replan(
    plan: Plan,
    event: Event,
    *,
    time_limit: float = 5.0,
    workers: int = 2,
    cost: ChangeCost | None = None,
    objective: str | None = None,
    solve: bool = True,
) -> Replan:
    """Repair ``plan`` after ``event``: the first feasible repair (right shift) at once, then (``solve``) the better
    of it and the best rule as CP-SAT's hint, and CP-SAT within ``time_limit`` seconds in all on the objective plus
    the change cost."""
    t0 = time.perf_counter()
    cost = cost or ChangeCost()
    obj = objective or plan.objective
    inst, fixed, interrupted = apply_event(plan, event)
    now = event.time

    def total(p: Plan) -> tuple:
        """How the replan ranks plans: the objective plus the change cost (lexicographic: tardiness first)."""
        change = compare(plan, p).cost(cost)
        if obj == "lexicographic":
            return (p.weighted_tardiness, p.makespan + change)
        p.weights = plan.weights
        return (p.value(obj) + change,)

    first = right_shift(plan, inst, fixed, now)
    first_s = time.perf_counter() - t0
    final = first
    if solve:
        from linewatch.scheduling.cpsat import ChangeCost as SolverCost
        from linewatch.scheduling.cpsat import solve_cpsat

        start = min([first, best_rule(inst, obj, fixed=fixed, now=now, weights=plan.weights)[0]], key=total)
        remaining = max(0.05, time_limit - (time.perf_counter() - t0))
        solved = solve_cpsat(
            inst,
            objective=obj,
            time_limit=remaining,
            workers=workers,
            fixed=fixed,
            now=now,
            start=start,
            change=SolverCost(plan, cost.per_move, cost.per_shift),
            weights=plan.weights,
        )
        final = min([solved, start], key=total)
    final.objective, final.now = obj, now
    changes = compare(plan, final)
    changes.interrupted = interrupted
    return Replan(event, first, final, changes, first_s, time.perf_counter() - t0)
