"""Inspecting images for a station; browsing, fetching and reviewing inspections."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Header, HTTPException, Query, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from linewatch.api.deps import Id, Name, ctx, db, operator, viewer
from linewatch.api.schemas import (
    LINE,
    MAX_ID,
    InspectionOut,
    InspectionPage,
    ReviewIn,
    ReviewOut,
    TimeFilter,
    Verdict,
    errors,
)
from linewatch.services import heatmaps
from linewatch.services.accounts import Principal
from linewatch.services.context import AppContext
from linewatch.services.inspecting import clean_filename, inspect_images, inspection_dict, station_model
from linewatch.store.blobs import BlobNotFound
from linewatch.store.tables import Inspection, Review, Station, User
from linewatch.vision.images import open_image_bytes

router = APIRouter(prefix="/api/v1", tags=["inspections"], responses=errors(400, 401, 403, 422))
NOT_FOUND = errors(404, e404="no such inspection, or its stored image is missing")
IMAGE = {
    "content": {
        kind: {"schema": {"type": "string", "format": "binary"}}
        for kind in ("image/png", "image/jpeg", "image/bmp", "image/tiff", "application/octet-stream")
    },
    "description": "the image as uploaded",
}
PNG = {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}, "description": "a PNG"}


@router.post(
    "/stations/{station}/inspect",
    response_model=list[InspectionOut],
    responses=errors(
        400,
        404,
        409,
        413,
        e400="an empty, unreadable or corrupt image",
        e404="unknown station",
        e409="the station has no active model, or it cannot be loaded",
        e413="the request or an image is too large (bytes or pixels)",
    ),
)
async def inspect(
    station: Name,
    files: list[UploadFile] = File(min_length=1, description="part images (PNG, JPEG, BMP, TIFF)"),
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=200,
            pattern=r"^[!-~]+$",
            description="any unique string per request (e.g. a UUID); the same request sent again with it is "
            "answered with the inspections first stored, without storing the images twice",
        ),
    ] = None,
    _=Depends(operator),
    c: AppContext = Depends(ctx),
):
    """Score one or many images with the station's active model; each is stored with its heatmap. All or
    nothing: an error answer means no image of the request was stored as an inspection, so it can be sent again.
    A client that retries after losing an answer should send an ``Idempotency-Key``."""
    st, model = await run_in_threadpool(station_model, c, station)
    uploads = []
    for f in files:
        name = clean_filename(f.filename)
        data = await f.read()
        if len(data) > c.settings.max_upload_bytes:
            raise HTTPException(413, f"{name or 'upload'}: {len(data):,} bytes is over the limit")
        if not data:
            raise HTTPException(400, f"{name or 'upload'}: empty file")
        uploads.append((name, data))
    return await run_in_threadpool(inspect_images, c, st, model, uploads, idempotency_key)


@router.get("/inspections", response_model=InspectionPage)
def list_inspections(
    _=Depends(viewer),
    session: Session = Depends(db),
    station: str | None = Query(None, min_length=1, max_length=100, pattern=LINE),
    verdict: Verdict | None = None,
    reviewed: bool | None = None,
    defect_type: str | None = Query(None, min_length=1, max_length=100, pattern=LINE, description="reviewed as"),
    # Annotated (not `= Query(...)`), or FastAPI drops TimeFilter's validator.
    since: Annotated[TimeFilter, Query(description="created at or after (without an offset: UTC)")] = None,
    until: Annotated[TimeFilter, Query(description="created before (without an offset: UTC)")] = None,
    min_score: float | None = Query(None, allow_inf_nan=False, description="normalised score, 0..1"),
    max_score: float | None = Query(None, allow_inf_nan=False, description="normalised score, 0..1"),
    cursor: int | None = Query(None, ge=0, le=MAX_ID, description="next_cursor of the previous page"),
    limit: int = Query(50, ge=1, le=500),
):
    """Newest first; pass ``next_cursor`` back as ``cursor`` for the next page."""
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
    latest = _latest_reviews(session, [r.id for r, _ in rows[:limit] if r.reviewed])
    items = [{**inspection_dict(r, name), "review": latest.get(r.id)} for r, name in rows[:limit]]
    return {"items": items, "next_cursor": items[-1]["id"] if len(rows) > limit else None}


def _latest_reviews(session: Session, inspection_ids: list[int]) -> dict[int, dict]:
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
    return {rv.inspection_id: _review_dict(rv, name) for rv, name in rows}


def _get(session: Session, inspection_id: int) -> tuple[Inspection, str]:
    row = session.execute(
        select(Inspection, Station.name)
        .join(Station, Station.id == Inspection.station_id)
        .where(Inspection.id == inspection_id)
    ).first()
    if row is None:
        raise HTTPException(404, f"no inspection {inspection_id}")
    return row[0], row[1]


@router.get("/inspections/{inspection_id}", response_model=InspectionOut, responses=NOT_FOUND)
def get_inspection(inspection_id: Id, _=Depends(viewer), session: Session = Depends(db)):
    row, name = _get(session, inspection_id)
    return {**inspection_dict(row, name), "review": _latest_reviews(session, [row.id]).get(row.id)}


def _blob(c: AppContext, key: str) -> bytes:
    try:
        return c.blobs.get(key)
    except BlobNotFound:
        raise HTTPException(404, "the stored image is missing") from None


def _media(data: bytes) -> str:
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if data[:2] == b"BM":
        return "image/bmp"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "image/tiff"
    return "application/octet-stream"


@router.get("/inspections/{inspection_id}/image", response_class=Response, responses={200: IMAGE, **NOT_FOUND})
async def get_image(inspection_id: Id, _=Depends(viewer), session: Session = Depends(db), c=Depends(ctx)):
    row, _name = await run_in_threadpool(_get, session, inspection_id)  # off the event loop: the database may hang
    data = await run_in_threadpool(_blob, c, row.image_sha256)
    return Response(data, media_type=_media(data), headers={"Cache-Control": "private, max-age=31536000, immutable"})


@router.get("/inspections/{inspection_id}/heatmap", response_class=Response, responses={200: PNG, **NOT_FOUND})
async def get_heatmap(inspection_id: Id, _=Depends(viewer), session: Session = Depends(db), c=Depends(ctx)):
    """The anomaly map coloured (blue normal, yellow at the threshold, red far above), at most 256 px on its longer
    side: stretch it over the image to overlay it."""
    row, _name = await run_in_threadpool(_get, session, inspection_id)  # off the event loop: the database may hang
    data = await run_in_threadpool(_blob, c, row.heatmap_sha256)
    png = await run_in_threadpool(heatmaps.colored, data)
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=31536000, immutable"})


def _overlay(c: AppContext, row: Inspection) -> bytes:
    data = _blob(c, row.heatmap_sha256)
    if not heatmaps.is_map(data):
        return data
    image = open_image_bytes(_blob(c, row.image_sha256), "stored image", c.settings.max_image_pixels)
    return heatmaps.blended(image, data, row.regions or [])


@router.get("/inspections/{inspection_id}/overlay", response_class=Response, responses={200: PNG, **NOT_FOUND})
async def get_overlay(inspection_id: Id, _=Depends(viewer), session: Session = Depends(db), c=Depends(ctx)):
    """The image at its own size with the coloured anomaly map blended in where it is high and the regions boxed."""
    row, _name = await run_in_threadpool(_get, session, inspection_id)  # off the event loop: the database may hang
    png = await run_in_threadpool(_overlay, c, row)
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=31536000, immutable"})


@router.post("/inspections/{inspection_id}/reviews", response_model=ReviewOut, status_code=201, responses=NOT_FOUND)
def review(
    inspection_id: Id,
    body: ReviewIn,
    who: Principal = Depends(operator),
    session: Session = Depends(db),
    c: AppContext = Depends(ctx),
):
    """Confirm or overturn the verdict; the latest review counts (its defect type is what search filters on and
    what suggestions for look-alikes are drawn from)."""
    with session.begin():
        row, _name = _get(session, inspection_id)
        rv = Review(
            inspection_id=row.id,
            reviewer_id=who.user_id,
            verdict=body.verdict,
            defect_type=body.defect_type,
            note=body.note,
        )
        session.add(rv)
        row.reviewed = True
        row.review_verdict = body.verdict
        row.defect_type = body.defect_type if body.verdict == "anomalous" else None
    if c.search is not None:
        c.search.refresh(inspection_id)
    return _review_dict(rv, who.name)


def _review_dict(rv: Review, reviewer: str | None) -> dict:
    out = ReviewOut.model_validate(rv).model_dump()
    out["reviewer"] = reviewer
    return out


@router.get("/inspections/{inspection_id}/reviews", response_model=list[ReviewOut], responses=NOT_FOUND)
def list_reviews(inspection_id: Id, _=Depends(viewer), session: Session = Depends(db)):
    """Every review of the inspection, oldest first, with the reviewer's user name (None for a deleted user)."""
    _get(session, inspection_id)
    rows = session.execute(
        select(Review, User.name)
        .outerjoin(User, User.id == Review.reviewer_id)
        .where(Review.inspection_id == inspection_id)
        .order_by(Review.id)
    ).all()
    return [_review_dict(rv, name) for rv, name in rows]
