"""The audit log (admins): who did what and when, page by page or exported whole."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from linewatch.api.deps import DB, Admin
from linewatch.api.schemas import LINE, MAX_ID, AuditPage, TimeFilter, errors
from linewatch.services import audit

router = APIRouter(prefix="/api/v1/audit", tags=["audit"], responses=errors(401, 403, 422))

Action = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=50,
        pattern=r"^[a-z_]+(\.[a-z_]+)?$",
        description="an action (user.update) or a family of them (user)",
    ),
]
Actor = Annotated[str | None, Query(min_length=1, max_length=200, pattern=LINE, description="who")]
Since = Annotated[TimeFilter, Query(description="at or after (without an offset: UTC)")]
Until = Annotated[TimeFilter, Query(description="before (without an offset: UTC)")]


@router.get("", response_model=AuditPage)
def audit_log(
    _: Admin,
    session: DB,
    action: Action = None,
    actor: Actor = None,
    since: Since = None,
    until: Until = None,
    cursor: int | None = Query(None, ge=0, le=MAX_ID, description="next_cursor of the previous page"),
    limit: int = Query(100, ge=1, le=1000),
):
    """Newest first: sign-ins and failed sign-ins, users and roles changed, API keys made and revoked, models
    activated and rolled back, reviews, deletions. The service only adds entries; none is ever changed or
    deleted through it."""
    return audit.page(session, action, actor, since, until, cursor, limit)


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {kind: {"schema": {"type": "string"}} for kind in ("text/csv", "application/x-ndjson")},
            "description": "every matching entry, oldest first",
        }
    },
)
def export_audit_log(
    _: Admin,
    session: DB,
    format: Literal["csv", "jsonl"] = "csv",
    action: Action = None,
    actor: Actor = None,
    since: Since = None,
    until: Until = None,
):
    """The whole log (or the entries matching the filters), oldest first, as CSV or JSON Lines, for archiving."""
    media = "text/csv; charset=utf-8" if format == "csv" else "application/x-ndjson"
    name = f"linewatch-audit.{format}"
    rows = list(audit.export(session, format, action, actor, since, until))  # read now, while the session is open
    disposition = {"Content-Disposition": f'attachment; filename="{name}"'}
    return StreamingResponse(iter(rows), media_type=media, headers=disposition)
