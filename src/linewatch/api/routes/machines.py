"""Lines, machines and sensors; readings in (JSON batches, CSV/Parquet history) and out (charts); machine models;
alerts; dead letters."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, File, Form, HTTPException, Query, Response, UploadFile
from fastapi.responses import JSONResponse
from sqlalchemy import func, select

from linewatch.api.deps import DB, Ctx, Engineer, Id, Name, Operator, Viewer
from linewatch.api.schemas import (
    AcknowledgeIn,
    AlertDetailOut,
    AlertOut,
    CommentIn,
    CommentOut,
    DeadLetterOut,
    ImportOut,
    IngestOut,
    JobOut,
    LineIn,
    LineOut,
    MachineModelImportIn,
    MachineModelOut,
    MachineOut,
    MachineTrainIn,
    MaintenanceDoneIn,
    MaintenanceOut,
    MaintenancePointOut,
    MaintenanceTrainIn,
    ModelPublishIn,
    ReadingsOut,
    RegistryVersionOut,
    SeriesOut,
    TimeFilter,
    errors,
)
from linewatch.errors import LinewatchError
from linewatch.services import alerts, audit, machine_models, maintenance, readings, registry
from linewatch.services import machines as svc
from linewatch.services.context import AppContext
from linewatch.services.ingest import Outcome
from linewatch.services.inspecting import clean_filename
from linewatch.services.machines import MachineIn, MachineUpdate
from linewatch.store.tables import Alert, DeadLetter, Machine, MachineModel

router = APIRouter(prefix="/api/v1", tags=["machines"], responses=errors(400, 401, 403, 422))
NOT_FOUND = errors(404)
IMPORT_CHUNK = 50_000  # rows of a history file per ingest message
MAX_POINTS = 5_000


def _machine_out(session, m: Machine, previous: int | None = None, open_alerts: int | None = None) -> MachineOut:
    lines = svc.line_names(session)
    if open_alerts is None:
        open_alerts = session.scalar(
            select(func.count()).select_from(Alert).where(Alert.machine_id == m.id, Alert.status == "open")
        )
    return MachineOut(
        id=m.id,
        name=m.name,
        line=lines.get(m.line_id, ""),
        type=m.type,
        description=m.description,
        stations=list(m.stations or []),
        sensors=svc.sensors_of(session, m.id),
        active_model_id=m.active_model_id,
        previous_model_id=previous,
        maintenance_model_id=m.maintenance_model_id,
        life_start=m.life_start,
        health=m.health,
        health_at=m.health_at,
        last_reading_at=m.last_reading_at,
        open_alerts=open_alerts or 0,
        created_at=m.created_at,
    )


# -- lines and machines -------------------------------------------------------------------------------------------
@router.get("/lines", response_model=list[LineOut])
def list_lines(_: Viewer, session: DB):
    counts = dict(session.execute(select(Machine.line_id, func.count()).group_by(Machine.line_id)).all())
    return [
        LineOut.model_validate(ln).model_copy(update={"machines": counts.get(ln.id, 0)})
        for ln in svc.list_lines(session)
    ]


@router.post("/lines", response_model=LineOut, status_code=201, responses=errors(409, e409="exists"))
def create_line(body: LineIn, _: Engineer, session: DB, c: Ctx):
    return svc.create_line(session, c.bus, body.name, body.description)


@router.get("/machines", response_model=list[MachineOut], responses=NOT_FOUND)
def list_machines(_: Viewer, session: DB, line: str | None = Query(None, max_length=100)):
    """Every machine (of a line) with its sensors, health and open alerts."""
    rows = svc.list_machines(session, line)
    previous = machine_models.previous_models(session)
    open_counts = dict(
        session.execute(
            select(Alert.machine_id, func.count()).where(Alert.status == "open").group_by(Alert.machine_id)
        ).all()
    )
    return [_machine_out(session, m, previous.get(m.id), open_counts.get(m.id, 0)) for m in rows]


@router.post(
    "/machines",
    response_model=MachineOut,
    status_code=201,
    responses=errors(
        404,
        409,
        e404="unknown line",
        e409="exists, or the definition conflicts with itself (a sensor named twice, low above high)",
    ),
)
def create_machine(body: MachineIn, _: Engineer, session: DB, c: Ctx):
    m = svc.create_machine(session, c.bus, body)
    return _machine_out(session, m)


@router.post("/machines/import", response_model=ImportOut)
async def import_machines(
    _: Engineer,
    c: Ctx,
    file: UploadFile = File(description="YAML or JSON: lines with their machines and sensors"),
):
    """Create or update lines, machines and sensors from a definition file (nothing is deleted); a bad field is
    named by its path."""
    data = await file.read()

    def run() -> dict:
        spec = svc.parse_import(data, file.filename or "")
        with c.sessions() as session:
            return svc.import_spec(session, c.bus, spec)

    return await asyncio.to_thread(run)


@router.get("/machines/{name}", response_model=MachineOut, responses=NOT_FOUND)
def get_machine(name: Name, _: Viewer, session: DB):
    m = svc.machine(session, name)
    return _machine_out(session, m, machine_models.previous_models(session).get(m.id))


@router.put(
    "/machines/{name}",
    response_model=MachineOut,
    responses=errors(404, 409, e409="the definition conflicts with itself (a sensor named twice, low above high)"),
)
def update_machine(name: Name, body: MachineUpdate, _: Engineer, session: DB, c: Ctx):
    """Replace the machine's definition (its name is the path's); sensors left out are deleted with their
    readings."""
    m = svc.update_machine(session, c.bus, name, body)
    return _machine_out(session, m)


@router.delete("/machines/{name}", status_code=204, responses=NOT_FOUND)
def delete_machine(name: Name, _: Engineer, session: DB, c: Ctx):
    """The machine, its sensors, readings, models and alerts."""
    svc.delete_machine(session, c.bus, name)
    return Response(status_code=204)


# -- readings -------------------------------------------------------------------------------------------------------
def _ingester(c: AppContext):
    if c.ingester is None:
        raise HTTPException(503, "the ingester is not running yet, try again")
    return c.ingester


async def _ingest(c: AppContext, machine: str, payload: Any, source: str, score: bool) -> Outcome:
    ingester = _ingester(c)
    fut = await asyncio.to_thread(ingester.ingest, machine, payload, source, score)
    return await asyncio.wrap_future(fut)


@router.post(
    "/machines/{name}/readings",
    response_model=IngestOut,
    responses=errors(404, e404="unknown machine"),
)
async def post_readings(
    name: Name,
    _: Operator,
    c: Ctx,
    payload: Any = Body(
        description="readings: one, a time step of several sensors, or a batch (see the README's payload)",
        examples=[{"time": [1764756000.0, 1764756001.0], "values": {"oil_temp": [71.2, 71.4]}}],
    ),
):
    """Store (and score) a batch of readings. Readings that cannot be stored are refused one by one with the
    reason (and kept as dead letters); 422 when none could be."""
    with c.sessions() as session:
        svc.machine(session, name)
    out = await _ingest(c, name, payload, "http", True)
    if out.refused and not out.stored and not out.duplicates:
        # the documented 422 body (ValidationErrorOut): each reason, with how many readings it refused
        reasons = "; ".join(f"{r} ({n})" for r, n in out.refused.items())
        problems = [
            {"loc": ["body"], "msg": f"{r} ({n} reading{'s' if n != 1 else ''})"} for r, n in out.refused.items()
        ]
        return JSONResponse({"detail": f"no reading stored: {reasons}", "errors": problems}, status_code=422)
    return out.as_dict()


def _history_payloads(data: bytes, filename: str, sensors: list[str]):
    """A CSV or Parquet file of readings as column-wise payloads of ``IMPORT_CHUNK`` rows: wide (a time column and
    a column per sensor) or long (time, sensor, value columns)."""
    from linewatch.core.extras import require

    require("sensors", "importing readings from a file")
    import io

    import numpy as np
    import pandas as pd

    try:
        if filename.lower().endswith((".parquet", ".pq")):
            frame = pd.read_parquet(io.BytesIO(data))
        else:
            frame = pd.read_csv(io.BytesIO(data))
    except Exception as e:
        raise LinewatchError(f"cannot read {filename or 'the file'} as CSV or Parquet: {e}") from None
    if {"sensor", "value"} <= set(frame.columns):
        wide = None
        long = frame
    else:
        wide, long = frame, None
    time_col = next((c for c in ("time", "timestamp", "ts", "datetime") if c in frame.columns), None)
    if time_col is None:
        raise LinewatchError(f"{filename or 'the file'} has no time column (time, timestamp, ts or datetime)")
    t = frame[time_col]
    if pd.api.types.is_numeric_dtype(t):
        seconds = t.astype(float)
    else:
        parsed = pd.to_datetime(t, utc=True, errors="coerce")
        seconds = (parsed.astype("int64") / 1e9).where(parsed.notna())
    if seconds.isna().all():
        raise LinewatchError(f"{filename or 'the file'}: the column {time_col!r} holds no readable times")
    if long is not None:
        for start in range(0, len(long), IMPORT_CHUNK):
            part = long.iloc[start : start + IMPORT_CHUNK]
            yield [
                {"sensor": str(s), "time": None if np.isnan(tt) else float(tt), "value": _num(v)}
                for s, tt, v in zip(
                    part["sensor"], seconds.iloc[start : start + IMPORT_CHUNK], part["value"], strict=True
                )
            ]
        return
    cols = [c for c in wide.columns if c != time_col]
    if not cols:
        raise LinewatchError(f"{filename or 'the file'} has no sensor columns")
    for start in range(0, len(wide), IMPORT_CHUNK):
        part = wide.iloc[start : start + IMPORT_CHUNK]
        times = seconds.iloc[start : start + IMPORT_CHUNK].tolist()
        yield {
            "time": [None if x != x else x for x in times],
            "values": {str(col): [_num(v) for v in part[col].tolist()] for col in cols},
        }


def _num(v):
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return v  # refused by the payload check, with its reason
    return None if f != f else f


@router.post(
    "/machines/{name}/readings/import",
    response_model=IngestOut,
    responses=errors(404, 413, e404="unknown machine"),
)
async def import_readings(
    name: Name,
    _: Operator,
    c: Ctx,
    file: UploadFile = File(description="CSV or Parquet: a time column and a column per sensor, or time/sensor/value"),
):
    """Store a history of readings (not scored: alerts are for what happens now)."""
    with c.sessions() as session:
        m = svc.machine(session, name)
        sensors = [s.name for s in svc.sensors_of(session, m.id)]
    data = await file.read()
    total = Outcome()
    payloads = await asyncio.to_thread(lambda: list(_history_payloads(data, file.filename or "", sensors)))
    for payload in payloads:
        out = await _ingest(c, name, payload, "import", False)
        total.stored += out.stored
        total.duplicates += out.duplicates
        total.refused.update(out.refused)
    return total.as_dict()


@router.get("/machines/{name}/readings", response_model=ReadingsOut, responses=NOT_FOUND)
def get_readings(
    name: Name,
    _: Viewer,
    session: DB,
    c: Ctx,
    sensors: str | None = Query(None, max_length=5000, description="comma-separated; default: all and _score"),
    start: Annotated[TimeFilter, Query(description="default: an hour before end")] = None,
    end: Annotated[TimeFilter, Query(description="default: now")] = None,
    points: int = Query(600, ge=10, le=MAX_POINTS, description="buckets per series at most (about a chart's width)"),
):
    """Readings over a time range, downsampled to at most ``points`` buckets per sensor (count, mean, min, max):
    raw readings for short ranges, the per-minute and per-hour roll-ups for long ones."""
    m = svc.machine(session, name)
    end = end or dt.datetime.now(dt.UTC)
    start = start or end - dt.timedelta(hours=1)
    if start >= end:
        raise LinewatchError("start must be before end")
    rows = {s.name: s for s in svc.sensors_of(session, m.id, with_score=True)}
    wanted = [x.strip() for x in sensors.split(",") if x.strip()] if sensors else list(rows)
    unknown = [w for w in wanted if w not in rows]
    if unknown:
        raise LinewatchError(f"machine {name!r} has no sensor {', '.join(map(repr, unknown))}")
    s_ms, e_ms = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
    now = dt.datetime.now(dt.UTC)
    raw_since = int((now - dt.timedelta(days=c.settings.readings_retention_days)).timestamp() * 1000)
    minutes_since = int((now - dt.timedelta(days=c.settings.rollup_retention_days)).timestamp() * 1000)
    tier, step, series = readings.query(
        session.connection(), [rows[w].id for w in wanted], s_ms, e_ms, points, raw_since, minutes_since
    )
    threshold = None
    if m.active_model_id is not None:
        mm = session.get(MachineModel, m.active_model_id)
        threshold = (mm.metrics or {}).get("threshold") if mm is not None else None
    return ReadingsOut(
        machine=m.name,
        start=start,
        end=end,
        resolution=tier,
        step_s=step / 1000,
        threshold=threshold,
        series=[
            SeriesOut(
                sensor=w,
                unit=rows[w].unit,
                t=[x / 1000 for x in series[rows[w].id].t],
                n=series[rows[w].id].n,
                mean=series[rows[w].id].mean,
                min=series[rows[w].id].min,
                max=series[rows[w].id].max,
            )
            for w in wanted
        ],
    )


# -- machine models ---------------------------------------------------------------------------------------------------
def _model_out(mm: MachineModel, machine: str, *active_ids: int | None) -> MachineModelOut:
    return MachineModelOut.model_validate(mm).model_copy(update={"machine": machine, "active": mm.id in active_ids})


@router.get("/machines/{name}/models", response_model=list[MachineModelOut], responses=NOT_FOUND)
def list_machine_models(name: Name, _: Viewer, session: DB):
    m = svc.machine(session, name)
    return [
        _model_out(mm, m.name, m.active_model_id, m.maintenance_model_id)
        for mm in machine_models.list_models(session, name)
    ]


@router.post(
    "/machines/{name}/models/train",
    response_model=JobOut,
    status_code=202,
    responses=errors(404, 409, e409="the machine has no sensors"),
)
def train_machine_model(name: Name, body: MachineTrainIn, who: Engineer, session: DB, c: Ctx):
    """Train a new version of the machine's sensor model on its stored readings in a time range (a background job;
    follow it with GET /jobs/{id}). ``method`` picks the detector: ``stream`` or ``surprise`` (one series per
    sensor), or one model over all the sensors: ``mahalanobis``, ``pca``, ``knn``, ``lof`` or another of
    ``linewatch sensors methods``."""
    params = body.params.model_dump(exclude_none=True)
    return machine_models.start_training(session, c, name, params, body.start, body.end, None, who.user_id, body.method)


@router.post(
    "/machines/{name}/models/train-file",
    response_model=JobOut,
    status_code=202,
    responses=errors(404, 409, 413, e409="the machine has no sensors"),
)
async def train_machine_model_from_file(
    name: Name,
    who: Engineer,
    c: Ctx,
    file: UploadFile = File(description="CSV or Parquet: a time column and a column per sensor"),
    params: str = Form("{}", max_length=10_000, description="detector parameters as a JSON object"),
    method: Literal[tuple(machine_models.DETECTORS)] = Form(  # type: ignore[valid-type]
        machine_models.DEFAULT_DETECTOR, description="the detector the model runs (as in /models/train)"
    ),
):
    """Train a new version of the machine's sensor model on an uploaded history of normal operation."""
    import json

    try:
        parsed = json.loads(params)
    except ValueError:
        raise LinewatchError("params is not a JSON object") from None
    if not isinstance(parsed, dict):
        raise LinewatchError("params is not a JSON object")
    data = await file.read()
    if not data:
        raise LinewatchError("the file is empty")

    def run():
        with c.sessions() as session:
            return machine_models.start_training(
                session, c, name, parsed, None, None, (file.filename or "upload.csv", data), who.user_id, method
            )

    return await asyncio.to_thread(run)


