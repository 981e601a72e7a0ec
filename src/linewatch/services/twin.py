"""The digital twin in the service: per line, its model (stored, versioned) and its live state, kept from events.

Every change of a line's twin is one event and takes the one path events take in this service: stored in the
database (``twin_events``, the twin's history), then published on the bus as ``TwinEventStored`` (WebSocket clients,
other processes). The events come from the plant (machine state messages over MQTT on
``<prefix>/<line>/<machine>/state``, or ``POST /lines/{line}/events``) and from the service itself: an inspection at
a vision station that the model links to an inspection machine counts a good or a defective part there; an alert
opened or closed on a machine, and its newest maintenance prediction, change its health.

State events go through the engine's state machine (``linewatch.twin.events``): an event of a machine the model
does not have, or one that cannot follow the machine's state, is refused with the reason and kept as a dead letter;
each event is accepted or refused as a whole, and the accepted ones of a batch are stored in one transaction. The
state at any past time is rebuilt from the stored events by the same code, and so is the live state when the
service starts (or a line's model changes).
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import json
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, func, select

from linewatch.core.events import (
    AlertChanged,
    InspectionStored,
    MachinesChanged,
    MaintenancePredicted,
    TwinEventStored,
    TwinModelChanged,
)
from linewatch.errors import LinewatchError
from linewatch.services.context import AppContext
from linewatch.services.errors import NotFound
from linewatch.store.tables import Alert, DeadLetter, Line, LineModel, Machine, TwinEvent, now

log = logging.getLogger("linewatch.twin")
MAX_PAYLOAD_KEPT = 4096
KINDS = ("state", "health", "buffer")
STATE_FIELDS = {"machine", "state", "ts", "time", "reason", "cause", "job", "product", "good", "defective", "reworked"}
BUFFER_FIELDS = {"buffer", "level", "ts", "time"}
HEALTH_KEYS = ("open_alerts", "rul", "rul_low", "rul_high", "failure_probability", "cycle_s")


class TwinModelInvalid(LinewatchError):
    """A line model that does not validate: ``errors`` lists (path, message) for each problem."""

    def __init__(self, errors: list[tuple[str, str]]):
        first = f"{errors[0][0]}: {errors[0][1]}" if errors else "invalid"
        super().__init__(f"the line model is invalid: {first}")
        self.errors = errors


def iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat()


def _finite(x: Any) -> Any:
    """JSON without NaN or infinities (PostgreSQL's JSON refuses them): None in their place, recursively."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_finite(v) for v in x]
    return x


# -- the line model ---------------------------------------------------------------------------------------------------
def parse_model(doc: Any):
    """The engine's ``Line`` of a document, or TwinModelInvalid listing every problem by its path."""
    from linewatch.core.extras import require

    require("twin", "the digital twin")
    from linewatch.twin.model import TwinModelError, line_errors, line_from_dict

    errors = line_errors(doc)
    if errors:
        raise TwinModelInvalid(errors)
    try:
        return line_from_dict(doc)
    except TwinModelError as e:  # the checks agree with line_errors; kept as a guard
        raise TwinModelInvalid([("line", str(e))]) from None


def get_model(session, line: str) -> tuple[Line, LineModel]:
    row = session.scalar(select(Line).where(Line.name == line))
    model = None if row is None else session.scalar(select(LineModel).where(LineModel.line_id == row.id))
    if model is None:
        raise NotFound(f"line {line!r} has no twin model" if row is not None else f"unknown line {line!r}")
    return row, model


def model_out(line: str, m: LineModel) -> dict:
    return {"line": line, "version": m.version, "model": m.model, "updated_at": m.updated_at}


# -- events in ---------------------------------------------------------------------------------------------------
@dataclass
class Item:
    """One incoming event, checked: a machine's state event (``ev``) or a buffer's level."""

    kind: str
    machine: str
    ts: float
    ev: Any = None  # linewatch.twin.events.StateEvent
    level: int | None = None
    raw: Any = None


def parse_item(obj: Any, now_s: float, max_future_s: float, machine: str | None = None) -> Item:
    """One event of the API or an MQTT payload; LinewatchError says why it cannot be read. ``machine``: the name the
    topic gives (the payload need not repeat it)."""
    from linewatch.twin.events import EventError, StateEvent, parse_time

    if not isinstance(obj, dict):
        raise LinewatchError("expected a JSON object (machine, state, ts) or (buffer, level, ts)")
    when = obj.get("ts", obj.get("time"))
    try:
        ts = now_s if when is None else parse_time(when, "ts")
    except EventError as e:
        raise LinewatchError(str(e)) from None
    if ts > now_s + max_future_s:
        raise LinewatchError(f"ts: {iso(ts)} is too far in the future")
    if ts < 0:
        raise LinewatchError("ts: before 1970")
    if "level" in obj or "buffer" in obj:
        unknown = set(obj) - BUFFER_FIELDS
        if unknown:
            raise LinewatchError(f"{sorted(unknown)[0]}: unknown field of a buffer level")
        name = obj.get("buffer", machine)
        level = obj.get("level")
        if not isinstance(name, str) or not name:
            raise LinewatchError("buffer: is required")
        if isinstance(level, bool) or not isinstance(level, int | float) or level != int(level) or level < 0:
            raise LinewatchError(f"level: must be a whole number >= 0 (got {level!r})")
        return Item("buffer", name, ts, level=int(level), raw=obj)
    unknown = set(obj) - STATE_FIELDS
    if unknown:
        raise LinewatchError(f"{sorted(unknown)[0]}: unknown field")
    name = obj.get("machine", machine)
    if machine is not None and obj.get("machine") not in (None, machine):
        raise LinewatchError(f"machine: {obj['machine']!r} differs from the topic's {machine!r}")
    d = {
        "machine": name,
        "time": ts,
        "state": obj.get("state"),
        "cause": obj.get("reason", obj.get("cause")),
        "product": obj.get("job", obj.get("product")),
        **{k: obj[k] for k in ("good", "defective", "reworked") if k in obj},
    }
    for k in ("cause", "product"):
        limit = 200 if k == "cause" else 100
        if d[k] is not None and (
            not isinstance(d[k], str) or len(d[k]) > limit or any(ord(ch) < 32 or ord(ch) == 127 for ch in d[k])
        ):
            what = "reason" if k == "cause" else "job"
            raise LinewatchError(f"{what}: must be one line of text (up to {limit} characters)")
    try:
        ev = StateEvent.from_json(d)
    except EventError as e:
        raise LinewatchError(str(e)) from None
    return Item("state", ev.machine, ts, ev=ev, raw=obj)


@dataclass
class Applied:
    accepted: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)
    events: list[TwinEventStored] = field(default_factory=list)


