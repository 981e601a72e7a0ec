"""A plan (schedule): when and where each operation runs, its objective values, and its JSON file.

The file carries the instance it plans, so ``linewatch schedule replan PLAN EVENT`` needs nothing else, and a
``format_version`` so an older linewatch refuses a newer file with a clear message instead of misreading it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from linewatch.errors import LinewatchError
from linewatch.scheduling.formats import instance_from_json, instance_to_json
from linewatch.scheduling.model import Instance, InstanceError

PLAN_FORMAT = "linewatch-plan"
PLAN_VERSION = 1


class PlanError(LinewatchError):
    """A plan file that cannot be read, or a plan that breaks its instance's rules."""


@dataclass(frozen=True)
class Assignment:
    """Operation ``index`` of ``job`` runs on ``machine`` from ``start`` to ``end``."""

    job: int
    index: int
    machine: int
    start: int
    end: int


@dataclass
class Plan:
    instance: Instance
    assignments: list[Assignment]
    objective: str = "makespan"
    solver: str = ""
    bound: float | None = None  # a proven lower bound of the objective, when the solver has one
    status: str = ""  # optimal, feasible, rule, ...
    wall_s: float = 0.0
    now: int = 0  # for replanned plans: the time of the event
    weights: tuple[float, float] = (1.0, 1.0)  # makespan and tardiness weights of the weighted objective
    meta: dict[str, Any] = field(default_factory=dict)

    def by_op(self) -> dict[tuple[int, int], Assignment]:
        return {(a.job, a.index): a for a in self.assignments}

    @property
    def makespan(self) -> int:
        return max((a.end for a in self.assignments), default=0)

    def job_ends(self) -> list[int]:
        ends = [0] * len(self.instance.jobs)
        for a in self.assignments:
            ends[a.job] = max(ends[a.job], a.end)
        return ends

    @property
    def weighted_tardiness(self) -> float:
        total = 0.0
        for job, end in zip(self.instance.jobs, self.job_ends(), strict=True):
            if job.due is not None:
                total += job.weight * max(0, end - job.due)
        return total

    def late_jobs(self) -> list[int]:
        return [
            j
            for j, (job, end) in enumerate(zip(self.instance.jobs, self.job_ends(), strict=True))
            if job.due is not None and end > job.due
        ]

    def value(self, objective: str | None = None) -> float:
        """The plan's value of an objective: makespan, weighted tardiness, their weighted sum (``weights``), or for
        lexicographic its first criterion, tardiness (the makespan is reported beside it)."""
        obj = objective or self.objective
        if obj in ("tardiness", "lexicographic"):
            return self.weighted_tardiness
        if obj == "weighted":
            return self.weights[0] * self.makespan + self.weights[1] * self.weighted_tardiness
        return float(self.makespan)

    @property
    def gap(self) -> float | None:
        """Relative distance to the proven bound (0 = proven optimal)."""
        if self.bound is None:
            return None
        v = self.value()
        return 0.0 if v <= self.bound else (v - self.bound) / max(abs(v), 1e-9)

    def summary(self) -> dict[str, Any]:
        return {
            "instance": self.instance.name,
            "objective": self.objective,
            **({"weights": list(self.weights)} if self.objective == "weighted" else {}),
            "value": self.value(),
            "makespan": self.makespan,
            "weighted_tardiness": self.weighted_tardiness,
            "bound": self.bound,
            "gap": self.gap,
            "status": self.status,
            "solver": self.solver,
            "wall_s": round(self.wall_s, 3),
        }

    def to_json(self) -> dict[str, Any]:
        ops = sorted(self.assignments, key=lambda a: (a.start, a.machine, a.job))
        return {
            "format": PLAN_FORMAT,
            "format_version": PLAN_VERSION,
            **self.summary(),
            "now": self.now,
            **({"meta": self.meta} if self.meta else {}),
            "operations": [
                {"job": a.job, "index": a.index, "machine": a.machine, "start": a.start, "end": a.end} for a in ops
            ],
            "instance_data": instance_to_json(self.instance),
        }


