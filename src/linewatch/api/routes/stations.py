"""Stations (cameras on the line), model versions, activation and roll back, ONNX download."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import FileResponse
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from linewatch.api.deps import Id, Name, db, engineer, viewer
from linewatch.api.schemas import ActivateIn, ModelOut, StationIn, StationOut, TestScoresOut, errors
from linewatch.services.accounts import Principal
from linewatch.store.tables import Activation, ModelVersion, Station

router = APIRouter(prefix="/api/v1", tags=["stations and models"], responses=errors(400, 401, 403, 422))
NOT_FOUND = errors(404)


@router.get("/stations", response_model=list[StationOut])
def list_stations(_=Depends(viewer), session: Session = Depends(db)):
    stations = session.scalars(select(Station).order_by(Station.name)).all()
    history: dict[int, list[int]] = {}
    for station_id, model_id in session.execute(
        select(Activation.station_id, Activation.model_id).order_by(Activation.id.desc())
    ):
        history.setdefault(station_id, []).append(model_id)
    return [
        {**StationOut.model_validate(st).model_dump(), "previous_model_id": _previous(st, history.get(st.id, []))}
        for st in stations
    ]


def _previous(st: Station, activated: list[int]) -> int | None:
    """The model a rollback would bring back: the newest activation of another model than the active one."""
    return next((m for m in activated if m != st.active_model_id), None)


@router.post("/stations", response_model=StationOut, status_code=201, responses=errors(409, e409="exists"))
def create_station(body: StationIn, _=Depends(engineer), session: Session = Depends(db)):
    try:
        with session.begin():
            st = Station(name=body.name)
            session.add(st)
    except IntegrityError:
        raise HTTPException(409, f"station {body.name!r} already exists") from None
    return st


def _model_out(session: Session, mv: ModelVersion) -> ModelOut:
    names = session.scalars(select(Station.name).where(Station.active_model_id == mv.id)).all()
    # per-image test scores are long: GET /models/{id}/test-scores has them
    metrics = {k: v for k, v in mv.metrics.items() if k != "test_scores"} if mv.metrics else mv.metrics
    return ModelOut.model_validate(mv).model_copy(update={"stations": list(names), "metrics": metrics})


@router.get("/models", response_model=list[ModelOut])
def list_models(_=Depends(viewer), session: Session = Depends(db)):
    return [_model_out(session, m) for m in session.scalars(select(ModelVersion).order_by(ModelVersion.id.desc()))]


@router.get("/models/{model_id}", response_model=ModelOut, responses=NOT_FOUND)
def get_model(model_id: Id, _=Depends(viewer), session: Session = Depends(db)):
    mv = session.get(ModelVersion, model_id)
    if mv is None:
        raise HTTPException(404, f"no model version {model_id}")
    return _model_out(session, mv)


@router.get("/models/{model_id}/test-scores", response_model=TestScoresOut, responses=NOT_FOUND)
def get_test_scores(model_id: Id, _=Depends(viewer), session: Session = Depends(db)):
    """Each test image's label and raw score from the evaluation at training (a score histogram of good against
    defective images, a ROC curve); no items when the version was trained without a test dataset."""
    mv = session.get(ModelVersion, model_id)
    if mv is None:
        raise HTTPException(404, f"no model version {model_id}")
    items = (mv.metrics or {}).get("test_scores") or []
    return TestScoresOut(model_id=mv.id, threshold=mv.threshold, items=items)


def _station(session: Session, name: str) -> Station:
    st = session.scalar(select(Station).where(Station.name == name))
    if st is None:
        raise HTTPException(404, f"unknown station {name!r}")
    return st


@router.post(
    "/models/{model_id}/activate",
    response_model=StationOut,
    responses=errors(404, 409, e404="no such model or station", e409="the model is not ready"),
)
def activate(model_id: Id, body: ActivateIn, who: Principal = Depends(engineer), session: Session = Depends(db)):
    with session.begin():
        mv = session.get(ModelVersion, model_id)
        if mv is None:
            raise HTTPException(404, f"no model version {model_id}")
        if mv.status != "ready":
            raise HTTPException(409, f"model version {model_id} is {mv.status}, not ready")
        st = _station(session, body.station)
        st.active_model_id = mv.id
        session.add(Activation(station_id=st.id, model_id=mv.id, activated_by=who.user_id))
    return st


@router.post(
    "/stations/{name}/rollback",
    response_model=StationOut,
    responses=errors(404, 409, e404="unknown station", e409="no earlier model"),
)
def rollback(name: Name, who: Principal = Depends(engineer), session: Session = Depends(db)):
    """Activate the model the station used before the current one."""
    with session.begin():
        st = _station(session, name)
        history = session.scalars(
            select(Activation).where(Activation.station_id == st.id).order_by(Activation.id.desc())
        ).all()
        previous = _previous(st, [a.model_id for a in history])
        if previous is None:
            raise HTTPException(409, f"station {name!r} has no earlier model to roll back to")
        st.active_model_id = previous
        session.add(Activation(station_id=st.id, model_id=previous, activated_by=who.user_id))
    return st


@router.get(
    "/models/{model_id}/export",
    response_class=FileResponse,
    responses={
        200: {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
        **errors(404, 409, e409="the model has no ONNX export"),
    },
)
def download_onnx(model_id: Id, _=Depends(viewer), session: Session = Depends(db)):
    """The model's ONNX export (scores with onnxruntime alone)."""
    mv = session.get(ModelVersion, model_id)
    if mv is None:
        raise HTTPException(404, f"no model version {model_id}")
    path = Path(mv.path or "") / "model.onnx"
    if mv.status != "ready" or not path.is_file():
        raise HTTPException(409, f"model version {model_id} has no ONNX export")
    return FileResponse(path, media_type="application/octet-stream", filename=f"linewatch-model-{model_id}.onnx")
