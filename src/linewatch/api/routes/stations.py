"""Stations (cameras on the line), model versions, activation and roll back, ONNX download and bundle."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse
from sqlalchemy.orm import Session
from starlette.background import BackgroundTask

from linewatch.api.deps import DB, Ctx, Engineer, Id, Name, Viewer
from linewatch.api.schemas import (
    ActivateIn,
    CalibrateIn,
    JobOut,
    ModelImportIn,
    ModelOut,
    ModelPublishIn,
    RegistryVersionOut,
    StationDriftChangeOut,
    StationDriftOut,
    StationIn,
    StationOut,
    TestScoresOut,
    errors,
)
from linewatch.services import calibrating, drift, registry, stations
from linewatch.store.tables import ModelVersion, as_utc

router = APIRouter(prefix="/api/v1", tags=["stations and models"], responses=errors(400, 401, 403, 422))
NOT_FOUND = errors(404)


@router.get("/stations", response_model=list[StationOut])
def list_stations(_: Viewer, session: DB):
    return [
        {
            **StationOut.model_validate(st).model_dump(),
            "previous_model_id": previous,
            "drift_level": drift_change.level if drift_change is not None else None,
            "drift_since": as_utc(drift_change.created_at) if drift_change is not None else None,
        }
        for st, previous, drift_change in stations.list_stations(session)
    ]


@router.post("/stations", response_model=StationOut, status_code=201, responses=errors(409, e409="exists"))
def create_station(body: StationIn, who: Engineer, session: DB):
    return stations.create_station(session, body.name, who)


def _model_out(session: Session, mv: ModelVersion) -> ModelOut:
    # per-image test scores are long: GET /models/{id}/test-scores has them
    metrics = {k: v for k, v in mv.metrics.items() if k != "test_scores"} if mv.metrics else mv.metrics
    running = stations.stations_running(session, mv.id)
    return ModelOut.model_validate(mv).model_copy(update={"stations": running, "metrics": metrics})


@router.get(
    "/stations/{name}/drift",
    response_model=StationDriftOut,
    responses=errors(404, 409, e404="unknown station", e409="the station runs no model, or its model cannot be read"),
)
def station_drift(
    name: Name,
    _: Viewer,
    session: DB,
    last: int = Query(drift.DEFAULT_LAST, ge=1, le=drift.MAX_LAST, description="recent parts to compare"),
):
    """Do the station's recent parts still score as the good parts its model's thresholds were set on? A change of
    light, a moved camera or a new batch of material shows here before it fills the review queue: ``watch`` or
    ``drift`` says to set the thresholds again on today's good parts (POST /models/{id}/calibrate with the station's
    window), or, where scores fell, to check the camera or train again."""
    return drift.station_drift(session, name, last)


@router.get("/stations/{name}/drift/history", response_model=list[StationDriftChangeOut], responses=errors(404))
def station_drift_history(
    name: Name,
    _: Viewer,
    session: DB,
    limit: int = Query(50, ge=1, le=1000, description="changes to return, the newest first"),
):
    """When the station's drift level changed, and why: the service checks each station with new parts every minute,
    stores each change, then sends it to WebSocket clients (``station_drift``) and sets the Prometheus gauges
    ``linewatch_station_drift_level`` and ``linewatch_station_drift_shift_auroc``."""
    return drift.history(session, name, limit)


@router.get("/models", response_model=list[ModelOut])
def list_models(_: Viewer, session: DB):
    return [_model_out(session, m) for m in stations.list_models(session)]


@router.get("/models/{model_id}", response_model=ModelOut, responses=NOT_FOUND)
def get_model(model_id: Id, _: Viewer, session: DB):
    return _model_out(session, stations.model_version(session, model_id))


@router.get("/models/{model_id}/test-scores", response_model=TestScoresOut, responses=NOT_FOUND)
def get_test_scores(model_id: Id, _: Viewer, session: DB):
    """Each test image's label and raw score from the evaluation at training (a score histogram of good against
    defective images, a ROC curve); no items when the version was trained without a test dataset."""
    mv = stations.model_version(session, model_id)
    items = (mv.metrics or {}).get("test_scores") or []
    return TestScoresOut(model_id=mv.id, threshold=mv.threshold, items=items)


@router.post(
    "/models/{model_id}/calibrate",
    response_model=JobOut,
    status_code=202,
    responses=errors(
        404,
        409,
        e404="no such model, dataset or station",
        e409="the model is not ready, keeps no scores, the station's window holds too few parts, or the same "
        "recalibration is queued or running",
    ),
)
def calibrate(model_id: Id, body: CalibrateIn, who: Engineer, session: DB, c: Ctx):
    """Set the version's thresholds again without training, as a new version (follow the job with GET /jobs/{id}):
    from a dataset's good images of today (new light, a new batch of parts; not the images it was trained on), from
    the photos a station took of known-good parts in a window, or at another false_alarm_rate from the held-out good
    scores it keeps. The learned state and the export are the
    version's own; stations keep their model until the new one is activated, and can roll back. The new version's
    metrics are the version's evaluation with its false alarms and misses at the new threshold."""
    return calibrating.start_calibration(
        c,
        session,
        who,
        model_id,
        body.dataset_id,
        body.false_alarm_rate,
        body.name,
        body.station,
        body.since,
        body.until,
    )


