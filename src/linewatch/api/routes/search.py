"""Defect search: similar past inspections, search by an uploaded image, duplicates, label suggestions, line
statistics without repeated uploads, thumbnails, deleting an inspection, and the backfill job."""

from __future__ import annotations

import datetime as dt
import io
import threading
from collections import OrderedDict
from typing import Annotated

from fastapi import APIRouter, Depends, File, HTTPException, Query, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from linewatch.api.deps import Id, ctx, db, engineer, operator, viewer
from linewatch.api.schemas import LINE, InspectionOut, JobOut, TimeFilter, Timestamp, Verdict, errors
from linewatch.search.index import Filter
from linewatch.services.accounts import Principal
from linewatch.services.context import AppContext
from linewatch.services.inspecting import inspection_dict, station_model
from linewatch.services.searching import defect_matrix, region_box, suggest, vectors_row
from linewatch.store.blobs import BlobNotFound
from linewatch.store.tables import Inspection, InspectionVectors, Job, Station
from linewatch.vision.images import open_image_bytes

router = APIRouter(prefix="/api/v1", tags=["search"], responses=errors(400, 401, 403, 422))
NOT_FOUND = errors(404, e404="no such inspection")
NO_VECTORS = errors(409, e409="the inspection has no search vectors (run the backfill job, POST /search/backfill)")
THUMB_SIDE = 192


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


class DuplicatesOut(BaseModel):
    original: InspectionOut = Field(description="the first upload of this image")
    repeats: list[InspectionOut] = Field(description="later uploads flagged as repeating it, oldest first")


class StatsOut(BaseModel):
    parts: int = Field(description="inspections that are not repeats of an earlier upload")
    good: int
    anomalous: int
    defect_rate: float | None
    duplicates: int = Field(description="repeated uploads, not counted in parts")
    first_at: Timestamp | None = Field(None, description="the first part of the period")
    last_at: Timestamp | None = Field(None, description="the last part of the period")
    covered_s: float | None = Field(
        None,
        description="seconds of the period the line actually covered: from its first part (or `since`, when the "
        "line was already running before it) to `until` or now, whichever is earlier",
    )
    throughput_per_s: float | None = Field(None, description="parts ÷ covered_s (None when nothing was covered)")


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


def _results(session: Session, hits: list[tuple[int, float, dict]]) -> list[dict]:
    if not hits:
        return []
    rows = {
        insp.id: (insp, name)
        for insp, name in session.execute(
            select(Inspection, Station.name)
            .join(Station, Station.id == Inspection.station_id)
            .where(Inspection.id.in_([i for i, _, _ in hits]))
        ).all()
    }
    out = []
    for iid, sim, payload in hits:
        if iid not in rows:  # deleted since it was indexed
            continue
        insp, name = rows[iid]
        region = payload.get("region")
        box = region_box(insp.regions, region)
        out.append(
            {
                "similarity": round(float(sim), 6),
                "region": region,
                "box": box,
                "thumbnail_url": f"/api/v1/inspections/{iid}/thumbnail",
                "inspection": inspection_dict(insp, name),
            }
        )
    return out


def _similar(c: AppContext, session: Session, inspection_id: int, region: int | None, k: int, where: Filter):
    insp = session.get(Inspection, inspection_id)
    if insp is None:
        raise HTTPException(404, f"no inspection {inspection_id}")
    row = session.get(InspectionVectors, inspection_id)
    if row is None:
        raise HTTPException(409, f"inspection {inspection_id} has no search vectors: run POST /api/v1/search/backfill")
    vecs = defect_matrix(row)
    if region is not None:
        if not row.from_regions or region >= len(vecs):
            raise HTTPException(404, f"inspection {inspection_id} has no region {region}")
        vecs = vecs[region : region + 1]
    hits = c.search.search(row.space, row.defect_dim, vecs, k, where, exclude=inspection_id)
    return _results(session, hits)


@router.get(
    "/inspections/{inspection_id}/similar", response_model=list[SimilarOut], responses={**NOT_FOUND, **NO_VECTORS}
)
def similar(
    inspection_id: Id,
    region: int | None = Query(None, ge=0, le=1000, description="only this region's defect (0-based)"),
    k: int = Query(5, ge=1, le=100),
    where: Filter = Depends(filters),
    _=Depends(viewer),
    session: Session = Depends(db),
    c=Depends(ctx),
):
    """Earlier inspections whose defects look most like this one's (region by region), best first."""
    return _similar(c, session, inspection_id, region, k, where)


