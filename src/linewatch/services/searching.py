"""Defect search inside the service: vectors stored with each inspection, the search index kept in step with the
database, similar inspections, label suggestions, and duplicate uploads.

The database is the source of truth. Each inspection's vectors (``InspectionVectors``, from its scoring pass) are
written in the same transaction as the inspection; the index (faiss HNSW under the data dir, or Qdrant) is a copy
that is updated after the commit and saved in the background. At start the service adds whatever the index lacks
(``reconcile``), so a crash between a commit and an index save never leaves an inspection out of search; ``linewatch
search rebuild`` builds it from nothing. One index per vector *space* (method, backbone, image size, dimension):
vectors of different backbones cannot be compared.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from linewatch.errors import LinewatchError
from linewatch.search.calibration import MIN_OUTCOMES, Calibration, fit
from linewatch.search.index import Filter, SearchIndexError, VectorIndex, point_id
from linewatch.search.metric import ReviewMetric
from linewatch.search.repeats import SAME_PHOTO_RMS, Fingerprint, differences
from linewatch.store.tables import Inspection, InspectionVectors, ModelVersion, Station, as_utc

log = logging.getLogger(__name__)

SAVE_EVERY_S = 10.0  # a dirty embedded index is saved this often (and on stop)
RECONCILE_BATCH = 1000


def space_of(model: ModelVersion, defect_dim: int) -> str:
    """The name of the space an inspection's vectors live in: those of one method, backbone and size."""
    return f"{model.method}-{model.backbone}-{model.image_size}-d{defect_dim}"


def _index_name(space: str) -> str:
    return "defects-" + re.sub(r"[^A-Za-z0-9_.-]", "_", space)


def vectors_row(model: ModelVersion, embeddings) -> InspectionVectors | None:
    """The vectors row of an image ``model`` scored (not added to a session; its ``inspection_id`` is the
    caller's to set); None when the model gives no vectors."""
    if embeddings is None:
        return None
    defects = np.ascontiguousarray(embeddings.defects(), dtype=np.float32)
    return InspectionVectors(
        space=space_of(model, defects.shape[1]),
        image=np.ascontiguousarray(embeddings.image, dtype=np.float32).tobytes(),
        defects=defects.tobytes(),
        defect_dim=int(defects.shape[1]),
        from_regions=bool(len(embeddings.regions)),
    )


def defect_matrix(row: InspectionVectors) -> np.ndarray:
    return np.frombuffer(row.defects, dtype=np.float32).reshape(-1, row.defect_dim)


def _point_ids(inspection_id: int, row: InspectionVectors) -> list[int]:
    if not row.from_regions:
        return [point_id(inspection_id, None)]
    return [point_id(inspection_id, i) for i in range(len(defect_matrix(row)))]


def region_box(regions: list[dict] | None, i: int | None) -> list[int] | None:
    """Region ``i``'s box as x, y, width, height (None for no region, or one the inspection does not have)."""
    if i is None or not regions or i >= len(regions):
        return None
    r = regions[i]
    return [int(r["x"]), int(r["y"]), int(r["width"]), int(r["height"])]


def _payloads(insp: Inspection, station: str, row: InspectionVectors) -> list[dict]:
    base = {
        "inspection_id": insp.id,
        "station": station,
        "verdict": insp.review_verdict or insp.verdict,  # a person's verdict, once reviewed, is the one that counts
        "defect_type": insp.defect_type,
        "time": as_utc(insp.created_at).timestamp(),
    }
    if not row.from_regions:
        return [{**base, "region": None}]
    n = len(defect_matrix(row))
    return [{**base, "region": i, "box": region_box(insp.regions, i)} for i in range(n)]


@dataclass
class Entry:
    """What the index needs of one inspection."""

    inspection: Inspection  # its latest review's defect type goes into the payload
    station: str
    vectors: InspectionVectors


