"""Defect search: find earlier inspections whose defects look like this one's.

Vectors come from the scoring pass (``Prediction.embeddings``, see ``linewatch.vision.embeddings``); an index
holds them with a payload per point (``linewatch.search.index``):

    from linewatch.search import FaissIndex, Filter, point_id, search_grouped

    index = FaissIndex(settings.search_dir / "regions", dim=pred.embeddings.dim)   # opens or creates
    vecs = pred.embeddings.defects()            # one per region (or the anomaly peak when there is none)
    index.add([point_id(insp.id, i) for i in range(len(vecs))], vecs, [{"inspection_id": insp.id, ...}, ...])
    index.save()                                # atomic; reopen with FaissIndex(path)
    hits = search_grouped(index, vecs, k=5, where=Filter(station="press-3"), group_key="inspection_id")

``index_from_settings(settings, dim)`` picks faiss (default) or Qdrant (``LINEWATCH_SEARCH_BACKEND=qdrant``).
"""

from importlib import import_module

_EXPORTS = {
    "Filter": "linewatch.search.index",
    "Hit": "linewatch.search.index",
    "VectorIndex": "linewatch.search.index",
    "SearchIndexError": "linewatch.search.index",
    "point_id": "linewatch.search.index",
    "split_point_id": "linewatch.search.index",
    "FaissIndex": "linewatch.search.faiss_index",
    "QdrantIndex": "linewatch.search.qdrant_index",
    "index_from_settings": "linewatch.search.service",
    "search_grouped": "linewatch.search.service",
    "GroupHit": "linewatch.search.service",
    "index_folder": "linewatch.search.offline",
    "query_images": "linewatch.search.offline",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'linewatch.search' has no attribute {name!r}")
