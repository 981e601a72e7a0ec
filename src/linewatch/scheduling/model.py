"""The job-shop model as plain data: the solvers, the dispatching rules, the replanner and (later) the API and the
twin all read these classes, so a plant's jobs are described once. Times are integers in the plant's time unit
(CP-SAT works on integers; minutes or seconds both fit).

A job is an ordered chain of operations; an operation runs on one of its eligible machines with that machine's
duration (one option = classic job shop, several = flexible job shop). Jobs have a release time, an optional due
date and a weight (for weighted tardiness). Machines may be unavailable in windows (maintenance, a breakdown;
``end=None`` = down until further notice) and may need sequence-dependent setups between consecutive jobs.
Precedence is the job order only, so the model cannot hold a precedence cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from linewatch.errors import LinewatchError


class InstanceError(LinewatchError):
    """An instance (jobs, machines, windows) that cannot be scheduled as written."""


# what an instance may hold: CP-SAT's variables are 64-bit integers, and a plan's times, summed over its operations and
# set-ups, must stay far below that; a machine count beyond any plant is a typo that would allocate for hours
MAX_TIME = 10**12
MAX_MACHINES = 100_000
MAX_WEIGHT = 1e9


def _time(value: int, where: str, low: int = 0) -> None:
    if not low <= value <= MAX_TIME:
        raise InstanceError(f"{where} {value} is outside {low:,}..{MAX_TIME:,} time units")


@dataclass(frozen=True)
class Option:
    """One way to run an operation: on ``machine`` for ``duration``."""

    machine: int
    duration: int


@dataclass
class Operation:
    options: list[Option]

    @property
    def machines(self) -> list[int]:
        return [o.machine for o in self.options]

    def duration_on(self, machine: int) -> int:
        for o in self.options:
            if o.machine == machine:
                return o.duration
        raise InstanceError(f"machine {machine} is not eligible for this operation")

    @property
    def min_duration(self) -> int:
        return min(o.duration for o in self.options)


@dataclass
class Job:
    operations: list[Operation]
    name: str = ""
    release: int = 0
    due: int | None = None
    weight: float = 1.0


@dataclass(frozen=True)
class Window:
    """A machine unavailable from ``start`` to ``end`` (``None``: indefinitely). No operation may overlap it."""

    machine: int
    start: int
    end: int | None = None


@dataclass
class Instance:
    jobs: list[Job]
    n_machines: int
    name: str = ""
    machine_names: list[str] | None = None
    unavailable: list[Window] = field(default_factory=list)
    # setups[machine][a][b]: time the machine needs between an operation of job a and one of job b
    setups: dict[int, list[list[int]]] = field(default_factory=dict)

    @property
    def n_operations(self) -> int:
        return sum(len(j.operations) for j in self.jobs)

    def machine_label(self, m: int) -> str:
        return self.machine_names[m] if self.machine_names else str(m)

    def job_label(self, j: int) -> str:
        return self.jobs[j].name or str(j)

    def windows_on(self, machine: int) -> list[Window]:
        return sorted((w for w in self.unavailable if w.machine == machine), key=lambda w: w.start)

    def horizon(self) -> int:
        """A time by which any sensible plan ends: everything in a row after the last release and window."""
        work = sum(max(o.duration for o in op.options) for j in self.jobs for op in j.operations)
        setup = sum(max((max(r) for r in s), default=0) for s in self.setups.values()) * max(1, len(self.jobs))
        last = max([j.release for j in self.jobs] + [w.end or w.start for w in self.unavailable] + [0])
        return last + work + setup + 1

    def validate(self) -> Instance:
        """Raise InstanceError naming the first thing that makes this instance unschedulable; return self."""
        m = self.n_machines
        if m < 1:
            raise InstanceError("the instance has no machines")
        if m > MAX_MACHINES:
            raise InstanceError(f"the instance has {m} machines; at most {MAX_MACHINES:,} are planned")
        if self.machine_names is not None and len(set(self.machine_names)) != len(self.machine_names):
            twice = next(x for x in self.machine_names if self.machine_names.count(x) > 1)
            raise InstanceError(f"machine {twice!r} is named twice: each machine needs a name of its own")
        if not self.jobs:
            raise InstanceError("the instance has no jobs")
        if self.machine_names is not None and len(self.machine_names) != m:
            raise InstanceError(f"{len(self.machine_names)} machine names for {m} machines")
        # down for good from the outset: an operation with only such machines can never run (a machine that goes down
        # later may still serve operations before then; the planners report those that cannot fit)
        down_forever = {w.machine for w in self.unavailable if w.end is None and w.start <= 0}
        for w in self.unavailable:
            if not 0 <= w.machine < m:
                raise InstanceError(f"unavailability window on unknown machine {w.machine} (machines are 0..{m - 1})")
            _time(w.start, f"unavailability window on machine {w.machine}: start")
            if w.end is not None:
                _time(w.end, f"unavailability window on machine {w.machine}: end")
            if w.end is not None and w.end < w.start:
                raise InstanceError(f"unavailability window on machine {w.machine} ends ({w.end}) before it starts")
        for j, job in enumerate(self.jobs):
            label = f"job {self.job_label(j)}"
            if not job.operations:
                raise InstanceError(f"{label} has no operations")
            if job.release < 0:
                raise InstanceError(f"{label} has a negative release time {job.release}")
            if not (0 <= job.weight <= MAX_WEIGHT):  # NaN included
                raise InstanceError(f"{label} has weight {job.weight}: weights are 0 to {MAX_WEIGHT:g}")
            _time(job.release, f"{label}: release")
            if job.due is not None:
                _time(job.due, f"{label}: due", low=-MAX_TIME)
            for k, op in enumerate(job.operations):
                where = f"{label} operation {k}"
                if not op.options:
                    raise InstanceError(f"{where} has no eligible machine")
                seen: set[int] = set()
                for o in op.options:
                    if not 0 <= o.machine < m:
                        raise InstanceError(f"{where} names unknown machine {o.machine} (machines are 0..{m - 1})")
                    if o.machine in seen:
                        raise InstanceError(f"{where} lists machine {o.machine} twice")
                    seen.add(o.machine)
                    if o.duration < 0:
                        raise InstanceError(f"{where} has a negative duration {o.duration} on machine {o.machine}")
                    _time(o.duration, f"{where} on machine {o.machine}: duration")
                if all(o.machine in down_forever for o in op.options) and any(o.duration > 0 for o in op.options):
                    ms = ", ".join(str(o.machine) for o in op.options)
                    raise InstanceError(f"{where} has no machine available: machine(s) {ms} down indefinitely")
        for mach, table in self.setups.items():
            if not 0 <= mach < m:
                raise InstanceError(f"setup times given for unknown machine {mach}")
            n = len(self.jobs)
            if len(table) != n or any(len(r) != n for r in table):
                raise InstanceError(f"setup times on machine {mach} must be a {n}x{n} table (jobs x jobs)")
            if any(v < 0 for r in table for v in r):
                raise InstanceError(f"setup times on machine {mach} include a negative value")
            for r in table:
                for v in r:
                    _time(v, f"setup times on machine {mach}")
        if self.horizon() > MAX_TIME:
            raise InstanceError(
                f"the instance's work adds up to {self.horizon():,} time units, more than a plan can hold "
                f"({MAX_TIME:,}): use a coarser time unit (minutes instead of seconds)"
            )
        return self
