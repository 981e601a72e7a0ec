"""The line's numbers for a period: parts by verdict, repeats apart, defect rate and throughput."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from linewatch.api.deps import DB, Viewer
from linewatch.api.schemas import LINE, TimeFilter, Timestamp, errors
from linewatch.services.stats import line_stats

router = APIRouter(prefix="/api/v1", tags=["search"], responses=errors(400, 401, 403, 422))


class StatsOut(BaseModel):
    parts: int = Field(description="inspections that are not repeats of an earlier upload")
    good: int
    anomalous: int
    defect_rate: float | None
    duplicates: int = Field(description="repeated uploads, not counted in parts")
    first_at: Timestamp | None = Field(None, description="the first part of the period")
    last_at: Timestamp | None = Field(None, description="the last part of the period")
    covered_s: float | None = Field(
        None,
        description="seconds of the period the line actually covered: from its first part (or `since`, when the "
        "line was already running before it) to `until` or now, whichever is earlier",
    )
    throughput_per_s: float | None = Field(None, description="parts ÷ covered_s (None when nothing was covered)")


@router.get("/stats", response_model=StatsOut)
def stats(
    _: Viewer,
    session: DB,
    station: str | None = Query(None, min_length=1, max_length=100, pattern=LINE),
    since: Annotated[TimeFilter, Query(description="inspected at or after (without an offset: UTC)")] = None,
    until: Annotated[TimeFilter, Query(description="inspected before (without an offset: UTC)")] = None,
):
    """Counts of the line: parts by verdict, repeated uploads apart (each part counts once), and its throughput:
    the parts of the period divided by the part of the period the line covered (a line that started 20 s into a
    5-minute period is measured over those 20 s, not 300)."""
    return line_stats(session, station, since, until)
