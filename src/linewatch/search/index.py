"""The vector index of defect search: one interface, two implementations (faiss HNSW on disk, Qdrant).

Vectors are L2-normalised on the way in, so similarity is cosine similarity (inner product), in [-1, 1].
Every point has an integer id (>= 0; the caller's, e.g. from ``point_id(inspection_id, region)``) and a payload:
a JSON-able dict. Four payload keys are filterable::

    station       str     the station that inspected the part
    verdict       str     "good" / "anomalous"
    defect_type   str     the reviewed defect type (None until reviewed)
    time          float   unix seconds of the inspection

Any other keys (path, label, inspection_id, region box, thumbnail URL, ...) are stored and returned as they are.
The database stays the source of truth: an index can always be rebuilt from it.
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from linewatch.errors import LinewatchError

FILTER_KEYS = ("station", "verdict", "defect_type")
TIME_KEY = "time"
REGION_BITS = 10  # point_id: up to 1023 regions per inspection


class SearchIndexError(LinewatchError):
    """An index that cannot be opened, read or written, or a request it cannot serve."""


def point_id(inspection_id: int, region: int | None = None) -> int:
    """A point id for an inspection's image embedding (``region=None``) or its region ``region`` (0-based):
    ``inspection_id * 1024 + (0 for the image, region + 1 for a region)``."""
    slot = 0 if region is None else int(region) + 1
    if not 0 <= slot < (1 << REGION_BITS):
        raise ValueError(f"region index {region} out of range")
    return (int(inspection_id) << REGION_BITS) | slot


def split_point_id(pid: int) -> tuple[int, int | None]:
    """(inspection id, region index or None for the image) of a ``point_id``."""
    slot = int(pid) & ((1 << REGION_BITS) - 1)
    return int(pid) >> REGION_BITS, (None if slot == 0 else slot - 1)


def _seconds(t: float | dt.datetime | None) -> float | None:
    if t is None:
        return None
    if isinstance(t, dt.datetime):
        if t.tzinfo is None:
            t = t.replace(tzinfo=dt.UTC)  # the service stores UTC
        return t.timestamp()
    return float(t)


def _values(v: str | Sequence[str] | None) -> tuple[str, ...] | None:
    if v is None:
        return None
    return (v,) if isinstance(v, str) else tuple(v)


@dataclass(frozen=True)
class Filter:
    """Which points a query may return. Each field is optional; a sequence means "any of these". The time range
    is ``since <= time < until`` (unix seconds, or datetimes; naive ones are UTC)."""

    station: str | Sequence[str] | None = None
    verdict: str | Sequence[str] | None = None
    defect_type: str | Sequence[str] | None = None
    since: float | dt.datetime | None = None
    until: float | dt.datetime | None = None

    def values(self, key: str) -> tuple[str, ...] | None:
        return _values(getattr(self, key))

    @property
    def time_range(self) -> tuple[float | None, float | None]:
        return _seconds(self.since), _seconds(self.until)

    @property
    def empty(self) -> bool:
        return all(self.values(k) is None for k in FILTER_KEYS) and self.time_range == (None, None)

    def matches(self, payload: dict) -> bool:
        """The filter's meaning, on one payload (the implementations must agree with it)."""
        for key in FILTER_KEYS:
            want = self.values(key)
            if want is not None and payload.get(key) not in want:
                return False
        lo, hi = self.time_range
        t = payload.get(TIME_KEY)
        if (lo is not None or hi is not None) and t is None:
            return False
        return (lo is None or t >= lo) and (hi is None or t < hi)


@dataclass(frozen=True)
class Hit:
    id: int
    similarity: float  # cosine similarity, higher is nearer
    payload: dict


def normalize(vectors: np.ndarray, dim: int | None = None) -> np.ndarray:
    """(N, D) float32 rows of unit length (a 1-D vector is one row)."""
    v = np.asarray(vectors, dtype=np.float32)
    if v.ndim == 1:
        v = v[None]
    if v.ndim != 2 or (dim is not None and v.shape[1] != dim):
        raise SearchIndexError(f"vectors of shape {tuple(v.shape)} do not fit an index of dimension {dim}")
    if not np.isfinite(v).all():
        raise SearchIndexError("vectors contain NaN or infinity")
    n = np.linalg.norm(v, axis=1, keepdims=True)
    return np.ascontiguousarray(v / np.maximum(n, 1e-12))


def check_ids(ids: Iterable[int], n: int | None = None) -> np.ndarray:
    arr = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids, dtype=np.int64).ravel()
    if n is not None and len(arr) != n:
        raise SearchIndexError(f"{len(arr)} ids for {n} vectors")
    if (arr < 0).any():
        raise SearchIndexError("ids must be >= 0")
    if len(np.unique(arr)) != len(arr):
        raise SearchIndexError("ids repeat within one add")
    return arr


class VectorIndex(ABC):
    """Add, remove, query, persist. Adding an id that is already there replaces its vector and payload."""

    dim: int

    @abstractmethod
    def add(self, ids: Sequence[int] | np.ndarray, vectors: np.ndarray, payloads: Sequence[dict] | None = None) -> None:
        """Insert (or replace) points: ``ids`` (N,), ``vectors`` (N, dim), ``payloads`` N dicts."""

    @abstractmethod
    def remove(self, ids: Sequence[int] | np.ndarray) -> int:
        """Drop points by id (unknown ids are ignored); the number dropped."""

    @abstractmethod
    def query_batch(self, vectors: np.ndarray, k: int = 10, where: Filter | None = None) -> list[list[Hit]]:
        """The ``k`` nearest points matching ``where`` to each row of ``vectors``, nearest first."""

    def query(self, vector: np.ndarray, k: int = 10, where: Filter | None = None) -> list[Hit]:
        """The ``k`` nearest points matching ``where`` to one vector, nearest first."""
        return self.query_batch(np.asarray(vector, dtype=np.float32).reshape(1, -1), k, where)[0]

    @abstractmethod
    def count(self, where: Filter | None = None) -> int:
        """How many points (matching ``where``) the index holds."""

    @abstractmethod
    def get(self, ids: Sequence[int]) -> list[dict | None]:
        """The payloads of these ids (None for unknown ones)."""

    @abstractmethod
    def save(self) -> None:
        """Make everything added or removed so far durable (atomically: a crash leaves the previous state)."""

    def close(self) -> None:
        """Release the index's resources (an embedded index has none; saving stays explicit)."""
        return None

    def __len__(self) -> int:
        return self.count()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