# -- one line's live twin ----------------------------------------------------------------------------------------------
@dataclass
class LineTwin:
    name: str
    model: Any  # linewatch.twin.model.Line
    version: int
    sm: Any  # linewatch.twin.events.StateMachine
    health: dict[str, dict] = field(default_factory=dict)
    buffers: dict[str, tuple[int, float]] = field(default_factory=dict)  # name -> (level, ts)
    last_id: int = 0

    @property
    def machine_names(self) -> list[str]:
        return [m.name for m in self.model.machines]

    def capacity(self, buffer: str) -> tuple[bool, int | None]:
        b = next((b for b in self.model.buffers if b.name == buffer), None)
        return (b is not None, None if b is None else b.capacity)

    def replay(self, rows) -> None:
        """Apply stored events (in id order) without storing them: the live state a restart rebuilds."""
        for r in rows:
            self.last_id = max(self.last_id, r.id)
            if r.kind == "state":
                ev = state_event(r)
                if self.sm.problem(ev) is None:
                    self.sm._update(ev)
            elif r.kind == "health" and r.machine in self.machine_names:
                self.health[r.machine] = dict(r.data or {})
            elif r.kind == "buffer" and self.capacity(r.machine)[0]:
                self.buffers[r.machine] = ((r.data or {}).get("level", 0), r.ts)

    def snapshot(self, at: float) -> dict:
        return state_out(self.name, at, self.model, self.sm.status, self.health, self.buffers)


def state_event(r):
    from linewatch.twin.events import StateEvent

    d = r.data or {}
    return StateEvent(
        r.machine, r.ts, r.state, r.reason, d.get("good", 0), d.get("defective", 0), d.get("reworked", 0), r.job
    )


def state_out(line: str, at: float, model, status: dict, health: dict, buffers: dict) -> dict:
    machines = []
    for m in model.machines:
        st = status.get(m.name)
        h = health.get(m.name) or {}
        machines.append(
            {
                "machine": m.name,
                "state": st.state if st else None,
                "since": iso(st.since) if st else None,
                "reason": st.cause if st else None,
                "job": st.product if st else None,
                "good": st.good if st else 0,
                "defective": st.defective if st else 0,
                "reworked": st.reworked if st else 0,
                "health": {k: h.get(k) for k in ("open_alerts", "rul", "rul_low", "rul_high", "failure_probability")}
                | {"open_alerts": h.get("open_alerts") or 0},
            }
        )
    bufs = [
        {"buffer": b.name, "level": (buffers.get(b.name) or (None,))[0], "capacity": b.capacity} for b in model.buffers
    ]
    return {"line": line, "at": iso(at), "machines": machines, "buffers": bufs}


def event_message(r: TwinEvent) -> TwinEventStored:
    return TwinEventStored(
        id=r.id,
        line=r.line,
        machine=r.machine,
        ts=iso(r.ts),
        kind=r.kind,
        state=r.state,
        reason=r.reason,
        job=r.job,
        source=r.source,
        data=dict(r.data or {}),
    )


