"""Scoring one uploaded image for a station and storing everything it produced.

Order of writes: image and heatmap blobs first (content-addressed, atomic), then the database rows, those of one
request in one transaction. A row never points at a missing blob; a failure between leaves at most unreferenced
blobs, never a half one, and no row of a request that failed."""

from __future__ import annotations

import re
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait

import imagehash
from PIL import Image
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from linewatch.config import Settings
from linewatch.core.events import InspectionStored
from linewatch.search.repeats import fingerprint
from linewatch.services.context import AppContext, Conflict, NotFound
from linewatch.services.errors import TooLarge
from linewatch.services.heatmaps import encode_map
from linewatch.services.searching import vectors_row
from linewatch.store.blobs import BlobStore, blob_key
from linewatch.store.tables import Inspection, InspectionVectors, InspectRequest, ModelVersion, Station
from linewatch.vision.images import image_size, open_image_bytes

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_FILENAME = 300  # the filename columns


def clean_filename(name: str | None, default: str | None = None) -> str | None:
    """An uploaded file's name as it can be stored and shown: valid UTF-8, no control characters (PostgreSQL
    refuses NUL), no longer than the column; ``default`` for a missing or empty one."""
    if not name:
        return default
    cleaned = _CONTROL.sub("", name.encode("utf-8", "replace").decode("utf-8"))[:MAX_FILENAME]
    return cleaned or default


def check_request(settings: Settings, uploads: list[tuple[str | None, bytes]]) -> None:
    """Refuse (413) a request that would cost too much before any image of it is decoded: more files than
    ``max_request_files``, or more pixels in all than ``max_request_pixels`` (read from the images' headers).
    Each image's own limits (pixels, side, aspect) are checked again as it is decoded."""
    if len(uploads) > settings.max_request_files:
        raise TooLarge(f"{len(uploads)} files in one request; at most {settings.max_request_files}")
    total = 0
    for name, data in uploads:
        w, h = image_size(data, name or "upload", settings.max_image_pixels)
        total += w * h
        if total > settings.max_request_pixels:
            raise TooLarge(
                f"the request's images hold over {settings.max_request_pixels:,} pixels in all: send fewer or "
                "smaller images per request"
            )