class SearchHub:
    """The service's search indexes, one per vector space, opened when first needed; thread-safe."""

    def __init__(self, settings, sessions: sessionmaker[Session], open_index: Callable | None = None):
        from linewatch.search.service import index_from_settings

        self.settings = settings
        self.sessions = sessions
        self._open_index = open_index or (lambda dim, name: index_from_settings(settings, dim, name))
        self._indexes: dict[str, VectorIndex] = {}
        self._dirty: set[str] = set()
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.failed: set[int] = set()  # inspection ids whose index update failed; retried in the background
        self.started = False
        self._vectors_seen = -1  # rows of inspection_vectors when last reconciled
        self._held: contextlib.ExitStack | None = None  # the embedded index's folder lock, while started
        self.calibrations: dict[tuple[str, int], _Fitted] = {}  # suggestion calibration maps, by space and k
        self.learned: dict[tuple[int, str, int], _Learned] = {}  # review metrics, by station, space and k

    # --- indexes ---

    def index(self, space: str, dim: int) -> VectorIndex:
        with self._lock:
            idx = self._indexes.get(space)
            if idx is None:
                idx = self._open_index(dim, _index_name(space))
                self._indexes[space] = idx
            return idx

    def add(self, entries: Sequence[Entry], new: bool = False) -> None:
        """Put these inspections' vectors in the index (replacing what it had for them); ``new``: their vectors
        rows were just written by this process. An index that cannot be written is logged and retried later: the
        database already holds everything."""
        if new:
            self._vectors_seen += len(entries)
        by_space: dict[str, list[Entry]] = {}
        for e in entries:
            if e.inspection.duplicate_of is not None:  # a repeat: its original stands for it in search
                continue
            by_space.setdefault(e.vectors.space, []).append(e)
        for space, group in by_space.items():
            ids, vecs, payloads = [], [], []
            for e in group:
                ids += _point_ids(e.inspection.id, e.vectors)
                vecs.append(defect_matrix(e.vectors))
                payloads += _payloads(e.inspection, e.station, e.vectors)
            try:
                with self._lock:
                    self.index(space, group[0].vectors.defect_dim).add(ids, np.concatenate(vecs), payloads)
                    self._dirty.add(space)
                    self.failed.difference_update(e.inspection.id for e in group)
            except (LinewatchError, OSError) as exc:
                log.warning("search index %s: cannot add %d inspections (retried later): %s", space, len(group), exc)
                self.failed.update(e.inspection.id for e in group)

    def remove(self, rows: Iterable[InspectionVectors]) -> None:
        """Take these inspections' points out of the index (call with their vectors rows, read before deleting)."""
        for row in rows:
            try:
                with self._lock:
                    self.index(row.space, row.defect_dim).remove(_point_ids(row.inspection_id, row))
                    self._dirty.add(row.space)
            except (LinewatchError, OSError) as exc:  # a stale point is dropped when a query meets it
                log.warning("search index %s: cannot remove inspection %s: %s", row.space, row.inspection_id, exc)

    def entries(self, session: Session, inspection_ids: Sequence[int]) -> list[Entry]:
        """Entries of these inspections from the database (those that have vectors)."""
        if not inspection_ids:
            return []
        rows = session.execute(
            select(Inspection, Station.name, InspectionVectors)
            .join(Station, Station.id == Inspection.station_id)
            .join(InspectionVectors, InspectionVectors.inspection_id == Inspection.id)
            .where(Inspection.id.in_(list(inspection_ids)), Inspection.duplicate_of.is_(None))
        ).all()
        return [Entry(insp, name, vec) for insp, name, vec in rows]

    def refresh(self, inspection_id: int) -> None:
        """Re-index one inspection from the database (after a review changed its verdict or defect type)."""
        with self.sessions() as s:
            self.add(self.entries(s, [inspection_id]))

    # --- keeping the index in step with the database ---

    def reconcile(self, progress: Callable[[int, int], None] | None = None, rebuild: bool = False) -> dict:
        """Add to the index every inspection with vectors that it lacks (all of them with ``rebuild``, into fresh
        indexes); returns counts. Runs at start, from ``linewatch search rebuild``, and after a failed update."""
        added = checked = 0
        with self.sessions() as s:
            total = s.scalar(select(func.count()).select_from(InspectionVectors)) or 0
            spaces = list(s.scalars(select(InspectionVectors.space).distinct()))
        if rebuild:
            with self._lock:
                for sp in spaces:
                    with self.sessions() as s:
                        dim = s.scalar(
                            select(InspectionVectors.defect_dim).where(InspectionVectors.space == sp).limit(1)
                        )
                    idx = self._open_index(dim, _index_name(sp))
                    idx.remove(_all_ids(idx))
                    self._indexes[sp] = idx
                    self._dirty.add(sp)
        last = 0
        while True:
            with self.sessions() as s:
                batch = list(
                    s.execute(
                        select(
                            InspectionVectors.inspection_id,
                            InspectionVectors.space,
                            InspectionVectors.defect_dim,
                            InspectionVectors.from_regions,
                        )
                        .where(InspectionVectors.inspection_id > last)
                        .order_by(InspectionVectors.inspection_id)
                        .limit(RECONCILE_BATCH)
                    )
                )
                if not batch:
                    break
                last = batch[-1][0]
                missing = []
                for iid, space, dim, from_regions in batch:
                    pid = point_id(iid, 0 if from_regions else None)
                    if rebuild or self.index(space, dim).get([pid])[0] is None:
                        missing.append(iid)
                entries = self.entries(s, missing)
            self.add(entries)
            added += len(entries)
            checked += len(batch)
            if progress:
                progress(checked, total)
        self.save()
        return {"checked": checked, "added": added}

    def save(self) -> None:
        with self._lock:
            for space in list(self._dirty):
                try:
                    self._indexes[space].save()
                    self._dirty.discard(space)
                except (LinewatchError, OSError) as exc:
                    log.warning("search index %s: cannot save: %s", space, exc)

    @contextlib.contextmanager
    def exclusive(self):
        """Hold the embedded index's folder for this process (the service while it runs, or a rebuild): a second
        holder is refused with a clear error, since each would overwrite the other's saves. Nothing to hold for a
        Qdrant server, which serves many processes."""
        if self.settings.search_backend != "faiss":
            yield
            return
        folder = self.settings.search_dir
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / ".lock", "a+") as f:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                raise SearchIndexError(
                    f"the search index in {folder} is in use by another process (a running linewatch serve?): "
                    "stop it first"
                ) from None
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def _vector_rows(self) -> int:
        with self.sessions() as s:
            return s.scalar(select(func.count()).select_from(InspectionVectors)) or 0

    def start(self) -> None:
        """Bring the index up to date with the database, then save and retry in the background."""
        self._held = contextlib.ExitStack()
        try:
            self._held.enter_context(self.exclusive())
        except SearchIndexError as exc:  # serve anyway; this process's index changes may be overwritten
            log.warning("%s", exc)
        self.started = True
        try:
            self._vectors_seen = self._vector_rows()
            got = self.reconcile()
            if got["added"]:
                log.info("search index: added %d inspections the index lacked", got["added"])
        except (LinewatchError, OSError) as exc:
            log.warning("search index not reconciled at start (retried in the background): %s", exc)
        self._thread = threading.Thread(target=self._loop, name="linewatch-search", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(SAVE_EVERY_S):
            try:
                if self.failed:
                    with self.sessions() as s:
                        self.add(self.entries(s, sorted(self.failed)))
                # vectors written by another process (a backfill job on a queue worker): index them
                rows = self._vector_rows()
                if rows > self._vectors_seen:
                    self.reconcile()
                self._vectors_seen = rows
            except Exception as exc:  # the database down for a moment: next round
                log.warning("search index upkeep failed (retried): %s", exc)
            self.save()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=30)
        self.save()
        with self._lock:
            for idx in self._indexes.values():
                idx.close()
            self._indexes.clear()
        if self._held is not None:
            self._held.close()
            self._held = None

    # --- queries ---

    def search(
        self, space: str, dim: int, vectors: np.ndarray, k: int, where: Filter | None, exclude: int | None = None
    ) -> list[tuple[int, float, dict]]:
        """(inspection id, similarity, payload of its nearest point: region, defect type, ...) of the ``k``
        inspections nearest to any of ``vectors``, best first."""
        from linewatch.search.service import search_grouped

        with self._lock:
            idx = self.index(space, dim)
            hits = search_grouped(idx, vectors, k + (exclude is not None), where, group_key="inspection_id")
        out = [(int(h.key), h.similarity, h.hit.payload) for h in hits if h.key != exclude]
        return out[:k]