class TwinService:
    """The live twins of the lines that have a model. Thread-safe: one lock orders applying and storing."""

    def __init__(self, ctx: AppContext):
        self.ctx = ctx
        self.lines: dict[str, LineTwin] = {}
        self.lock = threading.RLock()
        self._unsubscribe: list = []

    # -- life -----------------------------------------------------------------------------------------------------
    def start(self) -> None:
        with self.ctx.sessions() as s:
            names = s.scalars(select(Line.name).join(LineModel, LineModel.line_id == Line.id)).all()
        for name in names:
            self.reload(name)
        bus = self.ctx.bus
        self._unsubscribe = [
            # hooks: the process that made the change turns it into twin events (stored once, not per process)
            bus.subscribe(self._on_inspection, InspectionStored, local_only=True),
            bus.subscribe(self._on_alert, AlertChanged, local_only=True),
            bus.subscribe(self._on_prediction, MaintenancePredicted, local_only=True),
            # other processes' twin events and model changes keep this process's live state in step
            bus.subscribe(self._on_remote_event, TwinEventStored),
            bus.subscribe(self._on_model, TwinModelChanged),
        ]

    def stop(self) -> None:
        for u in self._unsubscribe:
            u()
        self._unsubscribe = []

    def reload(self, line: str) -> LineTwin | None:
        """(Re)build a line's live twin from its stored model and every stored event (None: it has no model)."""
        from linewatch.twin.events import StateMachine

        with self.lock:
            with self.ctx.sessions() as s:
                try:
                    _row, m = get_model(s, line)
                except NotFound:
                    self.lines.pop(line, None)
                    return None
                model = parse_model(m.model)
                twin = LineTwin(line, model, m.version, StateMachine(frozenset(x.name for x in model.machines)))
                rows = s.scalars(select(TwinEvent).where(TwinEvent.line == line).order_by(TwinEvent.id)).all()
                twin.replay(rows)
            self.lines[line] = twin
            return twin

    def twin(self, line: str) -> LineTwin:
        t = self.lines.get(line)
        if t is None:
            t = self.reload(line)
        if t is None:
            with self.ctx.sessions() as s:
                get_model(s, line)  # raises NotFound naming what is missing
            raise NotFound(f"line {line!r} has no twin model")
        return t

    # -- the model -----------------------------------------------------------------------------------------------
    def put_model(self, line: str, doc: Any, user_id: int | None) -> dict:
        parse_model(doc)
        created_line = False
        with self.lock:
            with self.ctx.sessions() as s, s.begin():
                row = s.scalar(select(Line).where(Line.name == line))
                if row is None:
                    row = Line(name=line, description=(doc.get("description") or "")[:2000])
                    s.add(row)
                    s.flush()
                    created_line = True
                m = s.scalar(select(LineModel).where(LineModel.line_id == row.id))
                if m is None:
                    m = LineModel(line_id=row.id, model=doc, version=1, updated_by=user_id, updated_at=now())
                    s.add(m)
                else:
                    m.model, m.version, m.updated_by, m.updated_at = doc, m.version + 1, user_id, now()
                s.flush()
                out = model_out(line, m)
            self.reload(line)
        if created_line:
            self.ctx.bus.publish(MachinesChanged(machines=[], change="line created"))
        self.ctx.bus.publish(TwinModelChanged(line=line, version=out["version"]))
        return out

    def delete_model(self, line: str) -> None:
        with self.lock:
            with self.ctx.sessions() as s, s.begin():
                _row, m = get_model(s, line)
                s.delete(m)
            self.lines.pop(line, None)
        self.ctx.bus.publish(TwinModelChanged(line=line, version=None))

    # -- applying events -----------------------------------------------------------------------------------------
    def apply(self, line: str, items: list[Any], source: str, topic: str = "", machine: str | None = None) -> Applied:
        """Check, store and publish a batch of events (decoded JSON objects). Each is accepted or refused whole;
        the refused ones are dead letters with the reason. Raises NotFound when the line has no model."""
        twin = self.twin(line)
        settings = self.ctx.settings
        out = Applied()
        t_now = time.time()
        with self.lock:
            twin = self.lines.get(line) or twin
            saved = (copy.deepcopy(twin.sm.status), copy.deepcopy(twin.buffers))
            rows: list[TwinEvent] = []
            dead: list[DeadLetter] = []
            downs: list[str] = []
            for i, obj in enumerate(items):
                try:
                    item = parse_item(obj, t_now, settings.max_future_s, machine)
                    why = self._check(twin, item)
                except LinewatchError as e:
                    why = str(e)
                if why is not None:
                    out.rejected.append((i, why))
                    dead.append(_dead(source, topic or f"lines/{line}/events", why, obj))
                    continue
                if item.kind == "state":
                    ev = item.ev
                    prev = twin.sm.status.get(ev.machine)
                    was = prev.state if prev is not None else None  # _update changes the status in place
                    twin.sm._update(ev)
                    if ev.state == "down" and was != "down":
                        downs.append((ev.machine, ev.cause))
                    counts = {k: getattr(ev, k) for k in ("good", "defective", "reworked") if getattr(ev, k)}
                    rows.append(
                        TwinEvent(
                            line=line,
                            machine=ev.machine,
                            ts=ev.time,
                            kind="state",
                            state=ev.state,
                            reason=ev.cause,
                            job=ev.product,
                            source=source,
                            data=counts,
                        )
                    )
                else:
                    twin.buffers[item.machine] = (item.level, item.ts)
                    rows.append(
                        TwinEvent(
                            line=line,
                            machine=item.machine,
                            ts=item.ts,
                            kind="buffer",
                            source=source,
                            data={"level": item.level},
                        )
                    )
            try:
                with self.ctx.sessions() as s, s.begin():
                    s.add_all(rows)
                    s.add_all(dead)
                    s.flush()
                    out.events = [event_message(r) for r in rows]
            except BaseException:
                twin.sm.status, twin.buffers = saved  # nothing applied half-way: memory as before the batch
                raise
            if rows:
                twin.last_id = max(twin.last_id, max(r.id for r in rows))
            out.accepted = len(rows)
            for e in out.events:
                self.ctx.bus.publish(e)
        if dead:
            for _ in dead:
                self.ctx.metrics.dead_letters.labels(source, "twin event").inc()
        for name, cause in downs:
            self._machine_down(twin, name, cause, t_now)
        return out

    def _check(self, twin: LineTwin, item: Item) -> str | None:
        if item.kind == "buffer":
            known, cap = twin.capacity(item.machine)
            if not known:
                names = ", ".join(b.name for b in twin.model.buffers) or "none"
                return f"unknown buffer {item.machine!r} (buffers: {names})"
            if cap is not None and item.level > cap:
                return f"level: {item.level} is over the buffer's capacity {cap}"
            return None
        return twin.sm.problem(item.ev)

    def _store_health(self, line: str, machine: str, change: dict, source: str, ts: float | None = None) -> None:
        with self.lock:
            twin = self.lines.get(line)
            if twin is None or machine not in twin.machine_names:
                return
            h = {**(twin.health.get(machine) or {}), **change}
            if h == twin.health.get(machine):
                return
            row = TwinEvent(
                line=line, machine=machine, ts=ts or time.time(), kind="health", source=source, data=_finite(h)
            )
            with self.ctx.sessions() as s, s.begin():
                s.add(row)
                s.flush()
                msg = event_message(row)
            twin.health[machine] = h
            twin.last_id = max(twin.last_id, row.id)
            self.ctx.bus.publish(msg)

    # -- hooks: the service's own events --------------------------------------------------------------------------
    def _lines_with(self, machine: str) -> list[str]:
        return [n for n, t in list(self.lines.items()) if machine in t.machine_names]

    def _on_alert(self, event: AlertChanged) -> None:
        name = event.alert.get("machine")
        if event.change not in ("opened", "closed") or not name:
            return
        lines = self._lines_with(name)
        if not lines:
            return
        try:
            with self.ctx.sessions() as s:
                n = s.scalar(
                    select(func.count())
                    .select_from(Alert)
                    .join(Machine, Machine.id == Alert.machine_id)
                    .where(Machine.name == name, Alert.status == "open")
                )
            for line in lines:
                self._store_health(line, name, {"open_alerts": int(n or 0)}, "alert")
        except Exception:  # a hook must never break the ingester that published the alert
            log.exception("twin: machine %s's alert not applied", name)

    def _on_prediction(self, event: MaintenancePredicted) -> None:
        change = {
            "rul": event.rul,
            "rul_low": event.rul_low,
            "rul_high": event.rul_high,
            "failure_probability": event.failure_probability,
            "cycle_s": event.cycle_s,
        }
        try:
            for line in self._lines_with(event.machine):
                self._store_health(line, event.machine, change, "maintenance")
        except Exception:
            log.exception("twin: machine %s's maintenance prediction not applied", event.machine)

    def _on_inspection(self, event: InspectionStored) -> None:
        """An inspection at a vision station that a model links (``inspections[].station``) to its inspecting
        machine: one good or defective part counted there (a repeated upload is not a second part)."""
        ins = event.inspection
        if ins.get("duplicate_of") is not None:
            return
        station = ins.get("station")
        for line, twin in list(self.lines.items()):
            link = next((i for i in twin.model.inspections if i.station == station), None)
            if link is None:
                continue
            with self.lock:
                st = twin.sm.status.get(link.machine)
                # counted at the machine's latest event (in the running interval it is in), not at our clock: a
                # plant whose clock differs from ours (or a replay) must never see its next event out of order
                ts = st.last_time if st is not None else time.time()
            good = ins.get("verdict") == "good"
            obj = {
                "machine": link.machine,
                "state": st.state if st is not None else "running",
                "ts": ts,
                "good": int(good),
                "defective": int(not good),
            }
            if st is not None and st.cause:
                obj["reason"] = st.cause
            try:
                self.apply(line, [obj], "inspection", topic=f"station {station}")
            except Exception:
                log.exception("twin: inspection %s not counted on line %s", ins.get("id"), line)

    def _on_remote_event(self, event: TwinEventStored) -> None:
        """An event another process stored: applied to this process's live state (ours are applied already)."""
        with self.lock:
            twin = self.lines.get(event.line)
            if twin is None or event.id <= twin.last_id:
                return
            row = TwinEvent(
                id=event.id,
                line=event.line,
                machine=event.machine,
                ts=dt.datetime.fromisoformat(event.ts).timestamp(),
                kind=event.kind,
                state=event.state,
                reason=event.reason,
                job=event.job,
                source=event.source,
                data=event.data,
            )
            twin.replay([row])

    def _on_model(self, event: TwinModelChanged) -> None:
        t = self.lines.get(event.line)
        if event.version is None:
            self.lines.pop(event.line, None)
        elif t is None or t.version != event.version:
            try:
                self.reload(event.line)
            except Exception:
                log.exception("twin: line %s not rebuilt", event.line)

    # -- replanning ----------------------------------------------------------------------------------------------
    def _machine_down(self, twin: LineTwin, machine: str, cause: str | None, t: float) -> None:
        if not self.ctx.settings.replan_on_machine_down:
            return
        m = twin.model.machine(machine)
        mode = next((f for f in m.failures if f.cause == cause), m.failures[0] if m.failures else None)
        try:
            replan_for_machine_down(self.ctx, machine, t, mode.ttr_s.mean_value if mode is not None else None)
        except Exception as e:
            log.warning("twin: no replan after %s went down: %s", machine, e)

    # -- reading -------------------------------------------------------------------------------------------------
    def state(self, line: str, at: float | None = None) -> dict:
        twin = self.twin(line)
        if at is None:
            with self.lock:
                return twin.snapshot(time.time())
        from linewatch.twin.events import StateMachine

        past = LineTwin(line, twin.model, twin.version, StateMachine(frozenset(twin.machine_names)))
        with self.ctx.sessions() as s:
            rows = s.scalars(
                select(TwinEvent).where(TwinEvent.line == line, TwinEvent.ts <= at).order_by(TwinEvent.id)
            ).all()
        past.replay(rows)
        return past.snapshot(at)

    def state_events(self, line: str, before: float):
        """The line's stored state events up to ``before`` (one at ``before`` closes an interval in the range), as
        the engine's StateEvents, in stored order."""
        with self.ctx.sessions() as s:
            rows = s.scalars(
                select(TwinEvent)
                .where(TwinEvent.line == line, TwinEvent.kind == "state", TwinEvent.ts <= before)
                .order_by(TwinEvent.id)
            ).all()
            return [state_event(r) for r in rows]

    def oee(self, line: str, start: float, end: float) -> dict:
        from linewatch.twin.oee import compute_oee

        twin = self.twin(line)
        if not end > start:
            raise LinewatchError("to must be after from")
        if end - start > 366 * 86400:
            raise LinewatchError("the range is over a year: ask for a shorter one")
        rep = compute_oee(self.state_events(line, end), start, end, twin.model)
        return oee_out(rep)