@router.post(
    "/machines/{name}/models/import",
    response_model=MachineModelOut,
    status_code=201,
    responses=errors(404, 409, 413, e409="the model reads sensors the machine does not have"),
)
async def import_machine_model(
    name: Name,
    who: Engineer,
    c: Ctx,
    file: UploadFile = File(description="a zip of the model folder `linewatch sensors fit --out` wrote"),
):
    """A sensor model fitted elsewhere with ``linewatch sensors fit`` (any table method) as the machine's next
    version, ready to activate: it is loaded and checked as the sensor engine loads it, and every sensor it reads
    must be one of the machine's (by name: the columns it was fitted on)."""
    data = await file.read()
    if not data:
        raise LinewatchError("the file is empty")
    upload = clean_filename(file.filename, "model.zip") or "model.zip"
    mm = await asyncio.to_thread(
        machine_models.import_model, c.sessions, c.settings.models_dir, name, upload, data, who.user_id
    )
    return _model_out(mm, name)


@router.get("/machine-models/{model_id}", response_model=MachineModelOut, responses=NOT_FOUND)
def get_machine_model(model_id: Id, _: Viewer, session: DB):
    mm = machine_models.get_model(session, model_id)
    m = session.get(Machine, mm.machine_id)
    return _model_out(mm, m.name, m.active_model_id, m.maintenance_model_id)


