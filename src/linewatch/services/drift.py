"""The drift watch of a station: do its recent parts still score as the good parts its model's thresholds were set
on (``linewatch.core.drift``)? The reference is the held-out good scores the active model version keeps in its
manifest (from training, or from its last recalibration); the recent scores are the station's latest inspections by
that version, repeated photos and parts a reviewer marked defective left out; flags that reviewers overturned are
the false alarms counted for sure. What those photos look like (their whole-image search vectors and brightness) is
compared with the looks of the good images the model keeps beside their scores.

``DriftWatcher`` checks every station with new parts once a minute and, when its level changes, stores the change
(``station_drift``), then publishes ``StationDrift`` (WebSocket clients, other processes) and sets the Prometheus
gauges: a station that drifts says so without anyone asking."""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from linewatch.core.drift import Looks, drift_trend, farthest_first, reference_band, score_drift
from linewatch.core.events import StationDrift
from linewatch.services import stations
from linewatch.services.errors import Conflict
from linewatch.services.periodic import Periodic
from linewatch.store.tables import (
    Inspection,
    InspectionVectors,
    ModelVersion,
    Station,
    StationDriftChange,
    as_utc,
)

if TYPE_CHECKING:
    from linewatch.services.context import AppContext

log = logging.getLogger("linewatch.drift")

DEFAULT_LAST = 500  # recent parts compared, unless the request says
MAX_LAST = 5000
CHECK_EVERY_S = 60.0  # how often the watcher looks at stations with new parts
LEVEL_VALUES = {"unknown": -1, "ok": 0, "watch": 1, "drift": 2}  # the Prometheus gauge's


@lru_cache(maxsize=64)
def _reference(path: str, mtime_ns: int) -> tuple[tuple[float, ...], float | None, float | None, dict, Looks]:
    """(kept held-out good scores, image threshold, promised false-alarm rate, where the scores came from, those
    images' looks) of a model directory; cached per manifest version (a recalibration rewrites it)."""
    from linewatch.vision.appearance import kept_reference_looks
    from linewatch.vision.manifest import read_manifest

    manifest = read_manifest(path)
    kept = manifest.get("calibration_scores") or {}
    cal = manifest.get("calibration") or {}
    origin = {k: kept.get(k) for k in ("source", "images", "at")} if kept else {}
    looks = kept_reference_looks(manifest)
    return tuple(kept.get("image") or ()), cal.get("image_threshold"), cal.get("false_alarm_rate"), origin, looks


def reference(mv: ModelVersion) -> tuple[tuple[float, ...], float | None, float | None, dict, Looks]:
    from linewatch.errors import ModelFileError

    manifest = Path(mv.path or "") / "manifest.json"
    try:
        return _reference(str(mv.path), manifest.stat().st_mtime_ns)
    except (OSError, ModelFileError) as e:
        raise Conflict(f"model version {mv.id} cannot be read: {e}") from None


def _recent_vectors(session: Session, ids: list[int]) -> dict[int, np.ndarray]:
    """The whole-image search vectors of these inspections (kept where the model has search vectors), by id."""
    found: dict[int, np.ndarray] = {}
    for i in range(0, len(ids), 900):  # under SQLite's bound-parameter limit
        rows = session.execute(
            select(InspectionVectors.inspection_id, InspectionVectors.image).where(
                InspectionVectors.inspection_id.in_(ids[i : i + 900])
            )
        ).all()
        found.update((r.inspection_id, np.frombuffer(r.image, np.float32)) for r in rows)
    return found


def station_drift(session: Session, name: str, last: int = DEFAULT_LAST) -> dict:
    """The drift watch of station ``name`` over its ``last`` parts inspected by its active model version."""
    st = stations.station(session, name)
    if st.active_model_id is None:
        raise Conflict(f"station {name!r} runs no model: activate one first")
    mv = session.get(ModelVersion, st.active_model_id)
    ref, threshold, rate, origin, ref_looks = reference(mv)
    rows = session.execute(
        select(
            Inspection.id,
            Inspection.score,
            Inspection.verdict,
            Inspection.review_verdict,
            Inspection.created_at,
            Inspection.brightness,
        )
        .where(
            Inspection.station_id == st.id,
            Inspection.model_id == mv.id,
            Inspection.duplicate_of.is_(None),
            or_(Inspection.review_verdict.is_(None), Inspection.review_verdict != "anomalous"),
        )
        .order_by(Inspection.id.desc())
        .limit(last)
    ).all()
    flags = sum(r.verdict == "anomalous" for r in rows)
    reviewed = sum(r.verdict == "anomalous" and r.review_verdict is not None for r in rows)
    overturned = sum(r.verdict == "anomalous" and r.review_verdict == "good" for r in rows)
    by_id = _recent_vectors(session, [r.id for r in rows])
    with_vectors = [r for r in rows if r.id in by_id]
    dims = {by_id[r.id].size for r in with_vectors}
    vectors = np.stack([by_id[r.id] for r in with_vectors]) if len(dims) == 1 else None
    looks = Looks(vectors, np.array([r.brightness for r in rows if r.brightness is not None], np.float64))
    found = score_drift(
        ref,
        [r.score for r in rows],
        threshold,
        rate,
        overturned if reviewed else None,
        reference_looks=ref_looks,
        recent_looks=looks,
    )
    out = found.to_dict()
    out["reference_band"] = reference_band(ref, ref_looks)
    # each recent photo's distance to its nearest reference photo (where both sides have looks), for the trend, and
    # the photos that look least like the good ones, newest first among equals, for a person to open
    far = found.look_distances
    distance = {r.id: float(d) for r, d in zip(with_vectors, far, strict=True)} if far is not None else {}
    out["farthest"] = (
        [{"inspection_id": with_vectors[i].id, "distance": round(float(far[i]), 6)} for i in farthest_first(far)]
        if far is not None
        else []
    )
    oldest_first = rows[::-1]
    out["trend"] = drift_trend(
        [as_utc(r.created_at) for r in oldest_first],
        [r.score for r in oldest_first],
        [r.brightness for r in oldest_first],
        [distance.get(r.id) for r in oldest_first],
    )
    if not ref:
        out["reason"] = (
            f"model version {mv.id} keeps no held-out good scores (trained before they were kept): set its thresholds "
            "again on good parts (calibrate) to start the watch"
        )
    return {
        "station": st.name,
        "model_id": mv.id,
        "since": as_utc(rows[-1].created_at) if rows else None,
        "until": as_utc(rows[0].created_at) if rows else None,
        "flags": flags,
        "reviewed_flags": reviewed,
        "reference_source": origin.get("source"),
        "reference_at": origin.get("at"),
        **out,
    }