def oee_out(rep) -> dict:
    """The engine's report as the API gives it: its JSON, with ``machine``/``shift`` names and ``start``/``end``."""
    from linewatch.twin.events import format_time

    j = rep.to_json()
    return _finite(
        {
            "from": j["from"],
            "to": j["to"],
            "line": j["line"],
            "machines": [{"machine": m["name"], **m} for m in j["machines"]],
            "shifts": [
                {
                    "shift": name,
                    "start": format_time(a),
                    "end": format_time(b),
                    **ln.to_json(),
                    "machines": [{"machine": m.name, **m.to_json()} for m in ms],
                }
                for name, a, b, ms, ln in rep.shifts
            ],
            "rejected": len(j["rejected"]),
        }
    )


def _dead(source: str, topic: str, reason: str, obj: Any) -> DeadLetter:
    payload = obj if isinstance(obj, str) else json.dumps(obj, default=str)
    return DeadLetter(  # PostgreSQL keeps no NUL in text
        source=source[:20],
        topic=topic[:300].replace("\x00", ""),
        reason=f"twin: {reason}".replace("\x00", ""),
        count=1,
        payload=payload[:MAX_PAYLOAD_KEPT].replace("\x00", ""),
    )


def list_events(
    session, line: str, start: float | None, end: float | None, machine: str | None, limit: int, cursor: int | None
) -> dict:
    """Stored events in time order (ties by id); ``cursor`` is the last id of the previous page."""
    q = select(TwinEvent).where(TwinEvent.line == line)
    if start is not None:
        q = q.where(TwinEvent.ts >= start)
    if end is not None:
        q = q.where(TwinEvent.ts < end)
    if machine is not None:
        q = q.where(TwinEvent.machine == machine)
    if cursor is not None:
        last = session.get(TwinEvent, cursor)
        if last is None or last.line != line:
            raise NotFound(f"cursor {cursor} is not an event of line {line!r}")
        q = q.where((TwinEvent.ts > last.ts) | ((TwinEvent.ts == last.ts) & (TwinEvent.id > last.id)))
    rows = session.scalars(q.order_by(TwinEvent.ts, TwinEvent.id).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "items": [
            {
                "id": r.id,
                "ts": iso(r.ts),
                "machine": r.machine,
                "kind": r.kind,
                "state": r.state,
                "reason": r.reason,
                "job": r.job,
                "source": r.source,
                "data": r.data or {},
            }
            for r in rows
        ],
        "next_cursor": rows[-1].id if more and rows else None,
    }