def _search_upload(c: AppContext, model, station: str, data: bytes, name: str | None, k: int, where: Filter):
    img = open_image_bytes(data, name or "upload", c.settings.max_image_pixels)
    scorer = c.models.get(model.id, model.path)
    pred = scorer.predict([img])[0]
    row = vectors_row(model, pred.embeddings)
    if row is None:
        raise HTTPException(409, f"the active model of station {station!r} gives no search vectors: re-export it")
    hits = c.search.search(row.space, row.defect_dim, defect_matrix(row), k, where)
    with c.sessions() as s:
        return _results(s, hits)


@router.post(
    "/search",
    response_model=list[SimilarOut],
    responses=errors(404, 409, 413, e404="unknown station", e409="the station has no usable active model"),
)
async def search_by_image(
    file: UploadFile = File(description="a part image: its defects are scored and searched for"),
    model_station: str = Query(
        min_length=1, max_length=100, pattern=LINE, description="the station whose active model scores the upload"
    ),
    k: int = Query(5, ge=1, le=100),
    where: Filter = Depends(filters),
    _=Depends(operator),
    c: AppContext = Depends(ctx),
):
    """Past inspections whose defects look like the uploaded image's. The image is scored by ``model_station``'s
    active model and not stored; matches come from any station of that model's vector space unless ``station``
    narrows them."""
    _st, model = await run_in_threadpool(station_model, c, model_station)
    data = await file.read()
    if len(data) > c.settings.max_upload_bytes:
        raise HTTPException(413, f"{len(data):,} bytes is over the limit")
    if not data:
        raise HTTPException(400, "empty file")
    return await run_in_threadpool(_search_upload, c, model, model_station, data, file.filename, k, where)


@router.get("/inspections/{inspection_id}/suggestion", response_model=SuggestionOut, responses=NOT_FOUND)
def suggestion(inspection_id: Id, _=Depends(viewer), session: Session = Depends(db), c=Depends(ctx)):
    """A defect type for this inspection from its nearest reviewed look-alikes (a similarity-weighted vote)."""
    if session.get(Inspection, inspection_id) is None:
        raise HTTPException(404, f"no inspection {inspection_id}")
    got = suggest(c.search, session, inspection_id)
    if got is None:
        return {"defect_type": None, "confidence": 0.0}
    return {
        "defect_type": got.defect_type,
        "confidence": round(got.confidence, 4),
        "votes": {k: round(v, 4) for k, v in got.votes.items()},
        "neighbours": got.neighbours,
    }


@router.get("/inspections/{inspection_id}/duplicates", response_model=DuplicatesOut, responses=NOT_FOUND)
def duplicates(inspection_id: Id, _=Depends(viewer), session: Session = Depends(db)):
    """The first upload of this inspection's image and every later upload flagged as repeating it."""
    insp = session.get(Inspection, inspection_id)
    if insp is None:
        raise HTTPException(404, f"no inspection {inspection_id}")
    root_id = insp.duplicate_of or insp.id
    rows = session.execute(
        select(Inspection, Station.name)
        .join(Station, Station.id == Inspection.station_id)
        .where((Inspection.id == root_id) | (Inspection.duplicate_of == root_id))
        .order_by(Inspection.id)
    ).all()
    original = next(((i, n) for i, n in rows if i.id == root_id), None)
    if original is None:  # the original was deleted: the oldest repeat stands for it
        original = rows[0]
    return {
        "original": inspection_dict(*original),
        "repeats": [inspection_dict(i, n) for i, n in rows if i.id != original[0].id],
    }


