"""Schedules in the service: job-shop instances stored as resources, solved and replanned as background jobs
(job kinds ``schedule_solve`` and ``schedule_replan``) with the solver's incumbent and bound streamed as
``ScheduleProgress`` events, and one active plan published as ``PlanActivated``.

The scheduling engine (``linewatch.scheduling``) does the work; this module stores what goes in and comes out.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from linewatch.core.events import EventBus, PlanActivated, ScheduleProgress
from linewatch.errors import LinewatchError
from linewatch.services.context import AppContext
from linewatch.services.errors import Conflict, NotFound
from linewatch.store.tables import Job, Schedule

PROGRESS_EVERY_S = 0.25  # incumbent events at most this often


def _instance(doc: Any = None, text: str | None = None, name: str = "instance"):
    from linewatch.core.extras import require

    require("scheduling", "scheduling in the service")
    from linewatch.scheduling.formats import instance_from_json, parse_jsplib, parse_taillard

    if text is not None:
        stripped = text.lstrip()
        if stripped.startswith("{"):
            import json

            try:
                doc = json.loads(text)
            except ValueError as e:
                raise LinewatchError(f"{name} is not valid JSON: {e}") from None
        elif any(line.strip().lower() == "times" for line in text.splitlines()):
            return parse_taillard(text, where=name).validate()
        else:
            return parse_jsplib(text, where=name).validate()
    return instance_from_json(doc, where=name).validate()


def create_schedule(session: Session, name: str, instance: Any, text: str | None, user_id: int | None) -> Schedule:
    """Store an instance (linewatch JSON, or JSPLIB/Taillard text), validated: InstanceError says what is wrong."""
    from linewatch.scheduling.formats import instance_to_json

    inst = _instance(instance, text, name)
    if not inst.name:
        inst.name = name
    with session.begin():
        row = Schedule(name=name, instance=instance_to_json(inst), params={}, created_by=user_id)
        session.add(row)
    return row


def list_schedules(session: Session, limit: int) -> list[Schedule]:
    return list(session.scalars(select(Schedule).order_by(Schedule.id.desc()).limit(limit)))


def get_schedule(session: Session, schedule_id: int) -> Schedule:
    row = session.get(Schedule, schedule_id)
    if row is None:
        raise NotFound(f"no schedule {schedule_id}")
    return row


def active_schedule(session: Session) -> Schedule:
    row = session.scalar(select(Schedule).where(Schedule.active.is_(True)))
    if row is None:
        raise NotFound("no plan is active")
    return row


def _busy(row: Schedule) -> None:
    if row.status == "solving":
        raise Conflict(f"schedule {row.id} is being solved")


def start_solve(
    session: Session, ctx: AppContext, schedule_id: int, solver: str, params: dict, user_id: int | None
) -> Job:
    """A queued ``schedule_solve`` job for the schedule (its plan is replaced by the new one)."""
    from linewatch.scheduling.methods import SOLVERS

    values = SOLVERS[solver].params.validate(params)  # a bad parameter: 400 now, not a failed job
    with session.begin():
        row = get_schedule(session, schedule_id)
        _busy(row)
        if row.parent_id is not None:
            raise Conflict(f"schedule {row.id} is a replan: solve its parent, or replan again")
        job = Job(kind="schedule_solve", params={"schedule_id": row.id}, created_by=user_id)
        session.add(job)
        session.flush()
        row.status, row.solver, row.params, row.job_id = "solving", solver, values, job.id
    ctx.jobs.submit(job.id)
    return job


def start_replan(
    session: Session, ctx: AppContext, schedule_id: int, event: dict, params: dict, user_id: int | None
) -> tuple[Job, Schedule]:
    """A new schedule repairing ``schedule_id``'s plan after ``event``, and the queued job computing it."""
    from linewatch.scheduling.methods import ReplanParams
    from linewatch.scheduling.plan import plan_from_json
    from linewatch.scheduling.replan import event_from_json

    values = ReplanParams.validate(params)
    with session.begin():
        parent = get_schedule(session, schedule_id)
        if parent.status != "solved" or parent.plan is None:
            raise Conflict(f"schedule {schedule_id} has no plan to repair ({parent.status})")
        plan = plan_from_json(parent.plan, where=f"schedule {schedule_id}'s plan")
        event_from_json(event, plan.instance)  # a bad event: 400 now
        child = Schedule(
            name=f"{parent.name} after {event.get('type')} at {event.get('time')}",
            parent_id=parent.id,
            instance=parent.instance,
            event=event,
            solver="replan",
            params=values,
            status="solving",
            created_by=user_id,
        )
        session.add(child)
        session.flush()
        job = Job(kind="schedule_replan", params={"schedule_id": child.id}, created_by=user_id)
        session.add(job)
        session.flush()
        child.job_id = job.id
    ctx.jobs.submit(job.id)
    return job, child


