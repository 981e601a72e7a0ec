"""Looking up past inspections: similar defects (by region), search by an uploaded image, the defect type
suggested by reviewed look-alikes, and the repeats of an upload."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from linewatch.search.index import Filter
from linewatch.services.context import AppContext
from linewatch.services.errors import Conflict, NotFound
from linewatch.services.inspecting import inspection_dict
from linewatch.services.searching import defect_matrix, region_box, suggest, vectors_row
from linewatch.store.tables import Inspection, InspectionVectors, Station
from linewatch.vision.images import open_image_bytes


def results(session: Session, hits: list[tuple[int, float, dict]]) -> list[dict]:
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


def similar(c: AppContext, session: Session, inspection_id: int, region: int | None, k: int, where: Filter):
    insp = session.get(Inspection, inspection_id)
    if insp is None:
        raise NotFound(f"no inspection {inspection_id}")
    row = session.get(InspectionVectors, inspection_id)
    if row is None:
        raise Conflict(f"inspection {inspection_id} has no search vectors: run POST /api/v1/search/backfill")
    vecs = defect_matrix(row)
    if region is not None:
        if not row.from_regions or region >= len(vecs):
            raise NotFound(f"inspection {inspection_id} has no region {region}")
        vecs = vecs[region : region + 1]
    hits = c.search.search(row.space, row.defect_dim, vecs, k, where, exclude=inspection_id)
    return results(session, hits)


def search_upload(c: AppContext, model, station: str, data: bytes, name: str | None, k: int, where: Filter):
    from linewatch.services.inspecting import check_request

    check_request(c.settings, [(name, data)])
    img = open_image_bytes(data, name or "upload", c.settings.max_image_pixels)
    scorer = c.models.get(model.id, model.path)
    pred = scorer.predict([img])[0]
    row = vectors_row(model, pred.embeddings)
    if row is None:
        raise Conflict(f"the active model of station {station!r} gives no search vectors: re-export it")
    hits = c.search.search(row.space, row.defect_dim, defect_matrix(row), k, where)
    with c.sessions() as s:
        return results(s, hits)


def suggestion(c: AppContext, session: Session, inspection_id: int) -> dict:
    """A defect type for this inspection from its nearest reviewed look-alikes (a similarity-weighted vote)."""
    if session.get(Inspection, inspection_id) is None:
        raise NotFound(f"no inspection {inspection_id}")
    got = suggest(c.search, session, inspection_id)
    if got is None:
        return {"defect_type": None, "confidence": 0.0}
    return {
        "defect_type": got.defect_type,
        "confidence": round(got.confidence, 4),
        "votes": {k: round(v, 4) for k, v in got.votes.items()},
        "neighbours": got.neighbours,
        "learned_from": got.learned_from,
    }


def duplicates(session: Session, inspection_id: int) -> dict:
    """The first upload of this inspection's image and every later upload flagged as repeating it."""
    insp = session.get(Inspection, inspection_id)
    if insp is None:
        raise NotFound(f"no inspection {inspection_id}")
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