@router.get("/stats", response_model=StatsOut)
def stats(
    station: str | None = Query(None, min_length=1, max_length=100, pattern=LINE),
    since: Annotated[TimeFilter, Query(description="inspected at or after (without an offset: UTC)")] = None,
    until: Annotated[TimeFilter, Query(description="inspected before (without an offset: UTC)")] = None,
    _=Depends(viewer),
    session: Session = Depends(db),
):
    """Counts of the line: parts by verdict, repeated uploads apart (each part counts once), and its throughput:
    the parts of the period divided by the part of the period the line covered (a line that started 20 s into a
    5-minute period is measured over those 20 s, not 300)."""
    scope = select(Inspection).join(Station, Station.id == Inspection.station_id)
    if station is not None:
        scope = scope.where(Station.name == station)
    if until is not None:
        scope = scope.where(Inspection.created_at < until)
    ran_before = False
    if since is not None:
        before = scope.where(Inspection.created_at < since).with_only_columns(Inspection.id).limit(1)
        ran_before = session.scalar(before) is not None
        scope = scope.where(Inspection.created_at >= since)
    q = scope.with_only_columns(
        Inspection.verdict,
        Inspection.duplicate_of.is_(None),
        func.count(),
        func.min(Inspection.created_at),
        func.max(Inspection.created_at),
    )
    counts = {"good": 0, "anomalous": 0}
    dups = 0
    first_at = last_at = None
    for verdict, first, n, lo, hi in session.execute(q.group_by(Inspection.verdict, Inspection.duplicate_of.is_(None))):
        if first:
            counts[verdict] = counts.get(verdict, 0) + n
            first_at = lo if first_at is None else min(first_at, lo)
            last_at = hi if last_at is None else max(last_at, hi)
        else:
            dups += n
    parts = counts["good"] + counts["anomalous"]
    now = dt.datetime.now(dt.UTC)
    end = min(until, now) if until is not None else now
    start = since if (ran_before and since is not None) else (_utc(first_at) if first_at is not None else None)
    covered = (end - start).total_seconds() if start is not None else None
    return {
        **counts,
        "parts": parts,
        "defect_rate": counts["anomalous"] / parts if parts else None,
        "duplicates": dups,
        "first_at": first_at,
        "last_at": last_at,
        "covered_s": round(covered, 3) if covered is not None and covered > 0 else None,
        "throughput_per_s": parts / covered if covered is not None and covered > 0 else None,
    }


def _utc(t: dt.datetime) -> dt.datetime:
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


class _Thumbnails:
    """Recently made thumbnails (an image's bytes never change under its key): a live page showing 20 new
    inspections a second asks for each one once per viewer; this serves the repeats without decoding again."""

    def __init__(self, max_bytes: int = 32 * 1024 * 1024):
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            data = self._items.get(key)
            if data is not None:
                self._items.move_to_end(key)
            return data

    def put(self, key: str, data: bytes) -> None:
        with self._lock:
            if key in self._items:
                return
            self._items[key] = data
            self._size += len(data)
            while self._size > self.max_bytes and self._items:
                _, old = self._items.popitem(last=False)
                self._size -= len(old)


THUMBNAILS = _Thumbnails()


def _thumbnail(c: AppContext, key: str) -> bytes:
    cached = THUMBNAILS.get(key)
    if cached is not None:
        return cached
    try:
        data = c.blobs.get(key)
    except BlobNotFound:
        raise HTTPException(404, "the stored image is missing") from None
    img = open_image_bytes(data, "stored image", c.settings.max_image_pixels).convert("RGB")
    img.thumbnail((THUMB_SIDE, THUMB_SIDE))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=85)
    THUMBNAILS.put(key, buf.getvalue())
    return buf.getvalue()


@router.get(
    "/inspections/{inspection_id}/thumbnail",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}}}, **NOT_FOUND},
)
async def thumbnail(inspection_id: Id, _=Depends(viewer), session: Session = Depends(db), c=Depends(ctx)):
    """The inspected image, at most 192 px on its longer side, JPEG."""
    insp = await run_in_threadpool(session.get, Inspection, inspection_id)
    if insp is None:
        raise HTTPException(404, f"no inspection {inspection_id}")
    jpeg = await run_in_threadpool(_thumbnail, c, insp.image_sha256)
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=31536000, immutable"})


@router.delete("/inspections/{inspection_id}", status_code=204, responses=NOT_FOUND)
def delete_inspection(inspection_id: Id, _=Depends(engineer), session: Session = Depends(db), c=Depends(ctx)):
    """Delete an inspection, its reviews and its search vectors, and take it out of the search index. Its image
    and heatmap blobs stay (content-addressed: another inspection may hold the same bytes)."""
    with session.begin():
        insp = session.get(Inspection, inspection_id)
        if insp is None:
            raise HTTPException(404, f"no inspection {inspection_id}")
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
    c.recent.forget(insp.station_id)
    if vec is not None:
        c.search.remove([vec])
    if repeats:  # the first repeat is an original now: searchable in its place
        c.search.refresh(repeats[0].id)


@router.post("/search/backfill", response_model=JobOut, status_code=202)
def backfill(body: BackfillIn, who: Principal = Depends(engineer), session: Session = Depends(db), c=Depends(ctx)):
    """Queue a job giving search vectors to every stored inspection without them (scored again by its own
    model); follow it with GET /jobs/{id}."""
    with session.begin():
        job = Job(kind="embed", params=body.model_dump(), created_by=who.user_id, message="queued")
        session.add(job)
    c.jobs.submit(job.id)
    return job