def forget_line_events(session, line: str) -> int:
    """Drop a line's history (not used by the API: history outlives a model change)."""
    return session.execute(delete(TwinEvent).where(TwinEvent.line == line)).rowcount


# -- replanning when a machine of the active plan goes down ------------------------------------------------------------
def replan_for_machine_down(ctx: AppContext, machine: str, t: float, repair_s: float | None = None):
    """Start the replan job of the active schedule for ``machine`` going down at ``t`` (epoch s), when the plan has
    a machine of that name; down for ``repair_s`` (the line model's mean repair time of the failure mode; None:
    indefinitely). Plan time 0 is the creation of the plan's first schedule (the root of its replans); one plan time
    unit is ``replan_time_unit_s`` seconds. Returns the job, or None when nothing is to be replanned."""
    from linewatch.services import schedules
    from linewatch.store.tables import Schedule

    with ctx.sessions() as s:
        active = s.scalar(select(Schedule).where(Schedule.active.is_(True)))
        if active is None:
            return None
        names = active.instance.get("machines") if isinstance(active.instance, dict) else None
        if not isinstance(names, list) or machine not in [str(x) for x in names]:
            return None
        root = active
        seen = {root.id}
        while root.parent_id is not None and root.parent_id not in seen:
            parent = s.get(Schedule, root.parent_id)
            if parent is None:
                break
            root = parent
            seen.add(root.id)
        origin = root.created_at
        if origin.tzinfo is None:
            origin = origin.replace(tzinfo=dt.UTC)
        active_id = active.id
    unit = ctx.settings.replan_time_unit_s
    at = max(0, int((t - origin.timestamp()) / unit))
    event = {"type": "machine_down", "time": at, "machine": machine}
    if repair_s is not None:
        event["until"] = at + max(1, math.ceil(repair_s / unit))
    with ctx.sessions() as s:
        job, child = schedules.start_replan(s, ctx, active_id, event, {}, None)
    log.info("twin: %s went down: replanning schedule %s as %s (job %s)", machine, active_id, child.id, job.id)
    return job


