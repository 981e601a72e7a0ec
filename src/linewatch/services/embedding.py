"""Giving old inspections search vectors as a background job (job kind "embed")."""

from __future__ import annotations

import logging

from sqlalchemy import func, select

from linewatch.errors import LinewatchError
from linewatch.services.context import AppContext
from linewatch.store.tables import Job, ModelVersion

log = logging.getLogger("linewatch.jobs")
EMBED_BATCH = 16


def run_embedding(ctx: AppContext, job_id: int, params: dict, progress) -> dict:
    """Backfill search vectors: score again, with its own model, every stored inspection that has none (stored
    before search existed, or by a model exported before), store the vectors and index them. Inspections whose
    model is gone or cannot give vectors are counted and left."""
    from linewatch.services.searching import vectors_row
    from linewatch.store.tables import Inspection, InspectionVectors, Station
    from linewatch.vision.images import open_image_bytes

    def todo(session, after: int):
        q = (
            select(Inspection, ModelVersion)
            .join(Station, Station.id == Inspection.station_id)
            .join(ModelVersion, ModelVersion.id == Inspection.model_id)
            .outerjoin(InspectionVectors, InspectionVectors.inspection_id == Inspection.id)
            .where(InspectionVectors.inspection_id.is_(None), Inspection.id > after)
        )
        if params.get("station"):
            q = q.where(Station.name == params["station"])
        return q

    with ctx.sessions() as s:
        total = s.scalar(select(func.count()).select_from(todo(s, 0).subquery())) or 0
    done = embedded = skipped = 0
    after = 0
    progress("embed", 0, total)
    while True:
        with ctx.sessions() as s:
            batch = s.execute(todo(s, after).order_by(Inspection.id).limit(EMBED_BATCH)).all()
        if not batch:
            break
        after = batch[-1][0].id
        rows = []  # (inspection id, its new vectors row)
        for insp, model in batch:
            vec = None
            if model.status == "ready" and model.path:
                try:
                    scorer = ctx.models.get(model.id, model.path)
                    img = open_image_bytes(ctx.blobs.get(insp.image_sha256), f"inspection {insp.id}")
                    vec = vectors_row(model, scorer.predict([img])[0].embeddings)
                except LinewatchError as e:
                    log.warning("inspection %s: no search vectors: %s", insp.id, e)
            if vec is None:
                skipped += 1
                continue
            vec.inspection_id = insp.id
            rows.append(vec)
        if rows:
            with ctx.sessions() as s, s.begin():
                present = set(
                    s.scalars(select(Inspection.id).where(Inspection.id.in_([v.inspection_id for v in rows])))
                )  # one may have been deleted meanwhile
                rows = [v for v in rows if v.inspection_id in present]
                s.add_all(rows)
            if ctx.search is not None and ctx.search.started:  # a queue worker's hub is not: the service indexes
                with ctx.sessions() as s:
                    ctx.search.add(ctx.search.entries(s, [v.inspection_id for v in rows]), new=True)
            embedded += len(rows)
        done += len(batch)
        progress("embed", done, total)
    return {"embedded": embedded, "skipped": skipped}


def start_backfill(ctx: AppContext, session, user_id: int | None, params: dict) -> Job:
    """Queue a job giving search vectors to every stored inspection without them (scored again by its own model)."""
    with session.begin():
        job = Job(kind="embed", params=params, created_by=user_id, message="queued")
        session.add(job)
    ctx.jobs.submit(job.id)
    return job