def _all_ids(idx: VectorIndex) -> list[int]:
    ids = getattr(idx, "ids", None)
    if callable(ids):
        return [int(i) for i in ids()]
    raise SearchIndexError(f"{type(idx).__name__} cannot list its points: drop the collection to rebuild it")


# --- label suggestions ---


@dataclass
class Suggestion:
    defect_type: str
    confidence: float  # the chance it is right: ``share`` through the installation's calibration map
    votes: dict[str, float]
    neighbours: int  # the look-alikes that voted
    share: float = 0.0  # the winner's smoothed share of the votes (the confidence before calibration)
    calibrated_on: int = 0  # reviewed inspections the map was fitted on (0: none yet, ``confidence`` is ``share``)
    learned_from: int = 0  # reviewed inspections of the station the vote's metric was fitted on (0: plain similarity)


SUGGEST_K = 5
CALIBRATE_MAX = 500  # the most recent reviewed inspections the calibration map is fitted on


def _tally(hits: Iterable[tuple[float, str | None]], types: list[str]):
    """(winner, smoothed share, votes, voters) of (similarity, defect type) look-alikes; None when none voted."""
    votes: dict[str, float] = {}
    voters = 0
    for sim, kind in hits:
        if kind:
            votes[kind] = votes.get(kind, 0.0) + max(sim, 0.0)
            voters += 1
    if not votes:
        return None
    best = max(votes, key=votes.get)
    share = (votes[best] + 1) / (sum(votes.values()) + max(len(types), 2))
    return best, share, votes, voters


