"""Inspecting images for a station; browsing, fetching and reviewing inspections."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Header, Query, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from linewatch.api.deps import DB, Ctx, Engineer, Id, Name, Operator, Viewer, station_allowed
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
from linewatch.errors import LinewatchError
from linewatch.services import heatmaps, inspections, thumbnails
from linewatch.services.errors import TooLarge
from linewatch.services.inspecting import clean_filename, inspect_images, station_model

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
        403,
        404,
        409,
        413,
        e400="an empty, unreadable or corrupt image",
        e404="unknown station",
        e409="the station has no active model, or it cannot be loaded",
        e403="the role is too low, or an API key scoped to other stations",
        e413="the request or an image is too large: bytes, pixels, files per request, or the time budget",
    ),
)
async def inspect(
    station: Name,
    who: Operator,
    c: Ctx,
    files: list[UploadFile] = File(
        min_length=1,
        description="part images (PNG, JPEG, BMP or TIFF unless the image_formats setting says otherwise); at most "
        "max_request_files of them and max_request_pixels in all",
    ),
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
):
    """Score one or many images with the station's active model; each is stored with its heatmap. All or
    nothing: an error answer means no image of the request was stored as an inspection, so it can be sent again.
    A client that retries after losing an answer should send an ``Idempotency-Key``.

    Bounded work: more files than ``max_request_files`` or more pixels in all than ``max_request_pixels`` are
    refused (413) before any image is decoded, and a request still scoring after ``request_time_budget_s`` is
    refused whole."""
    station_allowed(who, station)
    if len(files) > c.settings.max_request_files:
        raise TooLarge(f"{len(files)} files in one request; at most {c.settings.max_request_files}")
    st, model = c.station_models.get(station) or await run_in_threadpool(station_model, c, station)
    uploads = []
    for f in files:
        name = clean_filename(f.filename)
        data = await f.read()
        if len(data) > c.settings.max_upload_bytes:
            raise TooLarge(f"{name or 'upload'}: {len(data):,} bytes is over the limit")
        if not data:
            raise LinewatchError(f"{name or 'upload'}: empty file")
        uploads.append((name, data))
    return await run_in_threadpool(inspect_images, c, st, model, uploads, idempotency_key)


@router.get("/inspections", response_model=InspectionPage)
def list_inspections(
    _: Viewer,
    session: DB,
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
    return inspections.page(
        session,
        station=station,
        verdict=verdict,
        reviewed=reviewed,
        defect_type=defect_type,
        since=since,
        until=until,
        min_score=min_score,
        max_score=max_score,
        cursor=cursor,
        limit=limit,
    )


@router.get("/inspections/{inspection_id}", response_model=InspectionOut, responses=NOT_FOUND)
def get_inspection(inspection_id: Id, _: Viewer, session: DB):
    return inspections.one(session, inspection_id)


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


IMMUTABLE = {"Cache-Control": "private, max-age=31536000, immutable"}


@router.get("/inspections/{inspection_id}/image", response_class=Response, responses={200: IMAGE, **NOT_FOUND})
async def get_image(inspection_id: Id, _: Viewer, session: DB, c: Ctx):
    # off the event loop: the database and the blob store may hang
    row, _name = await run_in_threadpool(inspections.stored, session, inspection_id)
    data = await run_in_threadpool(inspections.blob, c, row.image_sha256)
    return Response(data, media_type=_media(data), headers=IMMUTABLE)


@router.get("/inspections/{inspection_id}/heatmap", response_class=Response, responses={200: PNG, **NOT_FOUND})
async def get_heatmap(inspection_id: Id, _: Viewer, session: DB, c: Ctx):
    """The anomaly map coloured (blue normal, yellow at the threshold, red far above), at most 256 px on its longer
    side: stretch it over the image to overlay it."""
    row, _name = await run_in_threadpool(inspections.stored, session, inspection_id)
    data = await run_in_threadpool(inspections.blob, c, row.heatmap_sha256)
    png = await run_in_threadpool(heatmaps.colored, data)
    return Response(png, media_type="image/png", headers=IMMUTABLE)


@router.get("/inspections/{inspection_id}/overlay", response_class=Response, responses={200: PNG, **NOT_FOUND})
async def get_overlay(inspection_id: Id, _: Viewer, session: DB, c: Ctx):
    """The image at its own size with the coloured anomaly map blended in where it is high and the regions boxed."""
    row, _name = await run_in_threadpool(inspections.stored, session, inspection_id)
    png = await run_in_threadpool(inspections.overlay, c, row)
    return Response(png, media_type="image/png", headers=IMMUTABLE)


@router.post("/inspections/{inspection_id}/reviews", response_model=ReviewOut, status_code=201, responses=NOT_FOUND)
def review(inspection_id: Id, body: ReviewIn, who: Operator, session: DB, c: Ctx):
    """Confirm or overturn the verdict; the latest review counts (its defect type is what search filters on and
    what suggestions for look-alikes are drawn from)."""
    return inspections.review(session, c.bus, inspection_id, who, body.verdict, body.defect_type, body.note)


@router.get("/inspections/{inspection_id}/reviews", response_model=list[ReviewOut], responses=NOT_FOUND)
def list_reviews(inspection_id: Id, _: Viewer, session: DB):
    """Every review of the inspection, oldest first, with the reviewer's user name (None for a deleted user)."""
    return inspections.reviews(session, inspection_id)


@router.get(
    "/inspections/{inspection_id}/thumbnail",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}}}, **NOT_FOUND},
)
async def thumbnail(inspection_id: Id, _: Viewer, session: DB, c: Ctx):
    """The inspected image, at most 192 px on its longer side, JPEG."""
    row, _name = await run_in_threadpool(inspections.stored, session, inspection_id)
    jpeg = await run_in_threadpool(thumbnails.thumbnail, c, row.image_sha256)
    return Response(jpeg, media_type="image/jpeg", headers=IMMUTABLE)


@router.delete("/inspections/{inspection_id}", status_code=204, responses=NOT_FOUND)
def delete_inspection(inspection_id: Id, who: Engineer, session: DB, c: Ctx):
    """Delete an inspection, its reviews and its search vectors, and take it out of the search index. Its image
    and heatmap blobs stay (content-addressed: another inspection may hold the same bytes)."""
    inspections.delete(session, c.bus, inspection_id, who)