# -- machine state messages over MQTT ----------------------------------------------------------------------------------
class TwinInbox:
    """State messages from the plant's broker (``<prefix>/<line>/<machine>/state``), applied in order by one thread;
    each message is acknowledged after its events (or its dead letters) are committed. A database that is down
    holds the message (unacknowledged: the broker sends it again) and is retried."""

    RETRY_S = 1.0

    def __init__(self, ctx: AppContext, twin: TwinService):
        import queue

        self.ctx = ctx
        self.twin = twin
        self.queue: queue.Queue = queue.Queue(2000)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.handled = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="linewatch-twin-mqtt", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        import queue

        self._stop.set()
        with contextlib.suppress(queue.Full):  # wakes the loop; a full queue: it is busy and sees the stop next
            self.queue.put_nowait(None)
        if self._thread is not None:
            self._thread.join(timeout)

    def submit(self, topic: str, payload: bytes, ack) -> None:
        self.queue.put((topic, payload, ack))

    def _loop(self) -> None:
        import queue

        while True:
            try:  # once stopping, what is left is handled without waiting for more
                item = self.queue.get_nowait() if self._stop.is_set() else self.queue.get(timeout=0.2)
            except queue.Empty:
                if self._stop.is_set():
                    return
                continue
            if item is None:  # stop's wake-up
                continue
            topic, payload, ack = item
            while True:
                try:
                    self.handle(topic, payload)
                    break
                except Exception as e:
                    if self._stop.is_set():
                        return  # not acknowledged: the broker sends it again to the next service
                    log.warning("twin: state message not stored, retrying in %.0f s: %s", self.RETRY_S, e)
                    time.sleep(self.RETRY_S)
            try:
                if ack is not None:
                    ack()
            except Exception as e:
                log.warning("could not acknowledge a state message: %s", e)
            self.handled += 1

    def handle(self, topic: str, payload: bytes | str) -> Applied | None:
        prefix = self.ctx.settings.mqtt_topic_prefix.rstrip("/") + "/"
        rest = topic[len(prefix) :] if topic.startswith(prefix) else topic
        parts = rest.split("/")
        why = None
        if len(parts) != 3 or parts[2] != "state" or not parts[0] or not parts[1]:
            why = f"topic {topic!r} is not {prefix}<line>/<machine>/state"
        else:
            line, machine = parts[0], parts[1]
            try:
                doc = json.loads(payload)
            except (ValueError, UnicodeDecodeError):
                why = "not JSON"
            else:
                if isinstance(doc, dict) and isinstance(doc.get("events"), list):
                    doc = doc["events"]
                items = doc if isinstance(doc, list) else [doc]
                try:
                    return self.twin.apply(line, items, "mqtt", topic, machine=machine)
                except NotFound as e:
                    why = str(e)
        text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else str(payload)
        with self.ctx.sessions() as s, s.begin():
            s.add(_dead("mqtt", topic, why, text))
        self.ctx.metrics.dead_letters.labels("mqtt", "twin event").inc()
        return None