def _vote(hub: SearchHub, row: InspectionVectors, types: list[str], k: int, exclude: int):
    """(winner, smoothed share, votes, voters) of the ``k`` nearest reviewed look-alikes; None when none voted."""
    hits = hub.search(row.space, row.defect_dim, defect_matrix(row), k, Filter(defect_type=types), exclude)
    return _tally(((sim, payload.get("defect_type")) for _, sim, payload in hits), types)


# --- a metric learned from a station's reviews ---

LEARN_FOLDS = 5  # the learned vote's calibration: each reviewed inspection is voted on by a metric fitted without it


@dataclass
class _Learned:
    labels: dict[int, str]  # reviewed inspection id -> type, the metric's training set and the vote's gallery
    metric: ReviewMetric | None  # None while too few reviews (or types) for one
    ids: np.ndarray | None = None
    kinds: np.ndarray | None = None
    gallery: list[np.ndarray] | None = None  # each reviewed inspection's top region, raw
    calibration: Calibration | None = None


def _knn(sim: np.ndarray, kinds: np.ndarray, k: int) -> list[tuple[float, str]]:
    """(similarity, type) of the ``k`` most similar; entries set to -inf (the query itself) never count."""
    top = [j for j in np.argsort(-sim)[: k + 1] if np.isfinite(sim[j])][:k]
    return [(float(sim[j]), str(kinds[j])) for j in top]


