"""Running a schedule's plan on the simulated line: how a plan holds up on the real line.

The plan (:class:`linewatch.scheduling.plan.Plan`, or its JSON document) says which machine runs each operation of
each job, and when. Here each machine works through the operations the plan gives it in the plan's order (by
planned start): it waits for the next planned operation (its job's previous operation finished, its setup done)
rather than taking another job, as a line dispatching by the plan's sequence does. A job is released at its first
operation's planned start (``release="planned"``) or at its release time (``release="earliest"``); every later
operation starts as soon as its machine and its job allow. Plan time 0 is the start of the run; one plan time unit
is ``time_unit_s`` seconds.

The line model applies to the plan's machines by name: failures (time to failure counted in running time, repair
in calendar time, as :mod:`linewatch.twin.sim` does), shifts (an operation starts only in a shift; one under way
is finished), and inspections (a defective operation is reworked, i.e. run again on the same machine, with
probability ``rework_fraction``, else the job is scrapped and its remaining operations are dropped). The
instance's unavailability windows are kept: an operation that would overlap one waits for its end. Durations are
the plan's (``durations="plan"``), or scaled by a draw of the machine's cycle time over its mean
(``"variability"``, the default) or over its ideal cycle time (``"speed"``: the speed loss too).

Each replication reports, in plan time units: the realised makespan, the total (weighted) tardiness of the jobs
with a due date, the late jobs, each job's lateness against its planned end, the machines' utilisation and
downtime; :func:`run_plan` summarises replications with confidence intervals beside the plan's own figures.
It imports nothing from the service."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from linewatch.twin.calendar import Calendar, OpenClock
from linewatch.twin.experiments import Stat, replication_seeds, stat
from linewatch.twin.model import Line, TwinModelError
from linewatch.twin.sim import InitialState, epoch

RELEASES = ("planned", "earliest")
DURATIONS = ("plan", "variability", "speed")
PLAN_SCALARS = (
    "makespan",
    "weighted_tardiness",
    "tardiness",
    "late_jobs",
    "completed",
    "scrapped",
    "reworked",
    "unfinished",
    "failures",
    "downtime",
)
PLAN_MACHINE = ("utilisation", "down", "setup", "waiting")


def as_plan(plan: Any):
    """A :class:`~linewatch.scheduling.plan.Plan` from a Plan or a plan JSON document (checked against its
    instance); TwinModelError says why a document cannot be used."""
    from linewatch.scheduling.plan import Plan, PlanError, check_plan, plan_from_json

    if isinstance(plan, Plan):
        problems = check_plan(plan)
        if problems:
            raise TwinModelError(f"the plan breaks its instance: {problems[0]}")
        return plan
    try:
        return plan_from_json(plan)
    except PlanError as e:
        raise TwinModelError(str(e)) from None


def plan_machines(plan) -> list[str]:
    """The names of the machines the plan gives operations to, in the instance's order."""
    inst = plan.instance
    used = sorted({a.machine for a in plan.assignments})
    return [inst.machine_label(m) for m in used]


def check_machines(line: Line, plan) -> None:
    """TwinModelError naming the plan's machines the line model lacks (and the model's machines)."""
    known = [m.name for m in line.machines]
    missing = [n for n in plan_machines(plan) if n not in known]
    if missing:
        what = "machine" if len(missing) == 1 else "machines"
        hint = "" if plan.instance.machine_names else " (the plan's machines are numbered, not named)"
        raise TwinModelError(
            f"the plan's {what} {', '.join(repr(n) for n in missing)} {'is' if len(missing) == 1 else 'are'} not "
            f"in the line model{hint}; the model's machines: {', '.join(known)}"
        )


def planned_figures(plan) -> dict[str, Any]:
    """The plan's own figures, in plan time units: makespan, weighted tardiness, late jobs, each job's end."""
    inst = plan.instance
    ends = plan.job_ends()
    tard = sum(max(0, e - j.due) for j, e in zip(inst.jobs, ends, strict=True) if j.due is not None)
    return {
        "makespan": float(plan.makespan),
        "weighted_tardiness": float(plan.weighted_tardiness),
        "tardiness": float(tard),
        "late_jobs": len(plan.late_jobs()),
        "late": [inst.job_label(j) for j in plan.late_jobs()],
        "jobs": {inst.job_label(j): float(e) for j, e in enumerate(ends)},
    }


