"""Defect search: similar past inspections, search by an uploaded image, duplicates, label suggestions, and the
backfill job."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Query, UploadFile
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from linewatch.api.deps import DB, Ctx, Engineer, Id, Operator, Viewer, station_allowed
from linewatch.api.schemas import LINE, InspectionOut, JobOut, TimeFilter, Verdict, errors
from linewatch.errors import LinewatchError
from linewatch.search.index import Filter
from linewatch.services import similar as lookups
from linewatch.services.embedding import start_backfill
from linewatch.services.errors import TooLarge
from linewatch.services.inspecting import station_model

router = APIRouter(prefix="/api/v1", tags=["search"], responses=errors(400, 401, 403, 422))
NOT_FOUND = errors(404, e404="no such inspection")
NO_VECTORS = errors(409, e409="the inspection has no search vectors (run the backfill job, POST /search/backfill)")


class SimilarOut(BaseModel):
    similarity: float = Field(description="cosine similarity of the nearest defect vectors, -1..1")
    region: int | None = Field(description="the matching region of that inspection (None: its anomaly peak)")
    box: list[int] | None = Field(description="that region's box, x, y, width, height in image pixels")
    thumbnail_url: str
    inspection: InspectionOut


class SuggestionOut(BaseModel):
    defect_type: str | None = Field(
        description="the suggested defect type; None for a part neither judged nor reviewed defective, and when no "
        "reviewed look-alike is near"
    )
    confidence: float = Field(
        description="the chance that the suggestion is right, 0..1: the winner's share of the nearest reviewed "
        "inspections' similarity-weighted votes (one pseudo-vote per known defect type) through a monotone map fitted "
        "on this installation's reviewed inspections (leave-one-out; the share itself below 20 reviews); never 0 or "
        "1, and a single look-alike never reads above 2/3"
    )
    votes: dict[str, float] = {}
    neighbours: int = Field(0, description="how many reviewed look-alikes voted")
    learned_from: int = Field(
        0,
        description="reviewed inspections of the station whose labels the look-alikes were found with (a metric "
        "learned from them once there are 20 of two types or more); 0: plain similarity",
    )


class DuplicatesOut(BaseModel):
    original: InspectionOut = Field(description="the first upload of this image")
    repeats: list[InspectionOut] = Field(description="later uploads flagged as repeating it, oldest first")


class BackfillIn(BaseModel):
    station: str | None = Field(None, min_length=1, max_length=100, pattern=LINE)


def filters(
    station: str | None = Query(None, min_length=1, max_length=100, pattern=LINE),
    verdict: Verdict | None = None,
    defect_type: str | None = Query(None, min_length=1, max_length=100, description="reviewed defect type"),
    since: Annotated[TimeFilter, Query(description="inspected at or after (without an offset: UTC)")] = None,
    until: Annotated[TimeFilter, Query(description="inspected before (without an offset: UTC)")] = None,
) -> Filter:
    return Filter(station=station, verdict=verdict, defect_type=defect_type, since=since, until=until)


Where = Annotated[Filter, Depends(filters)]


@router.get(
    "/inspections/{inspection_id}/similar", response_model=list[SimilarOut], responses={**NOT_FOUND, **NO_VECTORS}
)
def similar(
    inspection_id: Id,
    where: Where,
    _: Viewer,
    session: DB,
    c: Ctx,
    region: int | None = Query(None, ge=0, le=1000, description="only this region's defect (0-based)"),
    k: int = Query(5, ge=1, le=100),
):
    """Earlier inspections whose defects look most like this one's (region by region), best first."""
    return lookups.similar(c, session, inspection_id, region, k, where)


@router.post(
    "/search",
    response_model=list[SimilarOut],
    responses=errors(404, 409, 413, e404="unknown station", e409="the station has no usable active model"),
)
async def search_by_image(
    where: Where,
    who: Operator,
    c: Ctx,
    file: UploadFile = File(description="a part image: its defects are scored and searched for"),
    model_station: str = Query(
        min_length=1, max_length=100, pattern=LINE, description="the station whose active model scores the upload"
    ),
    k: int = Query(5, ge=1, le=100),
):
    """Past inspections whose defects look like the uploaded image's. The image is scored by ``model_station``'s
    active model and not stored; matches come from any station of that model's vector space unless ``station``
    narrows them."""
    station_allowed(who, model_station)
    _st, model = await run_in_threadpool(station_model, c, model_station)
    data = await file.read()
    if len(data) > c.settings.max_upload_bytes:
        raise TooLarge(f"{len(data):,} bytes is over the limit")
    if not data:
        raise LinewatchError("empty file")
    return await run_in_threadpool(lookups.search_upload, c, model, model_station, data, file.filename, k, where)


@router.get("/inspections/{inspection_id}/suggestion", response_model=SuggestionOut, responses=NOT_FOUND)
def suggestion(inspection_id: Id, _: Viewer, session: DB, c: Ctx):
    """A defect type for this inspection from its nearest reviewed look-alikes (a similarity-weighted vote)."""
    return lookups.suggestion(c, session, inspection_id)


@router.get("/inspections/{inspection_id}/duplicates", response_model=DuplicatesOut, responses=NOT_FOUND)
def duplicates(inspection_id: Id, _: Viewer, session: DB):
    """The first upload of this inspection's image and every later upload flagged as repeating it."""
    return lookups.duplicates(session, inspection_id)


@router.post("/search/backfill", response_model=JobOut, status_code=202)
def backfill(body: BackfillIn, who: Engineer, session: DB, c: Ctx):
    """Queue a job giving search vectors to every stored inspection without them (scored again by its own
    model); follow it with GET /jobs/{id}."""
    return start_backfill(c, session, who.user_id, body.model_dump())