@router.post(
    "/machines/{name}/models/registry-import",
    response_model=MachineModelOut,
    status_code=201,
    responses=errors(
        404,
        409,
        503,
        e404="no such machine, or the registry has no such model, version or alias",
        e409="no registry is set, the version is not a sensors model, or it reads sensors the machine does not have",
        e503="the registry cannot be reached",
    ),
)
def import_registered_machine_model(name: Name, body: MachineModelImportIn, who: Engineer, session: DB, c: Ctx):
    """A sensors table model of the team's MLflow Model Registry (``LINEWATCH_REGISTRY_URI``; pushed with
    ``linewatch registry push`` or published from another service) as the machine's next version, ready to
    activate: downloaded, checked file by file, loaded as the engine loads it, its sensors the machine's."""
    session.rollback()
    mm = machine_models.import_registered(c, name, body.ref, who.user_id)
    with session.begin():
        audit.record(session, "model.import", who, target=f"machine {name}", ref=body.ref, model=mm.id)
    return _model_out(mm, name)


@router.post(
    "/machine-models/{model_id}/publish",
    response_model=RegistryVersionOut,
    responses=errors(
        404,
        409,
        503,
        e404="no such machine model",
        e409="no registry is set, the model is not ready, or it is a streaming detector's checkpoint",
        e503="the registry cannot be reached or refused the model",
    ),
)
def publish_machine_model(model_id: Id, body: ModelPublishIn, who: Engineer, session: DB, c: Ctx):
    """Push a ready machine model (a table model or a maintenance model) to the team's MLflow Model Registry as a new
    version of ``name``, ``alias`` pointed at it; another service imports it for a machine with the same sensors."""
    return registry.publish_machine_model(c, session, who, model_id, body.name, body.alias)


