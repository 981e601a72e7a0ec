"""A model version's thresholds set again without training (job kind "calibrate"): from a dataset's good images
(today's light, a new batch of parts) or at another false-alarm rate from the held-out scores the model keeps. The
result is a new version beside the old one, with the same learned state and export; stations switch to it when an
engineer activates it, and roll back as from any version."""

from __future__ import annotations

import copy
import datetime as dt
import tempfile
from pathlib import Path

import numpy as np
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from linewatch.errors import LinewatchError
from linewatch.services import audit
from linewatch.services.accounts import Principal
from linewatch.services.context import AppContext
from linewatch.services.errors import Conflict, NotFound
from linewatch.services.jobs import active_twin
from linewatch.services.training import _dataset_images, _fetch
from linewatch.store.blobs import BlobNotFound
from linewatch.store.tables import Dataset, Inspection, Job, ModelVersion, Station

#: the most inspections of a station one recalibration scores (the newest of the window)
MAX_STATION_IMAGES = 2000
#: a station's window when its start is not given: the hour before its end
DEFAULT_WINDOW = dt.timedelta(hours=1)


def _name(parent: ModelVersion, rate: float | None, what: str) -> str:
    at = f", {rate * 100:g} % false alarms" if rate is not None else ""
    return f"{parent.name} (recalibrated on {what}{at})"[:200]


def _window(since: dt.datetime | None, until: dt.datetime | None) -> tuple[dt.datetime, dt.datetime]:
    """The window the API describes: until now unless given, from an hour before its end unless given."""
    until = until or dt.datetime.now(dt.UTC)
    return since or until - DEFAULT_WINDOW, until


def _station_parts(station_id: int, since: dt.datetime, until: dt.datetime):
    """The inspections of a station in a window that count as good parts: none a reviewer marked defective, no
    repeated photo; the newest first."""
    return (
        select(Inspection.id, Inspection.image_sha256, Inspection.filename)
        .where(
            Inspection.station_id == station_id,
            Inspection.created_at >= since,
            Inspection.created_at < until,
            Inspection.duplicate_of.is_(None),
            or_(Inspection.review_verdict.is_(None), Inspection.review_verdict != "anomalous"),
        )
        .order_by(Inspection.id.desc())
        .limit(MAX_STATION_IMAGES)
    )


def check_sources(
    dataset_id: int | None, station: str | None, since: dt.datetime | None, until: dt.datetime | None
) -> None:
    """The rules between a recalibration's fields that a JSON schema cannot state (LinewatchError: a 400)."""
    if dataset_id is not None and station is not None:
        raise LinewatchError("give a dataset or a station to calibrate on, not both")
    if station is None and (since is not None or until is not None):
        raise LinewatchError("since and until choose a station's inspections: give the station too")
    if since is not None and until is not None and since >= until:
        raise LinewatchError("since must be before until")