# -- simulation jobs ---------------------------------------------------------------------------------------------------
SIM_KIND = "twin_simulate"


def live_initial(twin: LineTwin, at: float) -> dict:
    """The simulation's start state from the live twin: machine states (a machine down keeps its failure mode's
    mean repair time less the time it has been down; a running one starts a fresh cycle) and buffer levels."""
    from linewatch.twin.sim import InitialState

    products = {p.name for p in twin.model.product_list}
    status = {}
    for name, st in twin.sm.status.items():
        st = copy.copy(st)
        if st.product not in products:
            st.product = None  # a job name the model does not know: the machine's first product
        status[name] = st
    init = InitialState.from_status(twin.model, status, at, {b: lv for b, (lv, _t) in twin.buffers.items()})
    return {
        "machines": {
            k: {"state": v.state, "remaining_s": v.remaining_s, "product": v.product, "cause": v.cause}
            for k, v in init.machines.items()
        },
        "buffers": init.buffers,
    }


def schedule_plan(ctx: AppContext, schedule_id: int, model) -> dict:
    """What a simulation of a schedule's plan needs: the schedule's plan document, checked against the line model
    (NotFound: no such schedule; Conflict: no plan yet, or machines the model lacks)."""
    from linewatch.services import schedules
    from linewatch.services.errors import Conflict
    from linewatch.twin.model import TwinModelError
    from linewatch.twin.plansim import as_plan, check_machines

    with ctx.sessions() as s:
        row = schedules.get_schedule(s, schedule_id)
        if row.plan is None or row.status != "solved":
            what = "is being solved" if row.status == "solving" else f"is {row.status or 'not solved'}"
            raise Conflict(f"schedule {schedule_id} has no plan yet ({what}): solve it, then simulate its plan")
        name, doc = row.name, row.plan
    try:
        check_machines(model, as_plan(doc))
    except TwinModelError as e:
        raise Conflict(f"schedule {schedule_id}: {e}") from None
    return {"id": schedule_id, "name": name, "plan": doc, "time_unit_s": ctx.settings.replan_time_unit_s}


def start_simulation(ctx: AppContext, line: str, request: dict, user_id: int | None):
    """Queue a simulation job of the line's model (its version now), from the live state when ``from_live``, with
    the scenarios compared to it. Bad scenarios are TwinModelInvalid now, not a failed job."""
    from linewatch.store.tables import Job
    from linewatch.twin.model import TwinModelError, apply_scenario, scenario_from_dict

    twin = ctx.twin.twin(line)
    with ctx.twin.lock:
        model_doc, version, model = twin.model.source(), twin.version, twin.model
        at = time.time()
        initial = live_initial(twin, at) if request.get("from_live") else None
    schedule = None
    if request.get("schedule_id") is not None:
        schedule = schedule_plan(ctx, int(request["schedule_id"]), model)
    names = set()
    for i, sc in enumerate(request.get("scenarios") or []):
        if sc["name"] in names or sc["name"] == "base":
            raise TwinModelInvalid([(f"scenarios[{i}].name", f"{sc['name']!r} is used twice (base is the model)")])
        names.add(sc["name"])
        try:
            changed = apply_scenario(model, scenario_from_dict({"name": sc["name"], **(sc.get("overrides") or {})}))
            if schedule is not None:
                from linewatch.twin.plansim import as_plan, check_machines

                check_machines(changed, as_plan(schedule["plan"]))
        except TwinModelError as e:
            raise TwinModelInvalid([(f"scenarios[{i}].overrides", str(e))]) from None
    params = {
        "line": line,
        "model": model_doc,
        "model_version": version,
        "request": request,
        "initial": initial,
        "start": at if request.get("from_live") else None,
        "schedule": schedule,
    }
    with ctx.sessions() as s, s.begin():
        job = Job(kind=SIM_KIND, params=_finite(params), created_by=user_id)
        s.add(job)
        s.flush()
        job_id = job.id
    ctx.jobs.submit(job_id)
    return job_id


