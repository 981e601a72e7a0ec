"""Stored inspections: browsing with filters and cursor pages, one inspection with its latest review, its image,
heatmap and overlay, and reviews (each then an ``InspectionReviewed`` event)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from linewatch.core.events import EventBus, InspectionDeleted, InspectionReviewed
from linewatch.errors import LinewatchError
from linewatch.services import audit, heatmaps
from linewatch.services.accounts import Principal
from linewatch.services.context import AppContext
from linewatch.services.errors import NotFound
from linewatch.services.inspecting import inspection_dict
from linewatch.store.blobs import BlobNotFound
from linewatch.store.tables import Inspection, InspectionVectors, ModelVersion, Review, Station, User
from linewatch.vision.area import AREA_FILE, area_of
from linewatch.vision.images import open_image_bytes


def page(
    session: Session,
    *,
    station: str | None = None,
    verdict: str | None = None,
    reviewed: bool | None = None,
    defect_type: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    min_score: float | None = None,
    max_score: float | None = None,
    cursor: int | None = None,
    limit: int = 50,
) -> dict:
    """Newest first; ``next_cursor`` (the last id shown) continues where this page ends."""
    q = select(Inspection, Station.name).join(Station, Station.id == Inspection.station_id)
    if station is not None:
        q = q.where(Station.name == station)
    if verdict is not None:
        q = q.where(Inspection.verdict == verdict)
    if reviewed is not None:
        q = q.where(Inspection.reviewed.is_(reviewed))
    if defect_type is not None:
        q = q.where(Inspection.defect_type == defect_type)
    if since is not None:
        q = q.where(Inspection.created_at >= since)
    if until is not None:
        q = q.where(Inspection.created_at < until)
    if min_score is not None:
        q = q.where(Inspection.normalized_score >= min_score)
    if max_score is not None:
        q = q.where(Inspection.normalized_score <= max_score)
    if cursor is not None:
        q = q.where(Inspection.id < cursor)
    rows = session.execute(q.order_by(Inspection.id.desc()).limit(limit + 1)).all()
    latest = latest_reviews(session, [r.id for r, _ in rows[:limit] if r.reviewed])
    items = [{**inspection_dict(r, name), "review": latest.get(r.id)} for r, name in rows[:limit]]
    return {"items": items, "next_cursor": items[-1]["id"] if len(rows) > limit else None}


def review_dict(rv: Review, reviewer: str | None) -> dict:
    return {
        "id": rv.id,
        "inspection_id": rv.inspection_id,
        "reviewer_id": rv.reviewer_id,
        "reviewer": reviewer,
        "verdict": rv.verdict,
        "defect_type": rv.defect_type,
        "note": rv.note,
        "created_at": rv.created_at,
    }


def latest_reviews(session: Session, inspection_ids: list[int]) -> dict[int, dict]:
    """The latest review of each of these inspections, with its reviewer's name: what a list or an export shows."""
    if not inspection_ids:
        return {}
    last = (
        select(func.max(Review.id))
        .where(Review.inspection_id.in_(inspection_ids))
        .group_by(Review.inspection_id)
        .scalar_subquery()
    )
    rows = session.execute(
        select(Review, User.name).outerjoin(User, User.id == Review.reviewer_id).where(Review.id.in_(last))
    ).all()
    return {rv.inspection_id: review_dict(rv, name) for rv, name in rows}


def stored(session: Session, inspection_id: int) -> tuple[Inspection, str]:
    """The inspection and its station's name."""
    row = session.execute(
        select(Inspection, Station.name)
        .join(Station, Station.id == Inspection.station_id)
        .where(Inspection.id == inspection_id)
    ).first()
    if row is None:
        raise NotFound(f"no inspection {inspection_id}")
    return row[0], row[1]


def one(session: Session, inspection_id: int) -> dict:
    row, name = stored(session, inspection_id)
    return {**inspection_dict(row, name), "review": latest_reviews(session, [row.id]).get(row.id)}