class _Job:
    __slots__ = ("name", "release", "due", "weight", "ready", "scrapped", "end", "planned_end")

    def __init__(self, env, name: str, n_ops: int, release: float, due: float | None, weight: float, planned_end):
        self.name = name
        self.release = release
        self.due = due
        self.weight = weight
        self.ready = [env.event() for _ in range(n_ops)]  # ready[k]: operation k may start (k-1 done or scrapped)
        self.scrapped = False
        self.end: float | None = None
        self.planned_end = planned_end


class PlanRun:
    """One replication of a plan on a line model. ``run()`` returns its figures (see the module's description)."""

    def __init__(
        self,
        line: Line,
        plan: Any,
        seed: int = 0,
        time_unit_s: float = 60.0,
        release: str = "planned",
        durations: str = "variability",
        initial: InitialState | None = None,
        start: str | float | datetime | None = None,
        limit_factor: float = 20.0,
    ):
        import simpy

        if release not in RELEASES:
            raise TwinModelError(f"release must be one of {', '.join(RELEASES)} (got {release!r})")
        if durations not in DURATIONS:
            raise TwinModelError(f"durations must be one of {', '.join(DURATIONS)} (got {durations!r})")
        if not time_unit_s > 0:
            raise TwinModelError("the plan's time unit must be > 0 seconds")
        self.plan = as_plan(plan)
        check_machines(line, self.plan)
        self.line = line
        self.seed = seed
        self.unit = float(time_unit_s)
        self.release = release
        self.durations = durations
        self.initial = initial or InitialState()
        for name in self.initial.machines:
            try:
                line.machine(name)
            except KeyError:
                raise TwinModelError(f"initial state: machines.{name}: unknown machine") from None
        self.rng = random.Random(seed)
        self.env = simpy.Environment()
        self.t0 = epoch(start, line)
        planned_s = max(self.plan.makespan, 1) * self.unit
        # a cap, so that a machine down for good or a shift calendar that never opens cannot run forever
        self.limit = planned_s * limit_factor + 30 * 86400.0
        cal = Calendar(line)
        self.clock = OpenClock(cal.open_intervals(self.t0, self.t0 + self.limit + 1), cal.always)
        inst = self.plan.instance
        ends = self.plan.job_ends()
        firsts = {a.job: a.start for a in self.plan.assignments if a.index == 0}
        self.jobs = []
        for j, job in enumerate(inst.jobs):
            rel = firsts.get(j, job.release) if release == "planned" else job.release
            self.jobs.append(
                _Job(
                    self.env,
                    inst.job_label(j),
                    len(job.operations),
                    rel * self.unit,
                    None if job.due is None else job.due * self.unit,
                    job.weight,
                    ends[j] * self.unit,
                )
            )
        self.by_machine: dict[int, list] = {}
        for a in sorted(self.plan.assignments, key=lambda a: (a.start, a.end, a.job, a.index)):
            self.by_machine.setdefault(a.machine, []).append(a)
        self.acc: dict[str, dict[str, float]] = {}
        self.failures: dict[str, int] = {}
        self.reworked = 0
        self.left = len(self.jobs)
        self.done = self.env.event()

    # -- one machine ------------------------------------------------------------------------------------------------
    def _machine(self, index: int):
        env = self.env
        inst = self.plan.instance
        name = inst.machine_label(index)
        m = self.line.machine(name)
        rng = self.rng
        acc = self.acc.setdefault(name, {"running": 0.0, "down": 0.0, "setup": 0.0})
        self.failures[name] = 0
        modes = [(f.ttf_s.sampler(rng), f.ttr_s.sampler(rng)) for f in m.failures]
        ttf = [fail() for fail, _ in modes]
        dist = m.ops[0].cycle_time_s
        draw = dist.sampler(rng) if self.durations != "plan" and dist.dist != "fixed" else None
        ref = dist.mean_value if self.durations == "variability" else m.ops[0].ideal_s
        ins = self.line.inspection_at(name)
        windows = [(w.start * self.unit, None if w.end is None else w.end * self.unit) for w in inst.windows_on(index)]
        setups = inst.setups.get(index)
        clock, t0 = self.clock, self.t0

        start = self.initial.machines.get(name)
        if start is not None and start.state in ("down", "maintenance") and start.remaining_s > 0:
            acc["down"] += start.remaining_s
            yield env.timeout(start.remaining_s)
        prev_job = None
        for a in self.by_machine.get(index, []):
            job = self.jobs[a.job]
            if job.scrapped:
                continue
            # the setup for the next planned job is done as soon as the machine is free, before the job arrives
            need = setups[prev_job][a.job] * self.unit if setups is not None and prev_job is not None else 0.0
            if need > 0:
                acc["setup"] += need
                yield env.timeout(need)
            yield job.ready[a.index]
            if job.scrapped:
                continue
            prev_job = a.job
            if a.index == 0 and job.release > env.now:
                yield env.timeout(job.release - env.now)
            nominal = (a.end - a.start) * self.unit
            while True:  # wait for the shift and the end of any unavailability window the operation would overlap
                t = env.now
                nxt = clock.next_open(t0 + t)
                if nxt is None:
                    yield env.event()  # closed for good: this job never finishes (reported unfinished)
                if nxt != t0 + t:
                    yield env.timeout(nxt - t0 - t)
                    continue
                w = next((w for w in windows if w[0] < t + max(nominal, 1e-9) and (w[1] is None or t < w[1])), None)
                if w is None:
                    break
                if w[1] is None:
                    yield env.event()  # down indefinitely
                yield env.timeout(w[1] - t)
            while True:  # the operation; again when the inspection sends it to rework
                work = nominal * (draw() / ref) if draw is not None and ref > 0 else nominal
                if modes:
                    while True:
                        k = min(range(len(ttf)), key=ttf.__getitem__)
                        if work < ttf[k]:
                            yield env.timeout(work)
                            acc["running"] += work
                            for i in range(len(ttf)):
                                ttf[i] -= work
                            break
                        nt = ttf[k]
                        yield env.timeout(nt)
                        acc["running"] += nt
                        for i in range(len(ttf)):
                            ttf[i] -= nt
                        work -= nt
                        repair = modes[k][1]()
                        self.failures[name] += 1
                        acc["down"] += repair
                        yield env.timeout(repair)
                        ttf[k] = modes[k][0]()
                else:
                    yield env.timeout(work)
                    acc["running"] += work
                if ins is not None and ins.defect_rate and rng.random() < ins.defect_rate:
                    if ins.rework_fraction and rng.random() < ins.rework_fraction:
                        self.reworked += 1
                        continue
                    self._finish(job, scrapped=True, from_index=a.index)
                    break
                if a.index + 1 < len(job.ready):
                    job.ready[a.index + 1].succeed()
                else:
                    self._finish(job)
                break

    def _finish(self, job: _Job, scrapped: bool = False, from_index: int = 0) -> None:
        job.end = self.env.now
        if scrapped:
            job.scrapped = True
            for ev in job.ready[from_index + 1 :]:
                ev.succeed()  # the machines skip the scrapped job's remaining operations
        self.left -= 1
        if self.left == 0:
            self.done.succeed()

    # -- running ----------------------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        env = self.env
        for job in self.jobs:
            job.ready[0].succeed()
        for index in self.by_machine:
            env.process(self._machine(index))
        env.run(until=env.any_of([self.done, env.timeout(self.limit)]))
        return self._result()

    def _result(self) -> dict[str, Any]:
        u = self.unit
        finished = [j for j in self.jobs if j.end is not None]
        unfinished = len(self.jobs) - len(finished)
        span = max((j.end for j in finished), default=0.0)
        makespan = span / u if unfinished == 0 else math.nan
        completed = [j for j in finished if not j.scrapped]
        late = [j for j in completed if j.due is not None and j.end > j.due + 1e-9]
        jobs = {}
        for j in self.jobs:
            jobs[j.name] = {
                "end": None if j.end is None else j.end / u,
                "lateness": None if j.end is None or j.scrapped else (j.end - j.planned_end) / u,
                "tardiness": None if j.end is None or j.scrapped or j.due is None else max(0.0, j.end - j.due) / u,
                "scrapped": j.scrapped,
            }
        machines = {}
        horizon = span if unfinished == 0 else self.env.now
        for name, acc in self.acc.items():
            busy = acc["running"] + acc["down"] + acc["setup"]
            machines[name] = {
                "utilisation": acc["running"] / horizon if horizon > 0 else math.nan,
                "down": acc["down"] / horizon if horizon > 0 else math.nan,
                "setup": acc["setup"] / horizon if horizon > 0 else math.nan,
                "waiting": max(0.0, horizon - busy) / horizon if horizon > 0 else math.nan,
                "downtime": acc["down"] / u,
                "failures": self.failures.get(name, 0),
            }
        active = {n: m["utilisation"] + m["down"] for n, m in machines.items()}
        return {
            "seed": self.seed,
            "makespan": makespan,
            "weighted_tardiness": sum(j.weight * max(0.0, j.end - j.due) for j in late) / u,
            "tardiness": sum(max(0.0, j.end - j.due) for j in late) / u,
            "late_jobs": len(late),
            "late": [j.name for j in late],
            "completed": len(completed),
            "scrapped": sum(1 for j in finished if j.scrapped),
            "reworked": self.reworked,
            "unfinished": unfinished,
            "failures": sum(self.failures.values()),
            "downtime": sum(a["down"] for a in self.acc.values()) / u,
            "jobs": jobs,
            "machines": machines,
            "bottleneck": max(active, key=active.get) if active else None,
        }