def _store(ctx: AppContext, schedule_id: int, plan, changes: dict | None = None, extra: dict | None = None) -> dict:
    from linewatch.scheduling.plan import check_plan

    problems = check_plan(plan)
    if problems:
        raise LinewatchError(f"the computed plan is infeasible: {problems[0]}")
    summary = {**plan.summary(), **(extra or {})}
    with ctx.sessions() as s, s.begin():
        row = s.get(Schedule, schedule_id)
        row.plan, row.summary, row.changes, row.status = plan.to_json(), summary, changes, "solved"
    return summary


def _reporter(ctx: AppContext, schedule_id: int, limit: float, progress):
    last = {"t": 0.0}

    def report(elapsed: float, value: float, bound: float) -> None:
        t = time.monotonic()
        if t - last["t"] < PROGRESS_EVERY_S:
            return
        last["t"] = t
        ctx.bus.publish(
            ScheduleProgress(schedule_id=schedule_id, elapsed_s=round(elapsed, 3), value=value, bound=bound)
        )
        try:
            progress("solve", min(int(elapsed * 1000), int(limit * 1000)), int(limit * 1000))
        except Exception:
            # a cancel asked for: the solver cannot be interrupted from its callback; the job ends at its time
            # limit and is marked then (see run_solve)
            last["cancel"] = True

    return report, last


def run_solve(ctx: AppContext, job_id: int, params: dict, progress) -> dict:
    """Job kind ``schedule_solve``."""
    from linewatch.scheduling.formats import instance_from_json
    from linewatch.scheduling.methods import SOLVERS

    sid = params["schedule_id"]
    with ctx.sessions() as s:
        row = s.get(Schedule, sid)
        if row is None:
            raise LinewatchError(f"schedule {sid} no longer exists")
        doc, solver, values = row.instance, row.solver or "cpsat", dict(row.params)
    try:
        inst = instance_from_json(doc).validate()
        progress("solve", 0, 1)
        kwargs = dict(values)
        if solver == "cpsat":
            report, state = _reporter(ctx, sid, float(values["time_limit"]), progress)
            kwargs["report"] = report
        plan = SOLVERS[solver].load()(inst, **kwargs)
        if solver == "cpsat" and state.get("cancel"):
            progress("solve", 1, 1)  # raises Cancelled for a cancel asked while the solver ran
        summary = _store(ctx, sid, plan)
    except BaseException:
        _failed(ctx, sid)
        raise
    progress("solve", 1, 1)
    return {"schedule_id": sid, **summary}


def run_replan(ctx: AppContext, job_id: int, params: dict, progress) -> dict:
    """Job kind ``schedule_replan``."""
    from linewatch.scheduling.plan import plan_from_json
    from linewatch.scheduling.replan import ChangeCost, event_from_json, replan

    sid = params["schedule_id"]
    with ctx.sessions() as s:
        row = s.get(Schedule, sid)
        parent = s.get(Schedule, row.parent_id) if row is not None and row.parent_id else None
        if row is None or parent is None or parent.plan is None:
            raise LinewatchError(f"schedule {sid} or the plan it repairs no longer exists")
        old_doc, event, values = parent.plan, row.event, dict(row.params)
    try:
        progress("solve", 0, 1)
        old = plan_from_json(old_doc)
        r = replan(
            old,
            event_from_json(event, old.instance),
            time_limit=values["time_limit"],
            workers=values["workers"],
            cost=ChangeCost(values["per_move"], values["per_shift"]),
        )
        extra = {"first_feasible_s": round(r.first_s, 3), "first_feasible_value": r.first.value()}
        summary = _store(ctx, sid, r.plan, r.changes.to_json(), extra)
    except BaseException:
        _failed(ctx, sid)
        raise
    progress("solve", 1, 1)
    return {"schedule_id": sid, **summary, "changes": r.changes.to_json()}


def _failed(ctx: AppContext, schedule_id: int) -> None:
    with ctx.sessions() as s, s.begin():
        s.execute(
            update(Schedule).where(Schedule.id == schedule_id, Schedule.status == "solving").values(status="failed")
        )


def activate(session: Session, bus: EventBus, schedule_id: int) -> Schedule:
    """Make the schedule's plan the line's plan (the one before is no longer active)."""
    with session.begin():
        row = get_schedule(session, schedule_id)
        if row.status != "solved":
            raise Conflict(f"schedule {schedule_id} is {row.status}, not solved")
        before = session.scalar(select(Schedule.id).where(Schedule.active.is_(True)))
        session.execute(update(Schedule).where(Schedule.active.is_(True)).values(active=False))
        row.active = True
        event = PlanActivated(schedule_id=row.id, name=row.name, summary=row.summary or {}, previous_id=before)
    bus.publish(event)
    return row
