"""Schedules: job-shop instances, solving and replanning as background jobs, the active plan."""

from __future__ import annotations

from fastapi import APIRouter, Query

from linewatch.api.deps import DB, Ctx, Engineer, Id, Viewer
from linewatch.api.schemas import JobOut, ReplanIn, ScheduleDetailOut, ScheduleIn, ScheduleOut, SolveIn, errors
from linewatch.errors import LinewatchError
from linewatch.services import schedules
from linewatch.services.errors import Conflict

router = APIRouter(prefix="/api/v1/schedules", tags=["schedules"], responses=errors(400, 401, 403, 422))
NOT_FOUND = errors(404)


@router.get("", response_model=list[ScheduleOut])
def list_schedules(_: Viewer, session: DB, limit: int = Query(100, ge=1, le=1000)):
    """Newest first (without their plans: GET /schedules/{id} has them)."""
    return schedules.list_schedules(session, limit)


@router.post(
    "",
    response_model=ScheduleOut,
    status_code=201,
    responses=errors(409, e409="the instance is not a job shop this linewatch can plan (the detail says why)"),
)
def create_schedule(body: ScheduleIn, who: Engineer, session: DB):
    """Store an instance (linewatch JSON or JSPLIB/Taillard text). What the schema cannot check (machines that
    exist, durations, the text's format) is a 409 saying what is wrong."""
    if (body.instance is None) == (body.text is None):
        raise Conflict("give the instance either as JSON (instance) or as text (text)")
    try:
        return schedules.create_schedule(session, body.name, body.instance, body.text, who.user_id)
    except LinewatchError as e:
        raise Conflict(str(e)) from None


@router.get("/active", response_model=ScheduleDetailOut, responses=errors(404, e404="no plan is active"))
def active_schedule(_: Viewer, session: DB):
    """The line's plan."""
    return schedules.active_schedule(session)


@router.get("/{schedule_id}", response_model=ScheduleDetailOut, responses=NOT_FOUND)
def get_schedule(schedule_id: Id, _: Viewer, session: DB):
    return schedules.get_schedule(session, schedule_id)


@router.post(
    "/{schedule_id}/solve",
    response_model=JobOut,
    status_code=202,
    responses=errors(404, 409, e409="being solved, or a replan"),
)
def solve(schedule_id: Id, body: SolveIn, who: Engineer, session: DB, c: Ctx):
    """Solve in the background (follow the job; the incumbent and bound arrive as schedule_progress events)."""
    return schedules.start_solve(session, c, schedule_id, body.solver, body.params, who.user_id)


@router.post(
    "/{schedule_id}/replan",
    response_model=JobOut,
    status_code=202,
    responses=errors(404, 409, e409="the schedule has no plan yet"),
)
def replan(schedule_id: Id, body: ReplanIn, who: Engineer, session: DB, c: Ctx):
    """Repair the schedule's plan after an event: a new schedule (its parent this one) with what changed; operations
    already started stay. The job's result names the new schedule."""
    job, _child = schedules.start_replan(session, c, schedule_id, body.event, body.params, who.user_id)
    return job


@router.post(
    "/{schedule_id}/activate",
    response_model=ScheduleOut,
    responses=errors(404, 409, e409="not solved"),
)
def activate(schedule_id: Id, _: Engineer, session: DB, c: Ctx):
    """Make this schedule's plan the line's plan (a plan_activated event)."""
    return schedules.activate(session, c.bus, schedule_id)
