"""The drift watch of a station: do its recent parts still score as the good parts its model's thresholds were set
on (``linewatch.core.drift``)? The reference is the held-out good scores the active model version keeps in its
manifest (from training, or from its last recalibration); the recent scores are the station's latest inspections by
that version, repeated photos and parts a reviewer marked defective left out; flags that reviewers overturned are
the false alarms counted for sure."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from pathlib import Path

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from linewatch.core.drift import score_drift
from linewatch.services import stations
from linewatch.services.errors import Conflict
from linewatch.store.tables import Inspection, ModelVersion

DEFAULT_LAST = 500  # recent parts compared, unless the request says
MAX_LAST = 5000


@lru_cache(maxsize=64)
def _reference(path: str, mtime_ns: int) -> tuple[tuple[float, ...], float | None, float | None, dict]:
    """(kept held-out good scores, image threshold, promised false-alarm rate, where the scores came from) of a model
    directory; cached per manifest version (a recalibration rewrites it)."""
    from linewatch.vision.manifest import read_manifest

    manifest = read_manifest(path)
    kept = manifest.get("calibration_scores") or {}
    cal = manifest.get("calibration") or {}
    origin = {k: kept.get(k) for k in ("source", "images", "at")} if kept else {}
    return tuple(kept.get("image") or ()), cal.get("image_threshold"), cal.get("false_alarm_rate"), origin


def reference(mv: ModelVersion) -> tuple[tuple[float, ...], float | None, float | None, dict]:
    from linewatch.errors import ModelFileError

    manifest = Path(mv.path or "") / "manifest.json"
    try:
        return _reference(str(mv.path), manifest.stat().st_mtime_ns)
    except (OSError, ModelFileError) as e:
        raise Conflict(f"model version {mv.id} cannot be read: {e}") from None


def station_drift(session: Session, name: str, last: int = DEFAULT_LAST) -> dict:
    """The drift watch of station ``name`` over its ``last`` parts inspected by its active model version."""
    st = stations.station(session, name)
    if st.active_model_id is None:
        raise Conflict(f"station {name!r} runs no model: activate one first")
    mv = session.get(ModelVersion, st.active_model_id)
    ref, threshold, rate, origin = reference(mv)
    rows = session.execute(
        select(Inspection.score, Inspection.verdict, Inspection.review_verdict, Inspection.created_at)
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
    found = score_drift(ref, [r.score for r in rows], threshold, rate, overturned if reviewed else None)
    out = found.to_dict()
    if not ref:
        out["reason"] = (
            f"model version {mv.id} keeps no held-out good scores (trained before they were kept): set its thresholds "
            "again on good parts (calibrate) to start the watch"
        )
    return {
        "station": st.name,
        "model_id": mv.id,
        "since": _utc(rows[-1].created_at) if rows else None,
        "until": _utc(rows[0].created_at) if rows else None,
        "flags": flags,
        "reviewed_flags": reviewed,
        "reference_source": origin.get("source"),
        "reference_at": origin.get("at"),
        **out,
    }


def _utc(t: dt.datetime) -> dt.datetime:
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)