def perceptual_hash(img: Image.Image) -> str:
    """imagehash's DCT hash (64 bits, hex) of the image box-reduced to about 128 px first: the hash itself only
    looks at 32×32, and reducing a camera-sized image first makes it ~10× cheaper."""
    factor = max(1, min(img.size) // 128)
    return str(imagehash.phash(img.reduce(factor) if factor > 1 else img))


def station_model(ctx: AppContext, station_name: str) -> tuple[Station, ModelVersion]:
    """The station and its active model, ready to score with (NotFound, Conflict otherwise); kept for a moment in
    ``ctx.station_models`` (an activation clears it)."""
    generation = ctx.station_models.generation()
    with ctx.sessions() as s:
        row = s.execute(
            select(Station, ModelVersion)
            .outerjoin(ModelVersion, ModelVersion.id == Station.active_model_id)
            .where(Station.name == station_name)
        ).first()
        if row is None:
            raise NotFound(f"unknown station {station_name!r}")
        station, model = row
        if station.active_model_id is None:
            raise Conflict(f"station {station_name!r} has no active model: activate a model version first")
        if model is None or model.status != "ready" or not model.path:
            raise Conflict(f"the active model of station {station_name!r} is not ready")
    ctx.station_models.put(station_name, (station, model), generation)
    return station, model


def _keep_and_describe(blobs: BlobStore, data: bytes, img: Image.Image) -> tuple[str, str, bytes | None]:
    """The uploaded image stored (its key, the SHA-256), its perceptual hash and its repeat fingerprint: the
    work on an image that does not need its score."""
    key = blobs.put(data)
    fp = fingerprint(img)
    return key, perceptual_hash(img), fp.to_bytes() if fp is not None else None


# Storing and hashing an upload runs on one of these while the model scores it: the model's own threads release
# the GIL, and fsyncing the file is mostly waiting. A few, shared by all requests, so that a burst of requests
# does not start a thread each.
_SIDE = ThreadPoolExecutor(max_workers=4, thread_name_prefix="linewatch-upload")


def _score(
    ctx: AppContext, station: Station, model: ModelVersion, data: bytes, filename: str | None
) -> tuple[Inspection, InspectionVectors | None, Future]:
    """Score one image; the rows it returns (the inspection and its search vectors, None for a model exported
    before search existed) are not added to any session. The image is stored and hashed beside the scoring, and
    the heatmap is being stored when this returns: the future says when (its error is the request's), and the
    rows must not be committed before it is done. A scoring error after the image was stored leaves an
    unreferenced blob, which the module's order of writes allows."""
    started = time.perf_counter()
    filename = clean_filename(filename)
    img = open_image_bytes(data, filename or "upload", ctx.settings.max_image_pixels)
    scorer = ctx.models.get(model.id, model.path)
    side = _SIDE.submit(_keep_and_describe, ctx.blobs, data, img)
    try:
        pred = scorer.predict([img])[0]
        if scorer.calibration_ is None:  # activated before activation checked it: no verdict to store
            raise Conflict(
                f"station {station.name!r} runs model version {model.id}, which has no threshold (trained without "
                "held-out good images): activate a model trained with holdout above 0"
            )
        heat = encode_map(pred, scorer.calibration_)
    except BaseException:
        wait([side])  # nothing of this request runs on after its answer; scoring's error is the one reported
        raise
    sha, phash, fp = side.result()  # its error (the store down) is this request's
    vectors = vectors_row(model, pred.embeddings)
    stored = _SIDE.submit(ctx.blobs.put, heat)  # nothing below can fail: the caller waits for what it returns
    latency = (time.perf_counter() - started) * 1000
    row = Inspection(
        station_id=station.id,
        model_id=model.id,
        image_sha256=sha,
        image_phash=phash,
        image_fingerprint=fp,
        heatmap_sha256=blob_key(heat),
        filename=filename,
        width=img.width,
        height=img.height,
        score=pred.score,
        normalized_score=pred.normalized_score,
        verdict=pred.verdict,
        regions=[r.to_dict() for r in pred.regions],
        latency_ms=round(latency, 2),
        brightness=pred.brightness,
    )
    return row, vectors, stored


def _replayed(ctx: AppContext, station: Station, key: str) -> list[dict] | None:
    """The answer already given to the request with this idempotency key at this station, or None."""
    with ctx.sessions() as s:
        req = s.get(InspectRequest, (station.id, key))
        if req is None:
            return None
        rows = {r.id: r for r in s.scalars(select(Inspection).where(Inspection.id.in_(req.inspection_ids)))}
        return [inspection_dict(rows[i], station.name) for i in req.inspection_ids if i in rows]


def inspect_images(
    ctx: AppContext,
    station: Station,
    model: ModelVersion,
    uploads: list[tuple[str | None, bytes]],
    idempotency_key: str | None = None,
) -> list[dict]:
    """Score ``(filename, bytes)`` uploads as one request: all or nothing. Every image is scored and its blobs
    stored first, then one transaction commits all the rows; an error anywhere (a bad image, the blob store or
    the database unavailable) leaves no row for any of them, so a client can send the same request again.

    With an ``idempotency_key`` a request that was already stored at this station (the client retried after
    losing the answer) is answered with the inspections it stored, and nothing is scored or stored again; two
    copies sent at once store one set of rows (the second commit fails on the key and answers the first's)."""
    if idempotency_key is not None:
        done = _replayed(ctx, station, idempotency_key)
        if done is not None:
            return done
    check_request(ctx.settings, uploads)
    deadline = time.monotonic() + ctx.settings.request_time_budget_s
    scored, heatmaps = [], []
    try:
        for n, (filename, data) in enumerate(uploads):
            if n and time.monotonic() > deadline:
                raise TooLarge(
                    f"the request took over {ctx.settings.request_time_budget_s:g} s ({n} of {len(uploads)} images "
                    "scored, none stored): send fewer images per request"
                )
            row, vectors, stored = _score(ctx, station, model, data, filename)
            scored.append((row, vectors))
            heatmaps.append(stored)
        rows = [row for row, _ in scored]
        settings = ctx.settings
        with ctx.sessions() as s, s.begin():
            for n, (row, vectors) in enumerate(scored):
                dup = ctx.recent.find(
                    station.id,
                    row.image_sha256,
                    row.image_phash,
                    row.image_fingerprint,
                    settings.duplicate_window_s,
                    settings.near_duplicate_bits,
                    settings.duplicate_recent,
                    pending=rows[:n],
                )
                if dup is not None:
                    row.duplicate_of, row.duplicate_kind = dup
                s.add(row)
                s.flush()  # its id, and the next image of this request sees it as recent
                if vectors is not None:
                    vectors.inspection_id = row.id
                    s.add(vectors)
            if idempotency_key is not None:
                s.add(InspectRequest(station_id=station.id, key=idempotency_key, inspection_ids=[r.id for r in rows]))
            s.flush()
            for stored in heatmaps:  # the rows are written but not committed: their heatmaps are stored first
                stored.result()
    except IntegrityError:
        done = _replayed(ctx, station, idempotency_key) if idempotency_key is not None else None
        if done is None:
            raise
        return done  # a concurrent copy of this request committed first; its blobs are the same content
    finally:
        wait(heatmaps)  # on an error too: nothing of this request runs on after its answer
    out = []
    for row, vectors in scored:
        result = inspection_dict(row, station.name)
        ctx.bus.publish(InspectionStored(inspection=result, stored=(row, station.name, vectors)))
        out.append(result)
    return out


def inspect_image(ctx: AppContext, station: Station, model: ModelVersion, data: bytes, filename: str | None) -> dict:
    """One image: ``inspect_images`` of a single upload."""
    return inspect_images(ctx, station, model, [(filename, data)])[0]


def inspection_dict(row: Inspection, station_name: str) -> dict:
    return {
        "id": row.id,
        "station": station_name,
        "model_id": row.model_id,
        "filename": row.filename,
        "image_sha256": row.image_sha256,
        "image_phash": row.image_phash,
        "width": row.width,
        "height": row.height,
        "score": row.score,
        "normalized_score": row.normalized_score,
        "verdict": row.verdict,
        "regions": row.regions,
        "latency_ms": row.latency_ms,
        "reviewed": row.reviewed,
        "review_verdict": row.review_verdict,
        "defect_type": row.defect_type,
        "duplicate_of": row.duplicate_of,
        "duplicate_kind": row.duplicate_kind,
        "created_at": row.created_at.isoformat(),
        "image_url": f"/api/v1/inspections/{row.id}/image",
        "heatmap_url": f"/api/v1/inspections/{row.id}/heatmap",
        "overlay_url": f"/api/v1/inspections/{row.id}/overlay",
    }