def blob(c: AppContext, key: str) -> bytes:
    try:
        return c.blobs.get(key)
    except BlobNotFound:
        raise NotFound("the stored image is missing") from None


def overlay(c: AppContext, row: Inspection) -> bytes:
    """The image at its own size with the coloured map blended in where it is high and the regions boxed."""
    data = blob(c, row.heatmap_sha256)
    if not heatmaps.is_map(data):
        return data
    image = open_image_bytes(blob(c, row.image_sha256), "stored image", c.settings.max_image_pixels)
    return heatmaps.blended(image, data, row.regions or [], area=model_area(c, row.model_id))


def model_area(c: AppContext, model_id: int) -> np.ndarray | None:
    """The inspection area of a model version (``linewatch.vision.area``), for pictures of its maps: None for the
    whole photo, or when its files are not readable here (the picture then shows the whole photo as scored)."""
    with c.sessions() as s:
        path = s.scalar(select(ModelVersion.path).where(ModelVersion.id == model_id))
    if not path or not (Path(path) / AREA_FILE).is_file():
        return None
    try:
        return area_of({"inspect_area": str(Path(path) / AREA_FILE)})
    except LinewatchError:
        return None


def review(
    session: Session,
    bus: EventBus,
    inspection_id: int,
    who: Principal,
    verdict: str,
    defect_type: str | None,
    note: str,
) -> dict:
    """Confirm or overturn the verdict; the latest review counts (its defect type is what search filters on and
    what suggestions for look-alikes are drawn from)."""
    with session.begin():
        row, _name = stored(session, inspection_id)
        rv = Review(inspection_id=row.id, reviewer_id=who.user_id, verdict=verdict, defect_type=defect_type, note=note)
        session.add(rv)
        row.reviewed = True
        row.review_verdict = verdict
        row.defect_type = defect_type if verdict == "anomalous" else None
        audit.record(
            session, "inspection.review", who, target=f"inspection {row.id}", verdict=verdict, defect_type=defect_type
        )
    bus.publish(InspectionReviewed(inspection_id=inspection_id, verdict=verdict, defect_type=row.defect_type))
    return review_dict(rv, who.name)


def reviews(session: Session, inspection_id: int) -> list[dict]:
    """Every review of the inspection, oldest first, with the reviewer's user name (None for a deleted user)."""
    stored(session, inspection_id)
    rows = session.execute(
        select(Review, User.name)
        .outerjoin(User, User.id == Review.reviewer_id)
        .where(Review.inspection_id == inspection_id)
        .order_by(Review.id)
    ).all()
    return [review_dict(rv, name) for rv, name in rows]


def delete(session: Session, bus: EventBus, inspection_id: int, who: Principal | None = None) -> None:
    """Delete an inspection, its reviews and its search vectors (an ``InspectionDeleted`` event takes it out of
    the search index and the recent-uploads cache). Its image and heatmap blobs stay (content-addressed: another
    inspection may hold the same bytes)."""
    with session.begin():
        insp = session.get(Inspection, inspection_id)
        if insp is None:
            raise NotFound(f"no inspection {inspection_id}")
        vec = session.get(InspectionVectors, inspection_id)
        if vec is not None:
            session.expunge(vec)
        # repeats of it now repeat nothing: the oldest becomes the original of the rest
        repeats = list(
            session.scalars(select(Inspection).where(Inspection.duplicate_of == inspection_id).order_by(Inspection.id))
        )
        for i, r in enumerate(repeats):
            r.duplicate_of = None if i == 0 else repeats[0].id
            r.duplicate_kind = None if i == 0 else r.duplicate_kind
        session.delete(insp)
        audit.record(session, "inspection.delete", who, target=f"inspection {inspection_id}", image=insp.image_sha256)
    bus.publish(
        InspectionDeleted(
            inspection_id=inspection_id,
            station_id=insp.station_id,
            promoted_id=repeats[0].id if repeats else None,
            vectors=vec,
        )
    )