def run_simulation(ctx: AppContext, job_id: int, params: dict, progress) -> dict:
    """Job kind ``twin_simulate``: the engine's replications of the base model and each scenario (same seeds)."""
    from linewatch.twin.experiments import compare
    from linewatch.twin.model import TwinModelError, line_from_dict, scenario_from_dict
    from linewatch.twin.sim import InitialState

    req = params["request"]
    try:
        line = line_from_dict(params["model"])
        scenarios = [scenario_from_dict({"name": s["name"], **(s.get("overrides") or {})}) for s in req["scenarios"]]
        initial = InitialState.from_json(params["initial"]) if params.get("initial") else None
    except TwinModelError as e:
        raise LinewatchError(str(e)) from None
    n = req["replications"]
    total = n * (1 + len(scenarios))
    order = ["base", *(s.name for s in scenarios)]
    progress("simulate", 0, total)

    def report(name: str, done: int, of: int) -> None:
        progress("simulate", order.index(name) * n + done, total)

    kw: dict[str, Any] = {"record": True}
    if initial is not None:
        kw["initial"] = initial
    if params.get("start") is not None:
        kw["start"] = float(params["start"])
    if params.get("schedule"):
        return _run_plan_simulation(params, line, scenarios, kw, progress)
    workers = min(ctx.settings.twin_simulation_workers, n)
    try:
        summaries = compare(line, scenarios, req["hours"], n, req["seed"], workers, report, **kw)
    except TwinModelError as e:
        raise LinewatchError(str(e)) from None
    return _finite(
        {
            "line": params["line"],
            "model_version": params["model_version"],
            "from_live": bool(params.get("initial")),
            "start": iso(params["start"]) if params.get("start") is not None else None,
            "hours": req["hours"],
            "replications": n,
            "scenarios": [s.to_json() for s in summaries],
        }
    )


PLAN_FIGURES = ("makespan", "weighted_tardiness", "tardiness", "late_jobs", "scrapped", "unfinished", "downtime")


def _run_plan_simulation(params: dict, line, scenarios: list, kw: dict, progress) -> dict:
    """The schedule's plan run on the base model and each scenario (same seeds): ``scenarios`` in the simulation
    result's shape (their stats the plan run's figures) and a ``plan`` section, the plan's own figures beside the
    base's simulated ones (means with confidence intervals) and each job's lateness."""
    from linewatch.twin.model import TwinModelError, apply_scenario
    from linewatch.twin.plansim import as_plan, run_plan

    req = params["request"]
    sched = params["schedule"]
    n = req["replications"]
    kw = {k: v for k, v in kw.items() if k in ("initial", "start")}
    kw.update(
        time_unit_s=float(sched["time_unit_s"]),
        release=req.get("plan_release") or "planned",
        durations=req.get("plan_durations") or "variability",
    )
    try:
        plan = as_plan(sched["plan"])
        lines = [("base", line)] + [(s.name, apply_scenario(line, s)) for s in scenarios]
        total = n * len(lines)
        progress("simulate", 0, total)
        summaries = []
        for i, (name, ln) in enumerate(lines):
            cb = lambda d, _t, _i=i: progress("simulate", _i * n + d, total)  # noqa: E731
            summaries.append(run_plan(ln, plan, n, req["seed"], cb, name=name, **kw))
    except TwinModelError as e:
        raise LinewatchError(str(e)) from None
    base = summaries[0]
    planned = base.planned
    return _finite(
        {
            "line": params["line"],
            "model_version": params["model_version"],
            "from_live": bool(params.get("initial")),
            "start": iso(params["start"]) if params.get("start") is not None else None,
            "hours": base.hours,
            "replications": n,
            "scenarios": [s.to_json() for s in summaries],
            "plan": {
                "schedule_id": sched["id"],
                "schedule": sched["name"],
                "objective": plan.objective,
                "solver": plan.solver,
                "time_unit_s": float(sched["time_unit_s"]),
                "release": kw["release"],
                "durations": kw["durations"],
                "planned": {k: planned[k] for k in ("makespan", "weighted_tardiness", "tardiness", "late_jobs")}
                | {"late": planned["late"]},
                "simulated": {k: base.stats[k].to_json() for k in PLAN_FIGURES},
                "late_share": sum(1 for r in base.results if r["late_jobs"] > 0) / n,
                "jobs": base.jobs,
            },
        }
    )


def simulation_out(job) -> dict:
    p = job.params or {}
    return {
        "id": job.id,
        "job_id": job.id,
        "line": p.get("line"),
        "status": job.status,
        "progress": job.progress,
        "message": job.message,
        "error": job.error,
        "model_version": p.get("model_version"),
        "request": p.get("request") or {},
        "result": job.result,
        "created_at": job.created_at,
    }


def list_simulations(session, line: str, limit: int) -> list:
    from linewatch.store.tables import Job

    rows = session.scalars(select(Job).where(Job.kind == SIM_KIND).order_by(Job.id.desc()).limit(5000)).all()
    return [j for j in rows if (j.params or {}).get("line") == line][:limit]


def get_simulation(session, line: str, sim_id: int):
    from linewatch.store.tables import Job

    job = session.get(Job, sim_id)
    if job is None or job.kind != SIM_KIND or (job.params or {}).get("line") != line:
        raise NotFound(f"no simulation {sim_id} of line {line!r}")
    return job