def history(session: Session, name: str, limit: int = 50) -> list[dict]:
    """The changes of station ``name``'s drift level, the newest first."""
    st = stations.station(session, name)
    rows = session.scalars(
        select(StationDriftChange)
        .where(StationDriftChange.station_id == st.id)
        .order_by(StationDriftChange.id.desc())
        .limit(limit)
    ).all()
    return [
        {
            "station": st.name,
            "model_id": r.model_id,
            "level": r.level,
            "previous_level": r.previous_level,
            "recent": r.recent,
            "shift_auroc": r.shift_auroc,
            "false_alarm_share": r.false_alarm_share,
            "reason": r.reason,
            "at": as_utc(r.created_at),
        }
        for r in rows
    ]


class DriftWatcher(Periodic):
    """A thread: every ``CHECK_EVERY_S``, each station whose newest inspection is newer than at its last check gets
    ``station_drift``; a level other than the one stored last (or another model's) is stored, then published."""

    name, every_s, what = "linewatch-drift", CHECK_EVERY_S, "drift watch"

    def __init__(self, ctx: AppContext):
        super().__init__()
        self.ctx = ctx
        self._seen: dict[int, int] = {}  # station id -> its newest inspection id at the last check

    def run_once(self) -> int:
        """Check the stations with new parts; the number of level changes stored."""
        with self.ctx.sessions() as s:
            newest = s.execute(
                select(Station.id, Station.name, func.max(Inspection.id))
                .join(Inspection, Inspection.station_id == Station.id)
                .where(Station.active_model_id.is_not(None))
                .group_by(Station.id, Station.name)
            ).all()
        changed = 0
        for station_id, name, last_id in newest:
            if self._seen.get(station_id) == last_id:
                continue
            self._seen[station_id] = last_id
            try:
                changed += self._check(station_id, name)
            except Conflict as e:  # its model cannot be read: said on the API, nothing to store
                log.info("station %s: no drift check: %s", name, e)
            except Exception as e:
                log.warning("station %s: no drift check: %s", name, e)
        return changed

    def _check(self, station_id: int, name: str) -> int:
        with self.ctx.sessions() as s:
            found = station_drift(s, name)
        self.ctx.metrics.drift_level.labels(name).set(LEVEL_VALUES[found["level"]])
        for gauge, key in (
            (self.ctx.metrics.drift_auroc, "shift_auroc"),
            (self.ctx.metrics.drift_look, "look_auroc"),
            (self.ctx.metrics.drift_brightness, "brightness_change"),
        ):
            if found[key] is not None:
                gauge.labels(name).set(found[key])
        try:
            with self.ctx.sessions() as s, s.begin():
                last = last_change(s, station_id)
                before = last.level if last is not None else "unknown"
                if before == found["level"] and (last is None or last.model_id == found["model_id"]):
                    return 0
                keys = ("model_id", "level", "reason", "shift_auroc", "false_alarm_share")
                change = {"previous_level": before, **{k: found[k] for k in keys}}
                row = StationDriftChange(
                    station_id=station_id,
                    follows_id=last.id if last is not None else 0,
                    recent=found["recent"],
                    **change,
                )
                s.add(row)
                s.flush()
                at = as_utc(row.created_at).isoformat()
        except IntegrityError:  # another service process stored a change after the same one: it publishes it
            log.debug("station %s: its drift change was stored by another process", name)
            return 0
        self.ctx.bus.publish(StationDrift(station=name, at=at, **change))
        return 1


def last_change(s: Session, station_id: int) -> StationDriftChange | None:
    """The station's newest stored change of level, if any."""
    return s.scalar(
        select(StationDriftChange)
        .where(StationDriftChange.station_id == station_id)
        .order_by(StationDriftChange.id.desc())
        .limit(1)
    )
