"""Stations (cameras on the line) and the model versions they run: listing, activation and roll back (each an
``Activation`` row, then a ``ModelActivated`` event), test scores, the ONNX export's file and its bundle."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from linewatch.core.events import EventBus, ModelActivated
from linewatch.services import audit
from linewatch.services.accounts import Principal
from linewatch.services.errors import Conflict, NotFound
from linewatch.store.tables import Activation, ModelVersion, Station, StationDriftChange


def previous_model(st: Station, activated: list[int]) -> int | None:
    """The model a rollback would bring back: the newest activation of another model than the active one."""
    return next((m for m in activated if m != st.active_model_id), None)


def list_stations(session: Session) -> list[tuple[Station, int | None, StationDriftChange | None]]:
    """Each station with the model a rollback would bring back and the drift watch's newest stored change of level
    for the model it runs (None: not checked since that model was activated)."""
    stations = session.scalars(select(Station).order_by(Station.name)).all()
    history: dict[int, list[int]] = {}
    for station_id, model_id in session.execute(
        select(Activation.station_id, Activation.model_id).order_by(Activation.id.desc())
    ):
        history.setdefault(station_id, []).append(model_id)
    newest = select(func.max(StationDriftChange.id)).group_by(StationDriftChange.station_id)
    changes = session.scalars(select(StationDriftChange).where(StationDriftChange.id.in_(newest)))
    drift = {d.station_id: d for d in changes}
    out = []
    for st in stations:
        change = drift.get(st.id)
        if change is not None and (st.active_model_id is None or change.model_id != st.active_model_id):
            change = None  # another model's level, or a station that runs none now
        out.append((st, previous_model(st, history.get(st.id, [])), change))
    return out


def create_station(session: Session, name: str, who: Principal | None = None) -> Station:
    try:
        with session.begin():
            st = Station(name=name)
            session.add(st)
            session.flush()
            audit.record(session, "station.create", who, target=f"station {name}")
    except IntegrityError:
        raise Conflict(f"station {name!r} already exists") from None
    return st


def station(session: Session, name: str) -> Station:
    st = session.scalar(select(Station).where(Station.name == name))
    if st is None:
        raise NotFound(f"unknown station {name!r}")
    return st


def model_version(session: Session, model_id: int) -> ModelVersion:
    mv = session.get(ModelVersion, model_id)
    if mv is None:
        raise NotFound(f"no model version {model_id}")
    return mv


def list_models(session: Session) -> list[ModelVersion]:
    return list(session.scalars(select(ModelVersion).order_by(ModelVersion.id.desc())))


def stations_running(session: Session, model_id: int) -> list[str]:
    return list(session.scalars(select(Station.name).where(Station.active_model_id == model_id)).all())


def _switch(session: Session, st: Station, model_id: int, user_id: int | None) -> int | None:
    """Inside the caller's transaction: the station runs ``model_id`` from now; the model it ran before."""
    before = st.active_model_id
    st.active_model_id = model_id
    session.add(Activation(station_id=st.id, model_id=model_id, activated_by=user_id))
    return before


def _check_threshold(mv: ModelVersion) -> None:
    """A model trained without held-out good images has no threshold: a station could only store its scores, never a
    verdict (and the inspection's normalised score would be missing), so it is not activated."""
    try:
        manifest = json.loads((Path(mv.path) / "manifest.json").read_text())
    except (OSError, ValueError, TypeError):
        return  # the model's files are checked where they are loaded, which says what is wrong with them
    if isinstance(manifest, dict) and not manifest.get("calibration"):
        raise Conflict(
            f"model version {mv.id} has no threshold (trained without held-out good images): it cannot judge parts; "
            "train it again with holdout above 0"
        )


def activate(session: Session, bus: EventBus, model_id: int, station_name: str, user_id: int | None) -> Station:
    with session.begin():
        mv = model_version(session, model_id)
        if mv.status != "ready":
            raise Conflict(f"model version {model_id} is {mv.status}, not ready")
        _check_threshold(mv)
        st = station(session, station_name)
        before = _switch(session, st, mv.id, user_id)
        audit.record(
            session, "model.activate", actor_id=user_id, target=f"station {st.name}", model=mv.id, previous=before
        )
    bus.publish(ModelActivated(station=st.name, model_id=mv.id, previous_model_id=before))
    return st


def rollback(session: Session, bus: EventBus, station_name: str, user_id: int | None) -> Station:
    """Activate the model the station used before the current one."""
    with session.begin():
        st = station(session, station_name)
        history = session.scalars(
            select(Activation).where(Activation.station_id == st.id).order_by(Activation.id.desc())
        ).all()
        previous = previous_model(st, [a.model_id for a in history])
        if previous is None:
            raise Conflict(f"station {station_name!r} has no earlier model to roll back to")
        before = _switch(session, st, previous, user_id)
        audit.record(
            session, "model.rollback", actor_id=user_id, target=f"station {st.name}", model=previous, previous=before
        )
    bus.publish(ModelActivated(station=st.name, model_id=previous, previous_model_id=before))
    return st


def onnx_file(session: Session, model_id: int) -> Path:
    mv = model_version(session, model_id)
    path = Path(mv.path or "") / "model.onnx"
    if mv.status != "ready" or not path.is_file():
        raise Conflict(f"model version {model_id} has no ONNX export")
    return path


def export_bundle(session: Session, model_id: int, out_dir: Path) -> Path:
    """The model's ONNX export as a zip in ``out_dir`` (manifest, model.onnx and, where its search vectors have a
    crop, crops.onnx: ``linewatch.vision.bundle``); Conflict when there is no usable export."""
    from linewatch.errors import ModelFileError
    from linewatch.vision.bundle import write_bundle

    model_dir = onnx_file(session, model_id).parent
    try:
        return write_bundle(model_dir, Path(out_dir) / f"linewatch-model-{model_id}.zip")
    except ModelFileError as e:
        raise Conflict(f"model version {model_id}: {e}") from None