def simulate_plan(line: Line, plan: Any, seed: int = 0, **kw: Any) -> dict[str, Any]:
    """One replication; see :class:`PlanRun` for the options."""
    return PlanRun(line, plan, seed=seed, **kw).run()


@dataclass
class PlanSummary:
    """Replications of a plan on one line model: their figures with confidence intervals, beside the plan's."""

    name: str
    seeds: list[int]
    results: list[dict[str, Any]]
    planned: dict[str, Any]
    time_unit_s: float
    stats: dict[str, Stat] = field(default_factory=dict)
    jobs: list[dict[str, Any]] = field(default_factory=list)
    bottleneck: dict[str, float] = field(default_factory=dict)

    @property
    def hours(self) -> float:
        """The plan's makespan in hours (the span the replications cover, as planned)."""
        return self.planned["makespan"] * self.time_unit_s / 3600.0

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.name,
            "hours": self.hours,
            "replications": len(self.results),
            "seeds": self.seeds,
            "bottleneck": self.bottleneck,
            "stats": {k: v.to_json() for k, v in self.stats.items()},
            "planned": self.planned,
            "jobs": self.jobs,
        }


def flatten_plan(result: dict[str, Any]) -> dict[str, float]:
    """One replication's figures under flat names: ``makespan``, ``machines.saw.utilisation``."""
    out = {k: result.get(k) for k in PLAN_SCALARS}
    for name, m in result["machines"].items():
        for k in PLAN_MACHINE:
            out[f"machines.{name}.{k}"] = m.get(k)
    return out


