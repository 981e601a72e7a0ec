"""The digital twin of a line: its model, live state and history, OEE, simulations, AAS export."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Response
from fastapi.responses import JSONResponse

from linewatch.api.deps import DB, Ctx, Engineer, Id, Name, Operator, Viewer
from linewatch.api.schemas import (
    LineModelOut,
    SimulationIn,
    SimulationOut,
    SimulationStartedOut,
    TimeFilter,
    TwinAcceptedOut,
    TwinEventIn,
    TwinEventsOut,
    TwinModelErrorOut,
    TwinOeeOut,
    TwinStateOut,
    ValidationErrorOut,
    errors,
)
from linewatch.errors import LinewatchError
from linewatch.services import twin as svc
from linewatch.services.context import AppContext
from linewatch.services.errors import NotFound

router = APIRouter(prefix="/api/v1/lines", tags=["twin"], responses=errors(400, 401, 403, 422))
NOT_FOUND = errors(404, e404="unknown line, or the line has no twin model")
INVALID_MODEL = {
    422: {
        # a request that is not JSON of the right kind, or a model (scenario) the engine refuses, by its paths
        "model": ValidationErrorOut | TwinModelErrorOut,
        "description": "the request does not match the API, or the model is invalid: every problem by its path",
    }
}
MAX_EVENTS = 10_000  # per request


def _twin(c: AppContext) -> svc.TwinService:
    if c.twin is None:
        raise NotFound("the twin is not running in this process")
    return c.twin


def _epoch(t: dt.datetime | None) -> float | None:
    return None if t is None else t.timestamp()


@router.put("/{line}/model", response_model=LineModelOut, responses={**INVALID_MODEL})
def put_model(
    line: Name,
    who: Engineer,
    c: Ctx,
    model: dict = Body(description="the line model (linewatch.twin's line document as JSON)"),
):
    """Store the line's model (the line is created when missing); the version counts its changes. The live state
    is rebuilt from the stored history under the new model."""
    return _twin(c).put_model(line, model, who.user_id)


@router.get("/{line}/model", response_model=LineModelOut, responses=NOT_FOUND)
def get_model(line: Name, _: Viewer, session: DB):
    _row, m = svc.get_model(session, line)
    return svc.model_out(line, m)


@router.delete("/{line}/model", status_code=204, responses=NOT_FOUND)
def delete_model(line: Name, _: Engineer, c: Ctx):
    """Delete the model (the line's event history stays)."""
    _twin(c).delete_model(line)
    return Response(status_code=204)


@router.get("/{line}/state", response_model=TwinStateOut, responses=NOT_FOUND)
def get_state(
    line: Name, _: Viewer, c: Ctx, at: Annotated[TimeFilter, Query(description="ISO 8601; default: now")] = None
):
    """The live state, or the state at a past time rebuilt from the stored events."""
    return _twin(c).state(line, _epoch(at))


@router.get(
    "/{line}/events", response_model=TwinEventsOut, responses=errors(404, e404="unknown line, or a cursor not its own")
)
def list_events(
    line: Name,
    _: Viewer,
    session: DB,
    from_: Annotated[TimeFilter, Query(alias="from")] = None,
    to: Annotated[TimeFilter, Query()] = None,
    machine: str | None = Query(None, max_length=100, pattern=r"^[^\x00-\x1f\x7f]*$"),
    limit: int = Query(500, ge=1, le=5000),
    cursor: Id | None = Query(None, description="next_cursor of the previous page"),
):
    """The twin's history in time order, a page at a time."""
    from sqlalchemy import select

    from linewatch.store.tables import Line

    if session.scalar(select(Line.id).where(Line.name == line)) is None:
        raise NotFound(f"unknown line {line!r}")
    return svc.list_events(session, line, _epoch(from_), _epoch(to), machine, limit, cursor)


@router.post(
    "/{line}/events",
    response_model=TwinAcceptedOut,
    status_code=202,
    responses=NOT_FOUND,
)
async def post_events(
    line: Name,
    _: Operator,
    c: Ctx,
    events: TwinEventIn | list[TwinEventIn] = Body(
        description="one event or a list: {machine, state, ts?, reason?, job?, good?, defective?} or "
        "{buffer, level, ts?}",
        examples=[{"machine": "filler", "state": "down", "reason": "valve jam"}],
    ),
):
    """Apply machine state events from the plant. Each is accepted or refused whole: an unknown machine or an
    impossible transition is refused with the reason (and kept as a dead letter)."""
    items = events if isinstance(events, list) else [events]
    if len(items) > MAX_EVENTS:
        raise LinewatchError(f"over {MAX_EVENTS:,} events in one request: split them")
    raw = [e.model_dump(exclude_unset=True) for e in items]
    out = await asyncio.to_thread(_twin(c).apply, line, raw, "http")
    return {"accepted": out.accepted, "rejected": [{"index": i, "reason": r} for i, r in out.rejected]}


@router.get("/{line}/oee", response_model=TwinOeeOut, response_model_by_alias=True, responses=NOT_FOUND)
async def get_oee(
    line: Name,
    _: Viewer,
    c: Ctx,
    from_: Annotated[TimeFilter, Query(alias="from", description="default: 24 hours before to")] = None,
    to: Annotated[TimeFilter, Query(description="default: now")] = None,
):
    """OEE (ISO 22400-2) per machine, for the line and per shift over the range, from the stored events, with the
    losses broken down (linewatch.twin.oee's report)."""
    end = _epoch(to) or dt.datetime.now(dt.UTC).timestamp()
    start = _epoch(from_) if from_ is not None else end - 86400
    return await asyncio.to_thread(_twin(c).oee, line, start, end)


@router.post(
    "/{line}/simulations",
    response_model=SimulationStartedOut,
    status_code=202,
    responses={
        **errors(404, e404="unknown line, the line has no twin model, or unknown schedule"),
        **errors(409, e409="the schedule has no plan yet, or its plan names machines the line model lacks"),
        **INVALID_MODEL,
    },
)
def start_simulation(line: Name, body: SimulationIn, who: Engineer, c: Ctx):
    """Simulate the line (replications with confidence intervals) from the live state or empty, with what-if
    scenarios compared side by side; a background job (follow GET /jobs/{job_id} or the WebSocket). With a
    ``schedule_id``, the schedule's plan is run on the line instead of the product mix: how the plan holds up
    (realised makespan and tardiness beside the planned ones)."""
    job_id = svc.start_simulation(c, line, body.model_dump(), who.user_id)
    return {"id": job_id, "job_id": job_id}


@router.get("/{line}/simulations", response_model=list[SimulationOut])
def list_simulations(line: Name, _: Viewer, session: DB, limit: int = Query(50, ge=1, le=500)):
    """Newest first."""
    return [svc.simulation_out(j) for j in svc.list_simulations(session, line, limit)]


@router.get("/{line}/simulations/{sim_id}", response_model=SimulationOut, responses=errors(404))
def get_simulation(line: Name, sim_id: Id, _: Viewer, session: DB):
    return svc.simulation_out(svc.get_simulation(session, line, sim_id))


@router.get(
    "/{line}/aas",
    responses={**NOT_FOUND, 200: {"description": "the AAS v3 JSON environment", "content": {"application/json": {}}}},
)
def get_aas(line: Name, _: Viewer, c: Ctx) -> Any:
    """The line as an Asset Administration Shell environment (AAS v3 JSON), with each machine's live state, counts
    and health as its OperationalData."""
    import json

    from linewatch.twin.aas import export_aas

    t = _twin(c)
    twin = t.twin(line)
    state = t.state(line)
    live = {}
    for m in state["machines"]:
        props = {k: m[k] for k in ("state", "since", "reason", "job", "good", "defective", "reworked")}
        props.update({f"health_{k}": v for k, v in m["health"].items()})
        live[m["machine"]] = {k: v for k, v in props.items() if v is not None}
    return JSONResponse(json.loads(export_aas(twin.model, live)))