def learned(hub: SearchHub, session: Session, station_id: int, space: str, types: list[str], k: int) -> _Learned:
    """The review metric of a station's vectors in ``space`` (``linewatch.search.metric``), fitted on its latest
    ``CALIBRATE_MAX`` reviewed defective inspections (their top region each) once there are ``MIN_REVIEWS`` of at
    least two types, with the calibration of the votes it gives (each reviewed inspection voted on by its ``k``
    nearest other reviewed ones, in a metric fitted on the folds without it). Refitted when a tenth of the labels
    (at least one) changed, as the plain calibration is."""
    labels = dict(
        session.execute(
            select(Inspection.id, Inspection.defect_type)
            .join(InspectionVectors, InspectionVectors.inspection_id == Inspection.id)
            .where(
                Inspection.station_id == station_id,
                Inspection.defect_type.is_not(None),
                Inspection.duplicate_of.is_(None),
                InspectionVectors.space == space,
            )
            .order_by(Inspection.id.desc())
            .limit(CALIBRATE_MAX)
        ).all()
    )
    key = (station_id, space, k)
    with hub._lock:
        fitted = hub.learned.get(key)
    if fitted is not None:
        changed = sum(fitted.labels.get(i) != t for i, t in labels.items()) + len(fitted.labels.keys() - labels.keys())
        if changed < max(1, len(fitted.labels) // 10):
            return fitted
    if not ReviewMetric.enough(list(labels.values())):
        fitted = _Learned(labels, None)
    else:  # the vectors are read only now, when the metric is (re)fitted
        vectors = dict(
            session.execute(
                select(InspectionVectors.inspection_id, InspectionVectors.defects).where(
                    InspectionVectors.inspection_id.in_(list(labels))
                )
            ).all()
        )
        dim = session.scalar(select(InspectionVectors.defect_dim).where(InspectionVectors.space == space).limit(1))
        ids = np.array(list(labels))
        kinds = np.array([labels[i] for i in ids])
        gallery = [np.frombuffer(vectors[i], dtype=np.float32)[:dim][None] for i in ids]
        tops = np.concatenate(gallery)
        metric = ReviewMetric().fit(tops, kinds)
        # calibration outcomes, cross-fitted: a fold's inspections are voted on by a metric that never saw them
        folds = np.arange(len(ids)) % LEARN_FOLDS
        scores, right = [], []
        for f in range(LEARN_FOLDS):
            held = folds == f
            if not ReviewMetric.enough(list(kinds[~held])):
                continue
            m = ReviewMetric().fit(tops[~held], kinds[~held])
            sim = m.similarity([tops[i : i + 1] for i in np.flatnonzero(held)], gallery)
            for row_sim, i in zip(sim, np.flatnonzero(held), strict=True):
                row_sim[i] = -np.inf  # not its own look-alike
                got = _tally(_knn(row_sim, kinds, k), types)
                if got is not None:
                    scores.append(got[1])
                    right.append(got[0] == kinds[i])
        fitted = _Learned(labels, metric, ids, kinds, gallery, fit(scores, right))
    with hub._lock:
        hub.learned[key] = fitted
    return fitted


@dataclass
class _Fitted:
    labels: dict[int, str]  # the reviewed types it was fitted on, by inspection id
    calibration: Calibration | None


def calibration(hub: SearchHub, session: Session, space: str, types: list[str], k: int) -> Calibration | None:
    """The installation's calibration map for suggestions in ``space``: every reviewed inspection (the latest
    ``CALIBRATE_MAX``) asks for a suggestion from the others (leave-one-out), and the map from share to being right
    is fitted on those outcomes (``linewatch.search.calibration``). Refitted when a tenth of the labels (at least
    one) changed since the last fit; None while too few reviewed inspections exist."""
    labels = dict(
        session.execute(
            select(Inspection.id, Inspection.defect_type)
            .join(InspectionVectors, InspectionVectors.inspection_id == Inspection.id)
            .where(Inspection.defect_type.is_not(None), InspectionVectors.space == space)
            .order_by(Inspection.id.desc())
            .limit(CALIBRATE_MAX)
        ).all()
    )
    key = (space, k)
    with hub._lock:
        fitted = hub.calibrations.get(key)
    if fitted is not None:
        changed = sum(fitted.labels.get(i) != t for i, t in labels.items()) + len(fitted.labels.keys() - labels.keys())
        if changed < max(1, len(fitted.labels) // 10):
            return fitted.calibration
    scores, right = [], []
    if len(labels) >= MIN_OUTCOMES:
        for row in session.scalars(select(InspectionVectors).where(InspectionVectors.inspection_id.in_(labels))):
            got = _vote(hub, row, types, k, row.inspection_id)
            if got is not None:
                scores.append(got[1])
                right.append(got[0] == labels[row.inspection_id])
    fitted = _Fitted(labels, fit(scores, right))
    with hub._lock:
        hub.calibrations[key] = fitted
    return fitted.calibration


def suggest(hub: SearchHub, session: Session, inspection_id: int, k: int = SUGGEST_K) -> Suggestion | None:
    """A defect type for an inspection judged or reviewed defective, from its reviewed look-alikes: a
    k-nearest-neighbour vote over region vectors, each neighbour weighted by its similarity. None for a part
    nobody found defective (a good part has no defect to name) and when no reviewed inspection is near.

    The share is the winner's share of the votes after one pseudo-vote for every defect type reviewed so far
    (Laplace smoothing): one look-alike among three known types reads 50 %, not 100 %. The confidence is the
    chance that the suggestion is right: the share through a monotone map fitted on this installation's own
    reviewed inspections (each one's leave-one-out suggestion against its reviewed type; ``calibration``), the
    share itself while fewer than 20 are reviewed. The map never reaches 0 or 1, and a vote of fewer look-alikes
    than ``k`` (n of them) reads at most (n + 1) / (n + 2), the rule of succession: one look-alike never above 2/3.

    Once the inspection's station has ``MIN_REVIEWS`` reviewed defects of two types or more, the look-alikes are
    its reviewed inspections nearest in the metric learned from them (``learned``), and the confidence goes
    through that vote's own calibration map."""
    insp = session.get(Inspection, inspection_id)
    if insp is None or "anomalous" not in (insp.verdict, insp.review_verdict):
        return None
    row = session.get(InspectionVectors, inspection_id)
    if row is None:
        return None
    types = [t for t in session.scalars(select(Inspection.defect_type).distinct()) if t]
    if not types:
        return None
    lrn = learned(hub, session, insp.station_id, row.space, types, k)
    if lrn.metric is not None:  # enough reviews at this station: vote in the space learned from them
        sim = lrn.metric.similarity([defect_matrix(row)], lrn.gallery)[0]
        sim[lrn.ids == inspection_id] = -np.inf
        got = _tally(_knn(sim, lrn.kinds, k), types)
        cal = lrn.calibration
    else:
        got = _vote(hub, row, types, k, inspection_id)
        cal = calibration(hub, session, row.space, types, k)
    if got is None:
        return None
    best, share, votes, voters = got
    confidence = cal(share) if cal is not None else share
    confidence = min(max(confidence, 0.0), 1.0 if voters >= k else (voters + 1) / (voters + 2))
    learned_from = len(lrn.labels) if lrn.metric is not None else 0
    return Suggestion(best, confidence, votes, voters, share, cal.outcomes if cal is not None else 0, learned_from)


# --- duplicates ---


@dataclass
class _Recent:
    """One station's recent uploads by inspection id: (original id, sha256, perceptual hash, unix time, fingerprint)."""

    rows: dict[int, tuple[int, str, int, float, Fingerprint | None]]
    fetched_upto: int = 0  # the highest id read from the database
    checked_at: float = float("-inf")  # monotonic time of the last read


REFRESH_S = 1.0  # the database is asked for other processes' uploads at most this often per station


def _fingerprint(data: bytes | None) -> Fingerprint | None:
    return Fingerprint.from_bytes(data) if data else None


class RecentUploads:
    """Each station's recent uploads (sha256, perceptual hash, fingerprint), to spot repeats without reading
    hundreds of rows per upload: the first look at a station reads its last ``recent`` inspections in the window;
    later, at most once a second, the rows committed since (by id), so uploads stored by other service processes
    count too (after up to a second); this process's own uploads count at once (``note``). Reads run in their own
    session: only committed inspections are matched (a request's own earlier images are checked by the caller)."""

    def __init__(self, sessions: sessionmaker[Session]):
        self.sessions = sessions
        self._state: dict[int, _Recent] = {}
        self._lock = threading.Lock()

    def _update(self, station_id: int, since: dt.datetime, recent: int) -> _Recent:
        with self._lock:
            state = self._state.setdefault(station_id, _Recent({}))
            fetch = time.monotonic() - state.checked_at >= REFRESH_S
            upto = state.fetched_upto
        if fetch:
            root = func.coalesce(Inspection.duplicate_of, Inspection.id)
            q = select(
                Inspection.id,
                root,
                Inspection.image_sha256,
                Inspection.image_phash,
                Inspection.created_at,
                Inspection.image_fingerprint,
            ).where(Inspection.station_id == station_id, Inspection.created_at >= since, Inspection.id > upto)
            with self.sessions() as s:
                rows = s.execute(q.order_by(Inspection.id.desc()).limit(recent)).all()
            with self._lock:
                for iid, r, sha, ph, t, fp in rows:
                    state.rows.setdefault(iid, (r, sha, int(ph, 16), as_utc(t).timestamp(), _fingerprint(fp)))
                if rows:
                    state.fetched_upto = max(state.fetched_upto, max(r[0] for r in rows))
                state.checked_at = time.monotonic()
        with self._lock:
            cutoff = since.timestamp()
            ids = sorted(i for i, v in state.rows.items() if v[3] >= cutoff)[-recent:]
            state.rows = {i: state.rows[i] for i in ids}
            return _Recent(dict(state.rows))

    def note(self, rows: Sequence[Inspection]) -> None:
        """Inspections this process just committed: repeats of them are spotted from the next upload on."""
        with self._lock:
            for r in rows:
                state = self._state.setdefault(r.station_id, _Recent({}))
                t = as_utc(r.created_at).timestamp() if r.created_at else time.time()
                fp = _fingerprint(r.image_fingerprint)
                state.rows[r.id] = (r.duplicate_of or r.id, r.image_sha256, int(r.image_phash, 16), t, fp)

    def find(
        self,
        station_id: int,
        sha256: str,
        phash: str,
        fingerprint: bytes | None,
        window_s: float,
        max_bits: int,
        recent: int,
        pending: Sequence[Inspection] = (),
    ) -> tuple[int, str] | None:
        """(earlier inspection id, "exact" | "near") of a recent upload at this station that this one repeats: the
        same bytes, or the same photo re-encoded or cropped by a few pixels (``fingerprint``, `repeats.Fingerprint`
        bytes, within SAME_PHOTO_RMS of the earlier one's) among the uploads whose perceptual hash is at most
        ``max_bits`` bits away (-1: exact only); the original of a chain of repeats. ``pending``: this request's
        earlier images (flushed, not committed), checked too."""
        since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=window_s)
        state = self._update(station_id, since, recent)
        pend = [p for p in pending if p.station_id == station_id]
        for p in reversed(pend):
            if p.image_sha256 == sha256:
                return p.duplicate_of or p.id, "exact"
        ids = sorted(state.rows)
        for i in reversed(ids):
            if state.rows[i][1] == sha256:
                return state.rows[i][0], "exact"
        fp = _fingerprint(fingerprint)
        if max_bits < 0 or fp is None:
            return None
        target = int(phash, 16)
        # (original, hash bits apart, fingerprint) of each earlier upload the hash does not rule out
        candidates = [(p.duplicate_of or p.id, int(p.image_phash, 16), _fingerprint(p.image_fingerprint)) for p in pend]
        candidates += [(state.rows[i][0], state.rows[i][2], state.rows[i][4]) for i in ids]
        near = [
            (root, f)
            for root, h, f in candidates
            if f is not None and (h ^ target).bit_count() <= max_bits  # Python ints: 20x numpy scalars' speed
        ]
        if not near:
            return None
        diffs = differences(fp, [f for _, f in near])
        j = int(np.argmin(diffs))
        return (near[j][0], "near") if diffs[j] <= SAME_PHOTO_RMS else None

    def forget(self, station_id: int | None = None) -> None:
        """Drop what is held (after inspections were deleted)."""
        with self._lock:
            if station_id is None:
                self._state.clear()
            else:
                self._state.pop(station_id, None)
