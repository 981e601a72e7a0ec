"""Machine alerts: opened by an anomalous time step (the machine's model alerting, or a reading outside its
sensor's expected range), extended by later ones, closed once ``alert_quiet_s`` of reading time passes without
one. Operators acknowledge and comment. Every change is an ``AlertChanged`` event after its commit.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from linewatch.core.events import AlertChanged, EventBus
from linewatch.services.errors import Conflict, NotFound
from linewatch.store.tables import Alert, AlertComment, Machine, User, now

TOP_SENSORS = 5


def _dt(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


def _iso(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).isoformat()


def alert_dict(a: Alert, machine: str, acknowledged_by: str | None = None) -> dict:
    return {
        "id": a.id,
        "machine": machine,
        "kind": a.kind,
        "status": a.status,
        "opened_at": _iso(a.opened_at),
        "last_at": _iso(a.last_at),
        "closed_at": _iso(a.closed_at),
        "peak_score": a.peak_score,
        "anomalous_readings": a.anomalous_readings,
        "sensors": a.sensors,
        "model_id": a.model_id,
        "acknowledged": a.acknowledged_at is not None,
        "acknowledged_by": acknowledged_by,
        "acknowledged_at": _iso(a.acknowledged_at),
    }


@dataclass
class OpenAlert:
    """An open alert as the ingester tracks it between batches."""

    id: int | None  # None until first written
    machine_id: int
    opened_ms: int
    last_ms: int
    peak: float
    count: int
    sensors: dict[str, dict] = field(default_factory=dict)  # sensor -> {"sensor", "score", "value", "reason"}
    model_id: int | None = None

    def add(self, ms: int, score: float, drivers: list[dict]) -> None:
        self.last_ms = max(self.last_ms, ms)
        self.peak = max(self.peak, score)
        self.count += 1
        for d in drivers:
            have = self.sensors.get(d["sensor"])
            if have is None or (d.get("score") or 0) > (have.get("score") or 0):
                self.sensors[d["sensor"]] = d

    def top(self) -> list[dict]:
        ranked = sorted(self.sensors.values(), key=lambda d: -(d.get("score") or 0))
        return ranked[:TOP_SENSORS]


class AlertTracker:
    """Per machine, the open alert: ``step`` feeds anomalous time steps in time order, ``close_if_quiet`` closes
    on reading time; ``write`` puts the changes into the caller's transaction and returns the events to publish
    after its commit."""

    def __init__(self, quiet_ms: int):
        self.quiet_ms = quiet_ms
        self.open: dict[int, OpenAlert] = {}
        self._changes: list[tuple[OpenAlert, str, int | None]] = []  # (alert, change, closed ms)

    def load(self, session: Session) -> None:
        self.open.clear()
        for a in session.scalars(select(Alert).where(Alert.status == "open", Alert.kind == "anomaly")):
            ms = lambda d: int((d if d.tzinfo else d.replace(tzinfo=dt.UTC)).timestamp() * 1000)  # noqa: E731
            alert = OpenAlert(a.id, a.machine_id, ms(a.opened_at), ms(a.last_at), a.peak_score, a.anomalous_readings)
            alert.sensors = {d["sensor"]: d for d in a.sensors}
            alert.model_id = a.model_id
            self.open[a.machine_id] = alert

    def step(self, machine_id: int, ms: int, score: float, drivers: list[dict], model_id: int | None) -> None:
        cur = self.open.get(machine_id)
        if cur is not None and ms - cur.last_ms > self.quiet_ms:
            self._close(cur, cur.last_ms + self.quiet_ms)
            cur = None
        if cur is None:
            cur = OpenAlert(None, machine_id, ms, ms, score, 0, model_id=model_id)
            self.open[machine_id] = cur
            cur.add(ms, score, drivers)
            self._changes.append((cur, "opened", None))
        else:
            cur.add(ms, score, drivers)
            if not any(a is cur for a, _, _ in self._changes):
                self._changes.append((cur, "extended", None))

    def close_if_quiet(self, machine_id: int, newest_ms: int) -> None:
        cur = self.open.get(machine_id)
        if cur is not None and newest_ms - cur.last_ms > self.quiet_ms:
            self._close(cur, cur.last_ms + self.quiet_ms)

    def drop(self, machine_id: int) -> None:
        self.open.pop(machine_id, None)

    def _close(self, alert: OpenAlert, closed_ms: int) -> None:
        self.open.pop(alert.machine_id, None)
        self._changes = [c for c in self._changes if c[0] is not alert or c[1] == "opened"]
        self._changes.append((alert, "closed", closed_ms))

    def discard(self) -> None:
        """The transaction failed: forget the pending changes (the open alerts reload from the database)."""
        self._changes.clear()

    def write(self, session: Session, machine_names: dict[int, str]) -> list[AlertChanged]:
        changes, self._changes = self._changes, []
        rows: list[tuple[Alert, str]] = []
        for alert, change, closed_ms in changes:
            row = session.get(Alert, alert.id) if alert.id is not None else None
            if row is None and alert.id is not None:
                continue  # deleted meanwhile (its machine was)
            if row is None:
                row = Alert(
                    machine_id=alert.machine_id,
                    kind="anomaly",
                    opened_at=_dt(alert.opened_ms),
                    last_at=_dt(alert.last_ms),
                    peak_score=alert.peak,
                    anomalous_readings=alert.count,
                    sensors=alert.top(),
                    model_id=alert.model_id,
                )
                session.add(row)
                session.flush()
                alert.id = row.id
            row.last_at, row.peak_score, row.anomalous_readings = _dt(alert.last_ms), alert.peak, alert.count
            row.sensors = alert.top()
            if closed_ms is not None:
                row.status, row.closed_at = "closed", _dt(closed_ms)
            rows.append((row, change))
        # an alert opened and closed in one batch is told as opened, then closed
        return [AlertChanged(alert=alert_dict(r, machine_names.get(r.machine_id, "?")), change=c) for r, c in rows]


# -- as resources --------------------------------------------------------------------------------------------------
def list_alerts(
    session: Session,
    machine_id: int | None,
    status: str | None,
    acknowledged: bool | None,
    limit: int,
    before: int | None,
) -> list[tuple[Alert, str, str | None]]:
    q = (
        select(Alert, Machine.name, User.name)
        .join(Machine, Machine.id == Alert.machine_id)
        .outerjoin(User, User.id == Alert.acknowledged_by)
        .order_by(Alert.id.desc())
        .limit(limit)
    )
    if machine_id is not None:
        q = q.where(Alert.machine_id == machine_id)
    if status is not None:
        q = q.where(Alert.status == status)
    if acknowledged is not None:
        q = q.where(Alert.acknowledged_at.is_not(None) if acknowledged else Alert.acknowledged_at.is_(None))
    if before is not None:
        q = q.where(Alert.id < before)
    return [tuple(r) for r in session.execute(q).all()]


def get_alert(session: Session, alert_id: int) -> tuple[Alert, str, str | None]:
    row = session.execute(
        select(Alert, Machine.name, User.name)
        .join(Machine, Machine.id == Alert.machine_id)
        .outerjoin(User, User.id == Alert.acknowledged_by)
        .where(Alert.id == alert_id)
    ).one_or_none()
    if row is None:
        raise NotFound(f"no alert {alert_id}")
    return tuple(row)


def comments(session: Session, alert_id: int) -> list[tuple[AlertComment, str | None]]:
    return [
        tuple(r)
        for r in session.execute(
            select(AlertComment, User.name)
            .outerjoin(User, User.id == AlertComment.user_id)
            .where(AlertComment.alert_id == alert_id)
            .order_by(AlertComment.id)
        )
    ]


def acknowledge(session: Session, bus: EventBus, alert_id: int, user_id: int | None, comment: str | None) -> dict:
    with session.begin():
        a, machine, _ = get_alert(session, alert_id)
        if a.acknowledged_at is not None:
            raise Conflict(f"alert {alert_id} is already acknowledged")
        a.acknowledged_by, a.acknowledged_at = user_id, now()
        if comment:
            session.add(AlertComment(alert_id=a.id, user_id=user_id, text=comment))
        who = session.get(User, user_id).name if user_id is not None else None
        out = alert_dict(a, machine, who)
    bus.publish(AlertChanged(alert=out, change="acknowledged"))
    return out


def add_comment(session: Session, bus: EventBus, alert_id: int, user_id: int | None, text: str) -> AlertComment:
    with session.begin():
        a, machine, acked = get_alert(session, alert_id)
        row = AlertComment(alert_id=a.id, user_id=user_id, text=text)
        session.add(row)
        out = alert_dict(a, machine, acked)
    bus.publish(AlertChanged(alert=out, change="commented"))
    return row
