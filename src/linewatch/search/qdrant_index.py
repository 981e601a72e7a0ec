"""The production index: a Qdrant collection (``pip install 'linewatch[search]'``).

``QdrantIndex(url="http://qdrant:6333", api_key=...)`` talks to a Qdrant server (its own HNSW, replication,
snapshots); ``QdrantIndex(path=DIR)`` is qdrant-client's local mode (a brute-force store in a folder, for tests
and small installations: about 400 ms a query at 100k points) and ``QdrantIndex(location=":memory:")`` keeps
nothing. Points carry the payload as it is given; the filterable keys get payload indexes on a server.
A server persists every write itself, so ``save()`` has nothing to do there.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from linewatch.search.index import (
    FILTER_KEYS,
    TIME_KEY,
    Filter,
    Hit,
    SearchIndexError,
    VectorIndex,
    check_ids,
    normalize,
)

DEFAULT_COLLECTION = "linewatch"
UPSERT_BATCH = 512


def _client_module():
    try:
        import qdrant_client
        from qdrant_client import models
    except ImportError:
        raise SearchIndexError("the Qdrant index needs qdrant-client: pip install 'linewatch[search]'") from None
    return qdrant_client, models


class QdrantIndex(VectorIndex):
    def __init__(
        self,
        dim: int | None = None,
        url: str | None = None,
        path: str | Path | None = None,
        location: str | None = None,
        api_key: str | None = None,
        collection: str = DEFAULT_COLLECTION,
        timeout: float = 10.0,
    ):
        qdrant_client, self.models = _client_module()
        if sum(x is not None for x in (url, path, location)) != 1:
            raise SearchIndexError("give exactly one of url (a Qdrant server), path (local mode) or location")
        self.collection = collection
        self.remote = url is not None
        try:
            if url is not None:
                self.client = qdrant_client.QdrantClient(url=url, api_key=api_key, timeout=int(timeout))
            elif path is not None:
                Path(path).mkdir(parents=True, exist_ok=True)
                self.client = qdrant_client.QdrantClient(path=str(path))
            else:
                self.client = qdrant_client.QdrantClient(location=location)
            exists = self.client.collection_exists(collection)
        except SearchIndexError:
            raise
        except Exception as e:  # connection refused, a locked local folder, ...
            where = url or path or location
            raise SearchIndexError(
                f"cannot open the Qdrant index at {where}: {' '.join(str(e).split())[:200]}"
            ) from None
        if exists:
            info = self.client.get_collection(collection)
            size = info.config.params.vectors.size
            if dim is not None and dim != size:
                raise SearchIndexError(f"Qdrant collection {collection!r} holds {size}-dimensional vectors, not {dim}")
            self.dim = int(size)
            return
        if dim is None:
            raise SearchIndexError(f"no Qdrant collection {collection!r} (give dim to create it)")
        self.dim = int(dim)
        m = self.models
        self.client.create_collection(
            collection, vectors_config=m.VectorParams(size=self.dim, distance=m.Distance.COSINE)
        )
        if self.remote:  # payload indexes make filtered HNSW search exact and fast on a server
            for key in FILTER_KEYS:
                self.client.create_payload_index(collection, key, m.PayloadSchemaType.KEYWORD)
            self.client.create_payload_index(collection, TIME_KEY, m.PayloadSchemaType.FLOAT)

    def _filter(self, where: Filter | None):
        if where is None or where.empty:
            return None
        m = self.models
        must = []
        for key in FILTER_KEYS:
            want = where.values(key)
            if want is not None:
                must.append(m.FieldCondition(key=key, match=m.MatchAny(any=list(want))))
        lo, hi = where.time_range
        if lo is not None or hi is not None:
            must.append(m.FieldCondition(key=TIME_KEY, range=m.Range(gte=lo, lt=hi)))
        return m.Filter(must=must)

    def add(self, ids, vectors, payloads: Sequence[dict] | None = None) -> None:
        v = normalize(vectors, self.dim)
        ids = check_ids(ids, len(v))
        payloads = list(payloads) if payloads is not None else [{} for _ in ids]
        if len(payloads) != len(ids):
            raise SearchIndexError(f"{len(payloads)} payloads for {len(ids)} vectors")
        for s in range(0, len(ids), UPSERT_BATCH):
            batch = self.models.Batch(
                ids=ids[s : s + UPSERT_BATCH].tolist(),
                vectors=v[s : s + UPSERT_BATCH].tolist(),
                payloads=[dict(p) for p in payloads[s : s + UPSERT_BATCH]],
            )
            self.client.upsert(self.collection, points=batch, wait=True)

    def remove(self, ids) -> int:
        ids = [int(i) for i in np.asarray(ids, dtype=np.int64).ravel()]
        if not ids:
            return 0
        present = len(self.client.retrieve(self.collection, ids, with_payload=False))
        self.client.delete(self.collection, points_selector=self.models.PointIdsList(points=ids), wait=True)
        return present

    def query_batch(self, vectors, k: int = 10, where: Filter | None = None) -> list[list[Hit]]:
        q = normalize(vectors, self.dim)
        if int(k) < 1:
            raise SearchIndexError("k must be at least 1")
        flt = self._filter(where)
        out = []
        for row in q:
            res = self.client.query_points(
                self.collection, query=row.tolist(), query_filter=flt, limit=int(k), with_payload=True
            )
            out.append([Hit(int(p.id), float(p.score), dict(p.payload or {})) for p in res.points])
        return out

    def count(self, where: Filter | None = None) -> int:
        return int(self.client.count(self.collection, count_filter=self._filter(where), exact=True).count)

    def get(self, ids) -> list[dict | None]:
        ids = [int(i) for i in ids]
        found = {int(r.id): dict(r.payload or {}) for r in self.client.retrieve(self.collection, ids)}
        return [found.get(i) for i in ids]

    def save(self) -> None:
        """Nothing to do: Qdrant persists every acknowledged write (local mode writes its folder on each call)."""
        return None

    def close(self) -> None:
        self.client.close()
