"""The audit log: who did what and when (sign-ins and failed sign-ins, users and roles, API keys, models
activated and rolled back, reviews, deletions). Entries are written in the transaction of the change they record,
so a change and its entry are stored together or not at all; the service never changes or deletes one (the
database refuses it). Admins read them over the API and on the dashboard's Admin page, or export them."""

from __future__ import annotations

import contextvars
import csv
import datetime as dt
import io
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from linewatch.store.tables import AuditEvent, User

if TYPE_CHECKING:
    from linewatch.services.accounts import Principal

#: the address of the client whose request is being served (set by the API for each request; None elsewhere)
CLIENT: contextvars.ContextVar[str | None] = contextvars.ContextVar("linewatch_audit_client", default=None)

ACTIONS = (
    "auth.login",
    "auth.login_failed",
    "auth.login_throttled",
    "auth.logout",
    "user.create",
    "user.update",
    "api_key.create",
    "api_key.revoke",
    "station.create",
    "model.activate",
    "model.rollback",
    "model.calibrate",
    "model.import",
    "model.publish",
    "inspection.review",
    "inspection.delete",
    "dataset.create",
    "dataset.delete",
    "dataset.area",
    "dataset.area_clear",
)
EXPORT_COLUMNS = ("id", "created_at", "actor", "actor_id", "via", "action", "target", "client", "detail")


def record(
    session: Session,
    action: str,
    who: Principal | None = None,
    *,
    actor: str | None = None,
    actor_id: int | None = None,
    via: str | None = None,
    target: str | None = None,
    **detail: object,
) -> None:
    """Add an entry to the session's transaction: ``who`` did ``action`` to ``target``. Without a principal,
    ``actor`` names who it was (at a failed sign-in, who it claimed to be), or ``actor_id`` the user."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    if who is None and actor is None and actor_id is not None:
        user = session.get(User, actor_id)
        actor = user.name if user is not None else f"user {actor_id}"
    session.add(
        AuditEvent(
            actor_id=who.user_id if who is not None else actor_id,
            actor=(who.name if who is not None else actor or "?")[:200],
            via=who.via if who is not None else via,
            action=action,
            target=target[:300] if target else None,
            detail={k: v for k, v in detail.items() if v is not None},
            client=(CLIENT.get() or None) and CLIENT.get()[:100],
        )
    )


def _utc(t: dt.datetime) -> dt.datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=dt.UTC)


def entry_dict(e: AuditEvent) -> dict:
    return {
        "id": e.id,
        "created_at": _utc(e.created_at),
        "actor": e.actor,
        "actor_id": e.actor_id,
        "via": e.via,
        "action": e.action,
        "target": e.target,
        "client": e.client,
        "detail": e.detail or {},
    }


def _query(action, actor, since, until):
    q = select(AuditEvent)
    if action:
        # "user" matches every user.* action; "user.update" only that one
        q = q.where(AuditEvent.action == action) if "." in action else q.where(AuditEvent.action.like(f"{action}.%"))
    if actor:
        q = q.where(AuditEvent.actor == actor)
    if since is not None:
        q = q.where(AuditEvent.created_at >= since)
    if until is not None:
        q = q.where(AuditEvent.created_at < until)
    return q


def page(
    session: Session,
    action: str | None = None,
    actor: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    cursor: int | None = None,
    limit: int = 100,
) -> dict:
    """Newest first; ``next_cursor`` continues with older entries."""
    q = _query(action, actor, since, until)
    if cursor is not None:
        q = q.where(AuditEvent.id < cursor)
    rows = list(session.scalars(q.order_by(AuditEvent.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": [entry_dict(e) for e in rows], "next_cursor": rows[-1].id if more and rows else None}


def export(
    session: Session,
    fmt: str = "csv",
    action: str | None = None,
    actor: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    batch: int = 1000,
) -> Iterator[str]:
    """Every matching entry, oldest first, as CSV (with a header row) or JSON Lines, in pieces."""
    q = _query(action, actor, since, until).order_by(AuditEvent.id)
    after = 0
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(EXPORT_COLUMNS)
        yield buf.getvalue()
    while True:
        rows = list(session.scalars(q.where(AuditEvent.id > after).limit(batch)))
        if not rows:
            return
        after = rows[-1].id
        buf = io.StringIO()
        for e in rows:
            d = entry_dict(e)
            d["created_at"] = d["created_at"].isoformat()
            if fmt == "csv":
                d["detail"] = json.dumps(d["detail"], sort_keys=True)
                # a cell starting with = + - @ is a formula to a spreadsheet: quote it as text
                csv.writer(buf).writerow([_cell(d[c]) for c in EXPORT_COLUMNS])
            else:
                buf.write(json.dumps(d, sort_keys=True) + "\n")
        yield buf.getvalue()


def _cell(value: object) -> object:
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value