def summarise_plan(
    name: str, plan, seeds: list[int], results: list[dict[str, Any]], time_unit_s: float, level: float = 0.95
) -> PlanSummary:
    from collections import Counter

    planned = planned_figures(plan)
    flat = [flatten_plan(r) for r in results]
    s = PlanSummary(name, seeds, results, planned, time_unit_s)
    s.stats = {k: stat([f.get(k) for f in flat], level) for k in (list(flat[0]) if flat else [])}
    inst = plan.instance
    n = len(results)
    for j, job in enumerate(inst.jobs):
        label = inst.job_label(j)
        rs = [r["jobs"][label] for r in results]
        s.jobs.append(
            {
                "job": label,
                "due": job.due,
                "weight": job.weight,
                "planned_end": planned["jobs"][label],
                "end": stat([r["end"] for r in rs], level).to_json(),
                "lateness": stat([r["lateness"] for r in rs], level).to_json(),
                "late_share": sum(1 for r in rs if (r["tardiness"] or 0) > 0) / n if n else math.nan,
                "scrapped_share": sum(1 for r in rs if r["scrapped"]) / n if n else math.nan,
            }
        )
    votes = Counter(r["bottleneck"] for r in results if r["bottleneck"] is not None)
    s.bottleneck = {k: v / n for k, v in votes.most_common()}
    return s


def run_plan(
    line: Line,
    plan: Any,
    replications: int = 10,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    name: str = "base",
    level: float = 0.95,
    **kw: Any,
) -> PlanSummary:
    """``replications`` independent runs of the plan on the line (options of :class:`PlanRun` in ``kw``), with
    the seeds :func:`linewatch.twin.experiments.replication_seeds` derives (common random numbers across models)."""
    if replications < 1:
        raise ValueError("replications must be >= 1")
    p = as_plan(plan)
    check_machines(line, p)
    seeds = replication_seeds(seed, replications)
    results = []
    for i, s in enumerate(seeds):
        results.append(PlanRun(line, p, seed=s, **kw).run())
        if progress is not None:
            progress(i + 1, replications)
    return summarise_plan(name, p, seeds, results, kw.get("time_unit_s", 60.0), level)
