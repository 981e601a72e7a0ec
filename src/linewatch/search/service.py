"""What the inspection service calls: the index its settings select, and search grouped per inspection."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from linewatch.search.index import Filter, Hit, SearchIndexError, VectorIndex


def index_from_settings(settings, dim: int | None = None, name: str = "regions") -> VectorIndex:
    """The search index the settings select: faiss HNSW under ``settings.search_dir / name`` (default), or the
    Qdrant server at ``settings.qdrant_url`` (``search_backend = "qdrant"``; collection
    ``settings.qdrant_collection + "-" + name``). ``dim`` creates the index when it does not exist yet."""
    if settings.search_backend == "qdrant":
        from linewatch.search.qdrant_index import QdrantIndex

        if not settings.qdrant_url:
            raise SearchIndexError("search_backend is qdrant but LINEWATCH_QDRANT_URL is not set (http://host:6333)")
        return QdrantIndex(
            dim,
            url=settings.qdrant_url,
            api_key=settings.qdrant_api_key,
            collection=f"{settings.qdrant_collection}-{name}",
        )
    from linewatch.search.faiss_index import FaissIndex

    return FaissIndex(settings.search_dir / name, dim)


@dataclass(frozen=True)
class GroupHit:
    """One neighbour at the group level (an inspection, an image): its best point."""

    key: object  # the group's payload value (e.g. the inspection id)
    similarity: float  # the best similarity of any query vector to any of the group's points
    hit: Hit  # that best point (its payload has the region box, thumbnail URL, ...)


def search_grouped(
    index: VectorIndex,
    vectors: np.ndarray,
    k: int = 5,
    where: Filter | None = None,
    group_key: str = "inspection_id",
    max_fetch: int = 4096,
) -> list[GroupHit]:
    """The ``k`` groups (by payload ``group_key``) nearest to any of ``vectors``, best first: region-level
    search where the answer is inspections, not regions (one defect vector per query region, several points
    per stored inspection). Fetches more points per vector until ``k`` distinct groups are found."""
    vectors = np.asarray(vectors, dtype=np.float32).reshape(-1, index.dim)
    if len(vectors) == 0:
        return []
    total = index.count(where)
    fetch = min(max(4 * k, 16), max(total, 1))
    while True:
        best: dict[object, GroupHit] = {}
        for hits in index.query_batch(vectors, fetch, where):
            for h in hits:
                g = h.payload.get(group_key, h.id)
                if g not in best or h.similarity > best[g].similarity:
                    best[g] = GroupHit(g, h.similarity, h)
        if len(best) >= k or fetch >= min(total, max_fetch):
            return sorted(best.values(), key=lambda gh: -gh.similarity)[:k]
        fetch = min(fetch * 4, total, max_fetch)
