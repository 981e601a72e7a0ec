"""The embedded index: faiss HNSW (inner product on unit vectors) in a directory, written atomically.

Layout of the directory (all replaced together: written to a staging directory, then renamed into place)::

    meta.json       dimension, HNSW parameters, vocabularies of the filter columns, format version
    hnsw.faiss      the faiss IndexHNSWFlat; its row numbers are this index's internal rows
    rows.npz        per row: id, alive, station/verdict/defect_type codes, time
    payloads.jsonl  per row: the payload (JSON)

Ids are the caller's integers, mapped to faiss rows here. HNSW cannot delete, so a removed (or replaced) point
becomes a dead row that searches skip through a faiss ``IDSelectorBitmap``; when dead rows pass a quarter of all
rows the index is rebuilt from the live vectors. Filters are evaluated as a boolean mask over the row columns:

- when few rows match (``exact_limit``), an exact inner product over exactly those rows (recall 1);
- otherwise HNSW searched with the mask as its selector and ``efSearch`` raised to ``FILTER_EF`` / selectivity,
  so the search still meets about ``FILTER_EF`` matching candidates.

Unfiltered, ``efSearch`` is ``auto_ef(n)``: it grows with the index so that recall@10 stays >= 0.95 at 1M.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from linewatch.core.modelfiles import replace_dir
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

FORMAT = 1
META, GRAPH, ROWS, PAYLOADS = "meta.json", "hnsw.faiss", "rows.npz", "payloads.jsonl"
# HNSW defaults: chosen for 1M vectors at p50 <= 5 ms and recall@10 >= 0.95 on 2 cores (docs/benchmarks.md)
M = 32
EF_CONSTRUCTION = 80
EF_SEARCH = None  # None: grows with the index, auto_ef(n)
FILTER_EF = 128  # a filtered search visits at least FILTER_EF matching candidates: ef >= FILTER_EF / selectivity
EXACT_LIMIT = 8192
COMPACT_FRACTION = 0.25


def _faiss():
    try:
        import faiss
    except ImportError:
        raise SearchIndexError("the faiss index needs faiss-cpu: pip install 'linewatch[vision]'") from None
    return faiss


def auto_ef(n: int) -> int:
    """efSearch for an index of n points: 128 up to 100k (recall@10 0.98 there), then growing with sqrt(n) (about
    400 at 1M, where 256 gives 0.94); at most 1024."""
    return int(min(1024, max(128, round(128 * (n / 100_000) ** 0.5))))


class _Rows:
    """Growable per-row columns."""

    def __init__(self, n: int = 0):
        self.ids = np.zeros(n, np.int64)
        self.alive = np.zeros(n, bool)
        self.codes = {k: np.zeros(n, np.int32) for k in FILTER_KEYS}
        self.time = np.full(n, np.nan)
        self.n = n

    def reserve(self, extra: int) -> None:
        need = self.n + extra
        if need <= len(self.ids):
            return
        cap = max(need, 2 * len(self.ids), 1024)

        def grow(a, fill):
            b = np.full(cap, fill, dtype=a.dtype)
            b[: self.n] = a[: self.n]
            return b

        self.ids = grow(self.ids, 0)
        self.alive = grow(self.alive, False)
        self.codes = {k: grow(v, 0) for k, v in self.codes.items()}
        self.time = grow(self.time, np.nan)


class FaissIndex(VectorIndex):
    """``FaissIndex(path, dim)`` opens the index at ``path`` or starts an empty one (written by ``save()``);
    ``replace=True`` starts empty even when one is there (``save()`` then replaces it)."""

    def __init__(
        self,
        path: str | Path,
        dim: int | None = None,
        m: int = M,
        ef_construction: int = EF_CONSTRUCTION,
        ef_search: int | None = EF_SEARCH,
        exact_limit: int = EXACT_LIMIT,
        replace: bool = False,
    ):
        self.faiss = _faiss()
        self.path = Path(path)
        self.ef_search = None if ef_search is None else int(ef_search)
        self.exact_limit = int(exact_limit)
        if (self.path / META).is_file() and not replace:
            self._load()
            if dim is not None and dim != self.dim:
                raise SearchIndexError(f"{self.path} holds {self.dim}-dimensional vectors, not {dim}")
            return
        ours = (self.path / META).is_file()
        if self.path.exists() and not ours and (not self.path.is_dir() or any(self.path.iterdir())):
            raise SearchIndexError(f"{self.path} exists and is not a linewatch search index")
        if dim is None:
            raise SearchIndexError(f"no search index at {self.path}")
        self.dim = int(dim)
        self.m, self.ef_construction = int(m), int(ef_construction)
        self._index = self._new_graph()
        self._rows = _Rows()
        self._payloads: list[dict | None] = []
        self._vocab: dict[str, list[str]] = {k: [] for k in FILTER_KEYS}  # code c -> value vocab[c - 1]; 0 = None
        self._row_of: dict[int, int] = {}
        self.info: dict = {}  # the owner's JSON-able notes, saved with the index (e.g. which model embedded it)
        self._masks: dict = {}

    # -- state ---------------------------------------------------------------------------------------
    def _new_graph(self):
        index = self.faiss.IndexHNSWFlat(self.dim, self.m, self.faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = self.ef_construction
        return index

    def _load(self) -> None:
        try:
            meta = json.loads((self.path / META).read_text())
            if meta.get("format") != FORMAT:
                raise SearchIndexError(
                    f"{self.path} was written by an incompatible version (format {meta.get('format')})"
                )
            self.dim, self.m, self.ef_construction = int(meta["dim"]), int(meta["m"]), int(meta["ef_construction"])
            self._vocab = {k: list(meta["vocab"][k]) for k in FILTER_KEYS}
            self.info = dict(meta.get("info") or {})
            self._index = self.faiss.read_index(str(self.path / GRAPH))
            with np.load(self.path / ROWS) as z:
                n = len(z["ids"])
                self._rows = _Rows(n)
                self._rows.ids[:] = z["ids"]
                self._rows.alive[:] = z["alive"]
                self._rows.time[:] = z["time"]
                for k in FILTER_KEYS:
                    self._rows.codes[k][:] = z[k]
            with open(self.path / PAYLOADS, encoding="utf-8") as f:
                self._payloads = [json.loads(line) for line in f]
        except SearchIndexError:
            raise
        except (OSError, ValueError, KeyError, RuntimeError, TypeError, AttributeError) as e:  # a meta.json edited
            raise SearchIndexError(f"{self.path} is not a readable search index: {e}") from None
        if self._index.ntotal != n or len(self._payloads) != n or self._index.d != self.dim:
            raise SearchIndexError(f"{self.path} is inconsistent (rows, graph and payloads disagree): rebuild it")
        alive = np.flatnonzero(self._rows.alive)
        self._row_of = dict(zip(self._rows.ids[alive].tolist(), alive.tolist(), strict=True))
        self._masks = {}

    def _code(self, key: str, value) -> int:
        if value is None:
            return 0
        vocab = self._vocab[key]
        value = str(value)
        try:
            return vocab.index(value) + 1
        except ValueError:
            vocab.append(value)
            return len(vocab)

    # -- the interface -------------------------------------------------------------------------------
    def add(self, ids, vectors, payloads: Sequence[dict] | None = None) -> None:
        v = normalize(vectors, self.dim)
        ids = check_ids(ids, len(v))
        payloads = list(payloads) if payloads is not None else [{} for _ in ids]
        if len(payloads) != len(ids):
            raise SearchIndexError(f"{len(payloads)} payloads for {len(ids)} vectors")
        self.remove(ids)  # replacing: the old rows die
        self._masks = {}
        rows = self._rows
        rows.reserve(len(ids))
        start = rows.n
        end = start + len(ids)
        rows.ids[start:end] = ids
        rows.alive[start:end] = True
        for key in FILTER_KEYS:
            rows.codes[key][start:end] = [self._code(key, p.get(key)) for p in payloads]
        rows.time[start:end] = [np.nan if p.get(TIME_KEY) is None else float(p[TIME_KEY]) for p in payloads]
        self._index.add(v)
        rows.n = end
        self._payloads.extend(dict(p) for p in payloads)
        self._row_of.update(zip(ids.tolist(), range(start, end), strict=True))

    def remove(self, ids) -> int:
        rows = [self._row_of.pop(int(i)) for i in np.asarray(ids, dtype=np.int64).ravel() if int(i) in self._row_of]
        if rows:
            self._masks = {}
            self._rows.alive[rows] = False
            for r in rows:
                self._payloads[r] = None
            dead = self._rows.n - len(self._row_of)
            if dead > max(1024, COMPACT_FRACTION * self._rows.n):
                self._compact()
        return len(rows)

    def _compact(self) -> None:
        """Rebuild the graph from the live rows only."""
        live = np.flatnonzero(self._rows.alive[: self._rows.n])
        vecs = self._stored()[live].copy()
        old, payloads = self._rows, self._payloads
        self._index = self._new_graph()
        self._rows = _Rows()
        self._rows.reserve(len(live))
        self._rows.n = len(live)
        self._rows.ids[: len(live)] = old.ids[live]
        self._rows.alive[: len(live)] = True
        self._rows.time[: len(live)] = old.time[live]
        for k in FILTER_KEYS:
            self._rows.codes[k][: len(live)] = old.codes[k][live]
        if len(live):
            self._index.add(np.ascontiguousarray(vecs))
        self._payloads = [payloads[r] for r in live]
        self._row_of = dict(zip(self._rows.ids[: len(live)].tolist(), range(len(live)), strict=True))

    def _selection(self, where: Filter | None) -> tuple[np.ndarray | None, int, np.ndarray | None]:
        """(mask of the rows a query may return or None for all, how many, the mask as a faiss bitmap); the last
        few filters' masks are kept until the index changes (building one is O(rows))."""
        key = None if where is None or where.empty else (*(where.values(k) for k in FILTER_KEYS), where.time_range)
        hit = self._masks.get(key)
        if hit is None:
            mask = self._mask(where)
            if mask is None:
                hit = (None, self._rows.n, None)
            else:
                hit = (mask, int(mask.sum()), np.packbits(mask, bitorder="little"))
            if len(self._masks) >= 16:
                self._masks.pop(next(iter(self._masks)))
            self._masks[key] = hit
        return hit

    def _mask(self, where: Filter | None) -> np.ndarray | None:
        """Rows a query may return, or None for all rows (no filter, nothing dead)."""
        n = self._rows.n
        full = where is None or where.empty
        if full and len(self._row_of) == n:
            return None
        mask = self._rows.alive[:n].copy()
        if full:
            return mask
        for key in FILTER_KEYS:
            want = where.values(key)
            if want is not None:
                codes = [self._vocab[key].index(w) + 1 for w in want if w in self._vocab[key]]
                mask &= np.isin(self._rows.codes[key][:n], codes)
        lo, hi = where.time_range
        t = self._rows.time[:n]
        with np.errstate(invalid="ignore"):
            if lo is not None:
                mask &= t >= lo
            if hi is not None:
                mask &= t < hi
        return mask

    def query_batch(self, vectors, k: int = 10, where: Filter | None = None) -> list[list[Hit]]:
        q = normalize(vectors, self.dim)
        k = int(k)
        if k < 1:
            raise SearchIndexError("k must be at least 1")
        mask, allowed, bitmap = self._selection(where)
        if allowed == 0:
            return [[] for _ in range(len(q))]
        kk = min(k, allowed)
        if mask is not None and allowed <= self.exact_limit:
            rows = np.flatnonzero(mask)
            sims = q @ self._stored()[rows].T  # (Q, allowed)
            top = (
                np.argpartition(-sims, kk - 1, axis=1)[:, :kk]
                if kk < allowed
                else np.tile(np.arange(allowed), (len(q), 1))
            )
            order = np.take_along_axis(sims, top, 1).argsort(axis=1)[:, ::-1]
            top = np.take_along_axis(top, order, 1)
            return [self._hits(rows[t], sims[i, t]) for i, t in enumerate(top)]
        faiss = self.faiss
        params = faiss.SearchParametersHNSW()
        ef = max(self.ef_search or auto_ef(self._rows.n), kk)
        if mask is not None:  # the bitmap stays referenced (in the cache) while faiss reads it
            params.sel = faiss.IDSelectorBitmap(len(mask), faiss.swig_ptr(bitmap))
            ef = int(min(max(ef, FILTER_EF * self._rows.n / allowed), 4096))
        params.efSearch = ef
        sims, labels = self._index.search(q, kk, params=params)
        return [self._hits(lab[lab >= 0], s[lab >= 0]) for lab, s in zip(labels, sims, strict=True)]

    def _stored(self) -> np.ndarray:
        """The stored vectors, (rows, dim): a view of the graph's flat storage (no copy; valid until it changes)."""
        storage = self.faiss.downcast_index(self._index.storage)
        n = self._index.ntotal
        if n == 0:
            return np.zeros((0, self.dim), np.float32)
        return self.faiss.rev_swig_ptr(storage.get_xb(), n * self.dim).reshape(n, self.dim)

    def _hits(self, rows: np.ndarray, sims: np.ndarray) -> list[Hit]:
        ids = self._rows.ids
        return [
            Hit(int(ids[r]), float(s), self._payloads[r]) for r, s in zip(rows.tolist(), sims.tolist(), strict=True)
        ]

    def count(self, where: Filter | None = None) -> int:
        return self._selection(where)[1]

    def get(self, ids) -> list[dict | None]:
        return [self._payloads[self._row_of[int(i)]] if int(i) in self._row_of else None for i in ids]

    def vectors(self, ids) -> np.ndarray:
        """The stored (normalised) vectors of these ids, (N, dim); unknown ids are an error."""
        missing = [int(i) for i in ids if int(i) not in self._row_of]
        if missing:
            raise SearchIndexError(f"no point with id {missing[0]}")
        rows = np.array([self._row_of[int(i)] for i in ids], dtype=np.int64)
        return self._stored()[rows].copy()

    def ids(self) -> np.ndarray:
        """The ids of all points."""
        return np.fromiter(self._row_of, dtype=np.int64, count=len(self._row_of))

    def memory_bytes(self) -> int:
        """Bytes held in memory for the points: vectors, graph links and row columns (payloads not counted)."""
        idx = self._index
        links = self.faiss.downcast_index(idx).hnsw
        graph = links.neighbors.size() * 4 + links.offsets.size() * 8 + links.levels.size() * 4
        rows = self._rows
        cols = rows.ids.nbytes + rows.alive.nbytes + rows.time.nbytes + sum(c.nbytes for c in rows.codes.values())
        return int(idx.ntotal * self.dim * 4 + graph + cols)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=self.path.parent, prefix=f".{self.path.name}.tmp-"))
        try:
            n = self._rows.n
            self.faiss.write_index(self._index, str(staging / GRAPH))
            np.savez(
                staging / ROWS,
                ids=self._rows.ids[:n],
                alive=self._rows.alive[:n],
                time=self._rows.time[:n],
                **{k: self._rows.codes[k][:n] for k in FILTER_KEYS},
            )
            with open(staging / PAYLOADS, "w", encoding="utf-8") as f:
                for p in self._payloads:
                    f.write(json.dumps(p) + "\n")
            meta = {
                "format": FORMAT,
                "kind": "faiss-hnsw",
                "dim": self.dim,
                "m": self.m,
                "ef_construction": self.ef_construction,
                "vocab": self._vocab,
                "count": len(self._row_of),
                "info": self.info,
            }
            (staging / META).write_text(json.dumps(meta))
            for f in staging.iterdir():  # durable before the rename makes them visible
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
            # a file or other files in the way were refused when the index was opened
            replace_dir(staging, self.path, lambda d: (d / META).is_file(), "index")
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def close(self) -> None:
        pass