def plan_from_json(doc: Any, where: str = "plan") -> Plan:
    if not isinstance(doc, dict) or doc.get("format") != PLAN_FORMAT:
        raise PlanError(f'{where} is not a linewatch plan (expected "format": "{PLAN_FORMAT}")')
    version = doc.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise PlanError(f"{where} has no valid format_version")
    if version > PLAN_VERSION:
        raise PlanError(
            f"{where} is plan format version {version}, newer than this linewatch reads ({PLAN_VERSION}): "
            "upgrade linewatch"
        )
    try:
        inst = instance_from_json(doc["instance_data"], where=f"{where} instance").validate()
        ops = [
            Assignment(int(o["job"]), int(o["index"]), int(o["machine"]), int(o["start"]), int(o["end"]))
            for o in doc["operations"]
        ]
        now = int(doc.get("now", 0))
        weights = tuple(float(w) for w in doc.get("weights", (1.0, 1.0)))
        if len(weights) != 2 or not all(math.isfinite(w) and w >= 0 for w in weights):
            raise ValueError(f"weights {list(weights)} are not two finite numbers >= 0")
    except InstanceError as e:
        raise PlanError(str(e)) from None
    except (KeyError, TypeError, ValueError, OverflowError) as e:  # OverflowError: an infinite time
        raise PlanError(f"{where} is missing or has a malformed field: {e}") from None
    plan = Plan(
        inst,
        ops,
        objective=str(doc.get("objective", "makespan")),
        solver=str(doc.get("solver", "")),
        bound=doc.get("bound"),
        status=str(doc.get("status", "")),
        now=now,
        weights=weights,
    )
    problems = check_plan(plan)
    if problems:
        raise PlanError(f"{where} breaks its instance: {problems[0]}")
    return plan


def save_plan(plan: Plan, path: str | Path) -> None:
    Path(path).write_text(json.dumps(plan.to_json(), indent=1) + "\n")


def load_plan(path: str | Path) -> Plan:
    p = Path(path)
    try:
        doc = json.loads(p.read_text())
    except FileNotFoundError:
        raise PlanError(f"plan file {p} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise PlanError(f"cannot read plan file {p}: {e}") from None
    except json.JSONDecodeError as e:
        raise PlanError(f"{p} is not valid JSON: {e}") from None
    except RecursionError:
        raise PlanError(f"{p} is nested too deeply to read") from None
    return plan_from_json(doc, where=str(p))


def check_plan(plan: Plan, instance: Instance | None = None) -> list[str]:
    """Every way the plan breaks its instance (empty = feasible): each operation exactly once, on an eligible
    machine with that machine's duration, in job order, after the job's release, no two at once on a machine
    (setup times included), none overlapping an unavailability window."""
    inst = instance or plan.instance
    problems: list[str] = []
    seen: dict[tuple[int, int], Assignment] = {}
    for a in plan.assignments:
        key = (a.job, a.index)
        if not (0 <= a.job < len(inst.jobs) and 0 <= a.index < len(inst.jobs[a.job].operations)):
            problems.append(f"operation {a.job}/{a.index} does not exist")
            continue
        if key in seen:
            problems.append(f"operation {a.job}/{a.index} is planned twice")
            continue
        seen[key] = a
        op = inst.jobs[a.job].operations[a.index]
        if a.machine not in op.machines:
            problems.append(f"operation {a.job}/{a.index} on machine {a.machine}, not one of {op.machines}")
        elif a.end - a.start != op.duration_on(a.machine):
            problems.append(f"operation {a.job}/{a.index} lasts {a.end - a.start}, not {op.duration_on(a.machine)}")
    missing = inst.n_operations - len(seen)
    if missing:
        problems.append(f"{missing} of {inst.n_operations} operations are not planned")
    for j, job in enumerate(inst.jobs):
        first = seen.get((j, 0))
        if first is not None and first.start < job.release:
            problems.append(f"job {j} starts at {first.start}, before its release {job.release}")
        for k in range(1, len(job.operations)):
            a, b = seen.get((j, k - 1)), seen.get((j, k))
            if a and b and b.start < a.end:
                problems.append(f"job {j} operation {k} starts at {b.start} before operation {k - 1} ends ({a.end})")
    by_machine: dict[int, list[Assignment]] = {}
    for a in seen.values():
        by_machine.setdefault(a.machine, []).append(a)
    for m, ops in by_machine.items():
        ops.sort(key=lambda a: (a.start, a.end))
        setup = inst.setups.get(m)
        for a, b in zip(ops, ops[1:], strict=False):
            need = setup[a.job][b.job] if setup else 0
            if b.start < a.end + need:
                problems.append(
                    f"machine {m} runs {a.job}/{a.index} and {b.job}/{b.index} at once"
                    + (f" (or without the setup {need})" if need else "")
                )
        for w in inst.windows_on(m):
            for a in ops:
                if a.end > a.start and a.end > w.start and (w.end is None or a.start < w.end):
                    problems.append(f"operation {a.job}/{a.index} runs on machine {m} while it is unavailable")
    return problems