@router.get(
    "/machine-models/{model_id}/files",
    response_class=Response,
    responses={
        200: {"content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}}},
        **errors(404, 409, e409="the model is not ready"),
    },
)
def download_machine_model(model_id: Id, _: Viewer, session: DB):
    """The model's folder as a zip: the sensor or maintenance engine's model directory, which the engine loads
    (``linewatch sensors score``; a table model's zip also imports into another machine with the same sensors)."""
    mm = machine_models.get_model(session, model_id)
    data = machine_models.zip_model(mm)
    m = session.get(Machine, mm.machine_id)
    filename = f"linewatch-{m.name if m else 'machine'}-v{mm.version}.zip"
    return Response(
        data, media_type="application/zip", headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )


@router.post(
    "/machine-models/{model_id}/activate",
    response_model=MachineOut,
    responses=errors(404, 409, e409="the model is not ready"),
)
def activate_machine_model(model_id: Id, who: Engineer, session: DB, c: Ctx):
    """An anomaly model scores the machine's readings from now; a maintenance model (rul, failure) makes its
    predictions from now."""
    kind = machine_models.get_model(session, model_id).kind
    session.rollback()  # the services open their own transaction
    if kind != "anomaly":
        m = maintenance.activate(session, c.bus, model_id)
        return _machine_out(session, m, machine_models.previous_models(session).get(m.id))
    m = machine_models.activate(session, c.bus, model_id, who.user_id)
    return _machine_out(session, m, machine_models.previous_models(session).get(m.id))


@router.post(
    "/machines/{name}/rollback",
    response_model=MachineOut,
    responses=errors(404, 409, e409="no earlier model"),
)
def rollback_machine_model(name: Name, who: Engineer, session: DB, c: Ctx):
    """Activate the model the machine ran before the current one."""
    m = machine_models.rollback(session, c.bus, name, who.user_id)
    return _machine_out(session, m, machine_models.previous_models(session).get(m.id))


# -- maintenance ----------------------------------------------------------------------------------------------------
@router.post(
    "/machines/{name}/maintenance/train-file",
    response_model=JobOut,
    status_code=202,
    responses=errors(404, 413),
)
async def train_maintenance_model(
    name: Name,
    who: Engineer,
    c: Ctx,
    file: UploadFile = File(description="run-to-failure history: unit, cycle and one column per machine sensor"),
    params: str = Form(
        "{}",
        max_length=10_000,
        description="JSON: target (rul or failure), cycle_s (seconds of readings per cycle, default 3600), "
        "alert_below_s (a maintenance alert when the RUL's lower bound is under it, default 86400), alert_above "
        "(failure probability, default 0.5), and the engine's parameters (linewatch maintenance fit --help)",
    ),
):
    """Train a maintenance model for the machine (a background job); activate it to get predictions."""
    import json

    try:
        parsed = json.loads(params)
    except ValueError:
        raise LinewatchError("params is not a JSON object") from None
    if not isinstance(parsed, dict):
        raise LinewatchError("params is not a JSON object")
    data = await file.read()

    def run():
        with c.sessions() as session:
            return maintenance.start_training(
                session, c, name, (file.filename or "history.csv", data), parsed, who.user_id
            )

    return await asyncio.to_thread(run)


@router.post(
    "/machines/{name}/maintenance/train",
    response_model=JobOut,
    status_code=202,
    responses=errors(404, 409, e409="too few runs to failure recorded, or a fleet without a type"),
)
def train_maintenance_model_on_readings(name: Name, who: Engineer, session: DB, c: Ctx, body: MaintenanceTrainIn):
    """Train a remaining-useful-life model on the machine's stored readings (a background job): each life that ran
    to failure (recorded by maintenance/done with failure) is one run-to-failure history; with fleet, those of
    every machine of its type too. 409 when fewer runs are recorded than the model's folds."""
    params = body.params.model_dump(exclude_none=True)
    return maintenance.start_training_from_readings(session, c, name, params, bool(body.fleet), who.user_id)


@router.get("/machines/{name}/maintenance", response_model=MaintenanceOut, responses=NOT_FOUND)
def get_maintenance(
    name: Name,
    _: Viewer,
    session: DB,
    start: Annotated[TimeFilter, Query(description="default: 30 days before end")] = None,
    end: Annotated[TimeFilter, Query(description="default: now")] = None,
):
    """The machine's maintenance predictions over time (RUL with its interval, or failure probability)."""
    end = end or dt.datetime.now(dt.UTC)
    start = start or end - dt.timedelta(days=30)
    m, rows = maintenance.history(session, name, start, end)
    mm = session.get(MachineModel, m.maintenance_model_id) if m.maintenance_model_id else None
    return MaintenanceOut(
        machine=m.name,
        model=_model_out(mm, m.name, m.maintenance_model_id) if mm is not None else None,
        life_start=m.life_start,
        cycle_s=(mm.params or {}).get("cycle_s") if mm is not None else None,
        predictions=[MaintenancePointOut.model_validate(r) for r in rows],
    )


@router.post("/machines/{name}/maintenance/done", response_model=MachineOut, responses=errors(404, 409))
def maintenance_done(name: Name, who: Operator, session: DB, c: Ctx, body: MaintenanceDoneIn | None = None):
    """Record maintenance: the machine's life starts again (its maintenance cycles count from then) and its
    maintenance alerts close. With failure (or failed_at) the life ending here ran to failure: its readings can
    train a RUL model (maintenance/train)."""
    body = body or MaintenanceDoneIn()
    at = body.time or dt.datetime.now(dt.UTC)
    failed_at = body.failed_at or (at if body.failure else None)
    m = maintenance.maintenance_done(session, c.bus, name, at, failed_at, who.user_id)
    return _machine_out(session, m)


# -- alerts ------------------------------------------------------------------------------------------------------------
@router.get("/alerts", response_model=list[AlertOut], responses=NOT_FOUND)
def list_alerts(
    _: Viewer,
    session: DB,
    machine: str | None = Query(None, max_length=100),
    status: str | None = Query(None, pattern="^(open|closed)$"),
    acknowledged: bool | None = Query(None),
    limit: int = Query(100, ge=1, le=1000),
    before: int | None = Query(None, ge=1, le=2**31 - 1, description="alerts with a smaller id (next page)"),
):
    """Newest first."""
    mid = svc.machine(session, machine).id if machine else None
    return [
        alerts.alert_dict(a, name, acked)
        for a, name, acked in alerts.list_alerts(session, mid, status, acknowledged, limit, before)
    ]


@router.get("/alerts/{alert_id}", response_model=AlertDetailOut, responses=NOT_FOUND)
def get_alert(alert_id: Id, _: Viewer, session: DB):
    a, machine, acked = alerts.get_alert(session, alert_id)
    return {
        **alerts.alert_dict(a, machine, acked),
        "comments": [
            CommentOut(id=cm.id, user=user, text=cm.text, created_at=cm.created_at)
            for cm, user in alerts.comments(session, alert_id)
        ],
    }


@router.post(
    "/alerts/{alert_id}/acknowledge",
    response_model=AlertOut,
    responses=errors(404, 409, e409="already acknowledged"),
)
def acknowledge_alert(alert_id: Id, who: Operator, session: DB, c: Ctx, body: AcknowledgeIn | None = None):
    return alerts.acknowledge(session, c.bus, alert_id, who.user_id, body.comment if body else None)


@router.post("/alerts/{alert_id}/comments", response_model=CommentOut, status_code=201, responses=NOT_FOUND)
def comment_alert(alert_id: Id, body: CommentIn, who: Operator, session: DB, c: Ctx):
    row = alerts.add_comment(session, c.bus, alert_id, who.user_id, body.text)
    return CommentOut(id=row.id, user=who.name, text=row.text, created_at=row.created_at)


# -- ingest ------------------------------------------------------------------------------------------------------------
@router.get("/dead-letters", response_model=list[DeadLetterOut])
def list_dead_letters(
    _: Engineer,
    session: DB,
    limit: int = Query(100, ge=1, le=1000),
    before: int | None = Query(None, ge=1, le=2**31 - 1),
):
    """Readings refused at ingest, newest first, with the reason and the message (cut at 4 KB)."""
    q = select(DeadLetter).order_by(DeadLetter.id.desc()).limit(limit)
    if before is not None:
        q = q.where(DeadLetter.id < before)
    return list(session.scalars(q))


@router.get("/ingest")
def ingest_status(_: Viewer, c: Ctx) -> dict:
    """The readings inputs (MQTT broker, NATS) and whether they are connected; the ingester's queue."""
    sources = c.sources.status() if c.sources is not None else {"mqtt": None, "nats": None}
    ingester = c.ingester
    return {
        **sources,
        "queued_messages": ingester.queue.qsize() if ingester else 0,
        "batches": ingester.batches if ingester else 0,
    }