@router.post(
    "/registry/import",
    response_model=JobOut,
    status_code=202,
    responses=errors(
        404,
        409,
        503,
        e404="the registry has no such model, version or alias",
        e409="no registry is set, the version is not a vision model, or the same import is queued or running",
        e503="the registry cannot be reached",
    ),
)
def import_model(body: ModelImportIn, who: Engineer, session: DB, c: Ctx):
    """Import a registered version of the team's MLflow Model Registry (``LINEWATCH_REGISTRY_URI``) as a model
    version (follow the job with GET /jobs/{id}): downloaded, checked against its manifest, loaded, exported to ONNX
    when it has no export; then activated at stations like any version. A model trained with ``linewatch train`` on
    a workstation reaches the line this way (``linewatch registry push``)."""
    return registry.start_import(c, session, who, body.ref, body.name)


@router.post(
    "/models/{model_id}/publish",
    response_model=RegistryVersionOut,
    responses=errors(
        404,
        409,
        503,
        e404="no such model version",
        e409="no registry is set, or the version is not ready",
        e503="the registry cannot be reached or refused the model",
    ),
)
def publish_model(model_id: Id, body: ModelPublishIn, who: Engineer, session: DB, c: Ctx):
    """Push a ready model version to the team's MLflow Model Registry as a new version of ``name`` (its files, its
    evaluation metrics and settings, in an MLflow run), ``alias`` pointed at it."""
    return registry.publish(c, session, who, model_id, body.name, body.alias)


@router.post(
    "/models/{model_id}/activate",
    response_model=StationOut,
    responses=errors(404, 409, e404="no such model or station", e409="the model is not ready"),
)
def activate(model_id: Id, body: ActivateIn, who: Engineer, session: DB, c: Ctx):
    return stations.activate(session, c.bus, model_id, body.station, who.user_id)


@router.post(
    "/stations/{name}/rollback",
    response_model=StationOut,
    responses=errors(404, 409, e404="unknown station", e409="no earlier model"),
)
def rollback(name: Name, who: Engineer, session: DB, c: Ctx):
    """Activate the model the station used before the current one."""
    return stations.rollback(session, c.bus, name, who.user_id)


@router.get(
    "/models/{model_id}/export",
    response_class=FileResponse,
    responses={
        200: {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
        **errors(404, 409, e409="the model has no ONNX export"),
    },
)
def download_onnx(model_id: Id, _: Viewer, session: DB):
    """The model's ONNX graph alone (raw scores, map and search grids; the thresholds, the input shape and, for crop
    search vectors, crops.onnx are in the bundle: ``/models/{model_id}/bundle``)."""
    path = stations.onnx_file(session, model_id)
    return FileResponse(path, media_type="application/octet-stream", filename=f"linewatch-model-{model_id}.onnx")


@router.get(
    "/models/{model_id}/bundle",
    response_class=FileResponse,
    responses={
        200: {"content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}}},
        **errors(404, 409, e409="the model has no usable ONNX export"),
    },
)
def download_bundle(model_id: Id, _: Viewer, session: DB):
    """The model's ONNX export as a zip: manifest.json (thresholds, input size, search settings), model.onnx and,
    for crop search vectors, crops.onnx. Unzipped, it is a model directory that ``linewatch predict`` and
    ``linewatch.vision.runtime.OnnxModel`` score with (ONNX Runtime alone, verdicts and search vectors included)."""
    work = Path(tempfile.mkdtemp(prefix="linewatch-bundle-"))
    try:
        path = stations.export_bundle(session, model_id, work)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return FileResponse(
        path,
        media_type="application/zip",
        filename=path.name,
        background=BackgroundTask(shutil.rmtree, work, ignore_errors=True),
    )
