"""The line's numbers: parts by verdict with repeated uploads apart, the defect rate, and throughput over the
part of the period the line actually covered. The dashboard, History, exports and Prometheus agree with these."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from linewatch.store.tables import Inspection, Station, as_utc


def line_stats(
    session: Session, station: str | None = None, since: dt.datetime | None = None, until: dt.datetime | None = None
) -> dict:
    """Counts of the line: parts by verdict, repeated uploads apart (each part counts once), and its throughput:
    the parts of the period divided by the part of the period the line covered (a line that started 20 s into a
    5-minute period is measured over those 20 s, not 300)."""
    scope = select(Inspection).join(Station, Station.id == Inspection.station_id)
    if station is not None:
        scope = scope.where(Station.name == station)
    if until is not None:
        scope = scope.where(Inspection.created_at < until)
    ran_before = False
    if since is not None:
        before = scope.where(Inspection.created_at < since).with_only_columns(Inspection.id).limit(1)
        ran_before = session.scalar(before) is not None
        scope = scope.where(Inspection.created_at >= since)
    q = scope.with_only_columns(
        Inspection.verdict,
        Inspection.duplicate_of.is_(None),
        func.count(),
        func.min(Inspection.created_at),
        func.max(Inspection.created_at),
    )
    counts = {"good": 0, "anomalous": 0}
    dups = 0
    first_at = last_at = None
    for verdict, first, n, lo, hi in session.execute(q.group_by(Inspection.verdict, Inspection.duplicate_of.is_(None))):
        if first:
            counts[verdict] = counts.get(verdict, 0) + n
            first_at = lo if first_at is None else min(first_at, lo)
            last_at = hi if last_at is None else max(last_at, hi)
        else:
            dups += n
    parts = counts["good"] + counts["anomalous"]
    now = dt.datetime.now(dt.UTC)
    end = min(until, now) if until is not None else now
    start = since if (ran_before and since is not None) else (as_utc(first_at) if first_at is not None else None)
    covered = (end - start).total_seconds() if start is not None else None
    return {
        **counts,
        "parts": parts,
        "defect_rate": counts["anomalous"] / parts if parts else None,
        "duplicates": dups,
        "first_at": first_at,
        "last_at": last_at,
        "covered_s": round(covered, 3) if covered is not None and covered > 0 else None,
        "throughput_per_s": parts / covered if covered is not None and covered > 0 else None,
    }