def start_calibration(
    ctx: AppContext,
    session: Session,
    who: Principal | None,
    model_id: int,
    dataset_id: int | None,
    false_alarm_rate: float | None,
    name: str | None,
    station: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> Job:
    """Queue a recalibration of a ready model version; its new version is "calibrating" until the job ends. The good
    images: a dataset's, or a station's inspections from ``since`` to ``until`` (``_station_parts``; at least
    ``MIN_IMAGES``), or neither, when the version keeps the held-out scores of its last calibration (versions trained
    since they are kept do). The same recalibration while one is queued or running is refused."""
    from linewatch.errors import ModelFileError
    from linewatch.vision.manifest import read_manifest
    from linewatch.vision.recalibration import MIN_IMAGES

    check_sources(dataset_id, station, since, until)
    user_id = who.user_id if who is not None else None
    params = {"model_id": model_id, "dataset_id": dataset_id, "false_alarm_rate": false_alarm_rate, "name": name}
    with session.begin():
        parent = session.get(ModelVersion, model_id)
        if parent is None:
            raise NotFound(f"no model version {model_id}")
        if parent.status != "ready" or not parent.path:
            raise Conflict(f"model version {model_id} is {parent.status}, not ready: it has no thresholds to set yet")
        dataset = None
        what = "kept scores"
        if dataset_id is not None:
            dataset = session.get(Dataset, dataset_id)
            if dataset is None:
                raise NotFound(f"no dataset {dataset_id}")
            what = f"good images of {dataset.name}"
        elif station is not None:
            st = session.scalar(select(Station).where(Station.name == station))
            if st is None:
                raise NotFound(f"unknown station {station!r}")
            since, until = _window(since, until)
            found = len(session.execute(_station_parts(st.id, since, until)).all())
            if found < MIN_IMAGES:
                raise Conflict(
                    f"station {station!r} inspected {found} parts from {since:%Y-%m-%d %H:%M} to "
                    f"{until:%Y-%m-%d %H:%M} UTC that no reviewer marked defective; calibrating needs at least "
                    f"{MIN_IMAGES}"
                )
            params.update(station=station, since=since.isoformat(), until=until.isoformat())
            what = f"{station}'s parts of {since:%Y-%m-%d %H:%M}–{until:%H:%M} UTC"
        else:
            try:
                kept = read_manifest(parent.path).get("calibration_scores")
            except ModelFileError as e:
                raise Conflict(f"model version {model_id} cannot be read: {e}") from None
            if not kept:
                raise Conflict(
                    f"model version {model_id} keeps no held-out good scores (trained before they were kept): give a "
                    "dataset of good images to calibrate on"
                )
        same = active_twin(session, "calibrate", params)
        if same is not None:
            raise Conflict(f"the same recalibration is already {same.status} as job #{same.id}")
        job = Job(kind="calibrate", params=params, created_by=user_id, message="queued")
        session.add(job)
        session.flush()
        session.add(
            ModelVersion(
                name=name or _name(parent, false_alarm_rate, what),
                method=parent.method,
                backbone=parent.backbone,
                image_size=parent.image_size,
                status="calibrating",
                dataset_id=parent.dataset_id,
                job_id=job.id,
                created_by=user_id,
            )
        )
        audit.record(
            session, "model.calibrate", who, target=f"model {model_id}", dataset=dataset_id, station=station, job=job.id
        )
    ctx.jobs.submit(job.id)
    return job


def _metrics_at(metrics: dict | None, threshold: float) -> dict:
    """The parent's stored evaluation with its threshold's figures (false alarms, misses, per defect type) at the new
    threshold, from the per-image test scores kept with it; the threshold-free figures (AUROC, AUPRO) stay. Without
    test scores the error rates are dropped rather than left at the old threshold's values."""
    out = copy.deepcopy({k: v for k, v in (metrics or {}).items() if k not in ("training", "calibration")})
    if not out:
        return out
    rows = out.get("test_scores") or []
    labels = np.array([r["label"] != "good" for r in rows], bool)
    scores = np.array([float(r["score"]) for r in rows])
    have = bool(rows) and labels.any() and (~labels).any() and len(rows) == out.get("images")
    out["threshold"] = threshold
    for key in ("false_alarm_rate", "miss_rate"):
        out.pop(key, None)
    if have:
        flagged = scores >= threshold
        out["false_alarm_rate"] = float(flagged[~labels].mean())
        out["miss_rate"] = float((~flagged[labels]).mean())
    for kind, row in (out.get("per_type") or {}).items():
        row.pop("miss_rate", None)
        sel = np.array([r["label"] == kind for r in rows], bool)
        if have and sel.any():
            row["miss_rate"] = float((scores[sel] < threshold).mean())
    return out


def _fetch_inspections(ctx: AppContext, params: dict, folder: Path, skipped: list[str]) -> list[Path]:
    """The photos of the station's good parts in the job's window, as files; those whose image is gone from the blob
    store (deleted since) are named in ``skipped``."""
    since, until = (dt.datetime.fromisoformat(params[k]) for k in ("since", "until"))
    with ctx.sessions() as s:
        st = s.scalar(select(Station).where(Station.name == params["station"]))
        if st is None:
            raise LinewatchError(f"station {params['station']!r} no longer exists")
        rows = s.execute(_station_parts(st.id, since, until)).all()
    paths = []
    for inspection_id, sha, filename in rows:
        try:
            data = ctx.blobs.get(sha)
        except BlobNotFound:
            skipped.append(f"inspection {inspection_id}: its image is no longer stored")
            continue
        p = folder / f"{inspection_id}_{Path(filename or 'image').name}"
        p.write_bytes(data)
        paths.append(p)
    return paths


def run_calibration(ctx: AppContext, job_id: int, params: dict, progress) -> dict:
    """Score the dataset's good images (or take the kept scores), write the new version's directory (a copy of the
    parent's with the new thresholds), and make the version ready."""
    from linewatch.vision.recalibration import recalibrate

    with ctx.sessions() as s:
        new_id = s.scalar(select(ModelVersion.id).where(ModelVersion.job_id == job_id))
        parent = s.get(ModelVersion, params["model_id"])
        if parent is None or not parent.path:
            raise LinewatchError(f"model version {params['model_id']} no longer exists")
        parent_path, parent_metrics = parent.path, parent.metrics
    final = ctx.settings.models_dir / str(new_id)
    skipped: list[str] = []
    with tempfile.TemporaryDirectory(prefix="linewatch-calibrate-") as tmp:
        images = None
        if params.get("dataset_id") is not None:
            name, rows = _dataset_images(ctx, params["dataset_id"], good_only=True)
            if not rows:
                raise LinewatchError(f"dataset {name!r} has no good images to calibrate on")
            images = _fetch(ctx, rows, Path(tmp))
        elif params.get("station") is not None:
            images = _fetch_inspections(ctx, params, Path(tmp), skipped)
        done = recalibrate(
            parent_path,
            images,
            params.get("false_alarm_rate"),
            out=final,
            progress=progress,
        )
    info = {**done.to_dict(), "from_model_id": params["model_id"], "dataset_id": params.get("dataset_id")}
    info.update({k: params[k] for k in ("station", "since", "until") if params.get(k) is not None})
    info["skipped"] = skipped + done.skipped  # images gone from the store, then those that could not be read
    info.pop("model", None)
    with ctx.sessions() as s, s.begin():
        mv = s.get(ModelVersion, new_id)
        mv.status, mv.path = "ready", str(final.resolve())
        mv.threshold = done.after.image_threshold
        metrics = _metrics_at(parent_metrics, done.after.image_threshold)
        if parent_metrics and "training" in parent_metrics:
            metrics["training"] = parent_metrics["training"]
        metrics["calibration"] = info
        mv.metrics = metrics
    return {"model_id": new_id, "images": done.images, "skipped": len(info["skipped"])}
