"""The ingester: every reading, whatever brought it (MQTT, NATS JetStream, HTTP, a file import), takes one path.

Messages wait in a bounded queue; one thread takes them in batches (up to ``ingest_batch`` readings or
``ingest_flush_ms``), and per batch, in one database transaction: stores the readings (a reading delivered twice
is stored once), updates the roll-ups, keeps what it refused as dead letters with the reason, scores the new
readings with each machine's active model, stores the scores as the machine's ``_score`` series, and opens,
extends or closes alerts. After the commit it acknowledges the messages (an MQTT message is acknowledged only
once its readings are stored: a service killed before that gets them again from the broker), answers HTTP
callers, and publishes the events: alerts, and each machine's state at most once a second.

A database that is down stops the batch, not the ingester: broker messages are retried until it is back (and
stay unacknowledged meanwhile); HTTP callers get the error at once.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import bindparam, func, select, update

from linewatch.core.events import Event, MachineModelActivated, MachinesChanged, MachineState
from linewatch.services import readings
from linewatch.services.alerts import AlertTracker
from linewatch.services.context import AppContext
from linewatch.services.machine_models import MachineScorer
from linewatch.services.payloads import PayloadError, parse
from linewatch.store.tables import DeadLetter, Line, Machine, MachineModel, Sensor, now

log = logging.getLogger("linewatch.ingest")
QUEUE_MESSAGES = 2_000  # messages waiting at most; a full queue holds the broker back (backpressure)
STATE_EVERY_S = 1.0  # a machine's state event at most this often
CHECKPOINT_EVERY_S = 30.0
TOUCH_EVERY_S = 1.0  # a machine's row (newest reading time, health) is written at most this often
PRUNE_EVERY_S = 600.0
RETRY_S = 1.0
MAX_PAYLOAD_KEPT = 4096
# put on the queue by ``stop``: a loop waiting for a message sees the stop at once rather than at its next poll
WAKE = object()
HEALTH_ALPHA = 0.05  # weight of a new time step in a machine's health


@dataclass
class Message:
    source: str  # mqtt, nats, http, import
    topic: str  # the MQTT topic (or subject) it came on; for HTTP the machine's name
    payload: bytes | object  # raw bytes, or an already decoded JSON value
    machine: str | None = None  # known machine (HTTP, import); else taken from the topic
    ack: Callable[[], None] | None = None
    future: Future | None = None
    score: bool = True  # imports of history are stored, not scored
    received: float = field(default_factory=time.time)


@dataclass
class Outcome:
    """What became of one message's readings."""

    stored: int = 0
    duplicates: int = 0
    refused: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict:
        return {
            "stored": self.stored,
            "duplicates": self.duplicates,
            "refused": sum(self.refused.values()),
            "reasons": dict(self.refused),
        }


@dataclass
class MachineInfo:
    id: int
    name: str
    line: str
    sensors: dict[str, int]  # name -> sensor id
    ranges: dict[int, tuple[float | None, float | None]]  # sensor id -> (low, high)
    names: dict[int, str]  # sensor id -> name
    score_sensor: int | None
    active_model_id: int | None


class Directory:
    """The machines and sensors the ingester knows, reloaded when they change."""

    def __init__(self, ctx: AppContext):
        self.ctx = ctx
        self.machines: dict[str, MachineInfo] = {}
        self.by_id: dict[int, MachineInfo] = {}
        self.stale = True

    def load(self) -> None:
        with self.ctx.sessions() as s:
            lines = dict(s.execute(select(Line.id, Line.name)).all())
            rows = s.execute(select(Machine.id, Machine.name, Machine.line_id, Machine.active_model_id)).all()
            sensors = s.execute(select(Sensor.id, Sensor.machine_id, Sensor.name, Sensor.kind, Sensor.low, Sensor.high))
            per: dict[int, list] = {}
            for row in sensors:
                per.setdefault(row.machine_id, []).append(row)
        machines = {}
        for mid, name, line_id, active in rows:
            ss = per.get(mid, [])
            real = [r for r in ss if r.kind == "sensor"]
            machines[name] = MachineInfo(
                id=mid,
                name=name,
                line=lines.get(line_id, ""),
                sensors={r.name: r.id for r in real},
                ranges={r.id: (r.low, r.high) for r in real if r.low is not None or r.high is not None},
                names={r.id: r.name for r in real},
                score_sensor=next((r.id for r in ss if r.kind == "score"), None),
                active_model_id=active,
            )
        self.machines = machines
        self.by_id = {m.id: m for m in machines.values()}
        self.stale = False


class Ingester:
    def __init__(self, ctx: AppContext):
        self.ctx = ctx
        s = ctx.settings
        self.queue: queue.Queue[Message] = queue.Queue(QUEUE_MESSAGES)
        self.directory = Directory(ctx)
        self.alerts = AlertTracker(int(s.alert_quiet_s * 1000))
        self.scorers: dict[int, MachineScorer | None] = {}  # machine id -> its active model, running
        self.health: dict[int, float] = {}
        self._state_at: dict[int, float] = {}
        self._pending_state: dict[int, dict] = {}
        self._reload_models: set[int] = set()
        self._deleted: set[int] = set()  # machines deleted since the last batch: their state is let go
        self._touched: dict[int, int] = {}  # machine id -> newest reading (ms) not yet written to its row
        self._touched_at: dict[int, float] = {}
        self.live_dir = Path(s.data_dir) / "machines" / "live"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._unsubscribe: list[Callable[[], None]] = []
        self.batches = 0

    # -- life ---------------------------------------------------------------------------------------------------
    def start(self) -> None:
        self.directory.load()
        with self.ctx.sessions() as s:
            self.alerts.load(s)
        bus = self.ctx.bus
        self._unsubscribe = [
            bus.subscribe(lambda e: self._changed(e), (MachinesChanged, MachineModelActivated)),
        ]
        self.ctx.metrics.alerts_open.set(len(self.alerts.open))
        self._thread = threading.Thread(target=self._loop, name="linewatch-ingest", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Store what is queued, checkpoint the running models, stop."""
        for u in self._unsubscribe:
            u()
        self._stop.set()
        with contextlib.suppress(queue.Full):  # a full queue: the loop is busy with it and sees the stop next
            self.queue.put_nowait(WAKE)
        if self._thread is not None:
            self._thread.join(timeout)
        self.checkpoint()

    def _changed(self, event: Event) -> None:
        self.directory.stale = True
        if isinstance(event, MachineModelActivated):
            m = self.directory.machines.get(event.machine)
            if m is not None:
                self._reload_models.add(m.id)
        elif isinstance(event, MachinesChanged) and event.change == "deleted":
            for name in event.machines:
                m = self.directory.machines.get(name)
                if m is not None:
                    self._deleted.add(m.id)

    # -- input --------------------------------------------------------------------------------------------------
    def submit(self, message: Message, timeout: float | None = None) -> None:
        """Queue a message; blocks while the queue is full (the broker then waits with the next ones)."""
        self.queue.put(message, timeout=timeout)

    def ingest(self, machine: str, payload: object, source: str = "http", score: bool = True) -> Future:
        """Queue a decoded payload for a known machine; the future gives its ``Outcome``."""
        fut: Future = Future()
        self.submit(Message(source, machine, payload, machine=machine, future=fut, score=score), timeout=30)
        return fut

    # -- the loop -----------------------------------------------------------------------------------------------
    def _take(self) -> list[Message]:
        try:  # once stopping, what is left is taken without waiting for more
            first = self.queue.get_nowait() if self._stop.is_set() else self.queue.get(timeout=0.2)
        except queue.Empty:
            return []
        if first is WAKE:
            return []
        batch, deadline = [first], time.monotonic() + self.ctx.settings.ingest_flush_ms / 1000
        size = 0
        while size < self.ctx.settings.ingest_batch:
            left = deadline - time.monotonic()
            try:
                msg = self.queue.get(timeout=max(left, 0)) if left > 0 else self.queue.get_nowait()
            except queue.Empty:
                break
            if msg is WAKE:
                break
            batch.append(msg)
            size += len(msg.payload) // 20 if isinstance(msg.payload, bytes | str) else 1
            if msg.source == "import":
                break
        return batch

    def _loop(self) -> None:
        last_checkpoint = last_prune = time.monotonic()
        while True:
            if time.monotonic() - last_prune > PRUNE_EVERY_S:
                last_prune = time.monotonic()
                try:
                    self.prune()
                except Exception as e:
                    log.warning("old readings not pruned: %s", e)
            batch = self._take()
            if not batch:
                if self._stop.is_set() and self.queue.empty():
                    return
                self._flush_states(force=False)
                continue
            for group in (
                [m for m in batch if m.score],
                [m for m in batch if not m.score],
            ):
                if group:
                    self._process_until_done(group)
            if time.monotonic() - last_checkpoint > CHECKPOINT_EVERY_S:
                self.checkpoint()
                last_checkpoint = time.monotonic()

    def _process_until_done(self, batch: list[Message]) -> None:
        while True:
            try:
                self.process(batch)
                return
            except Exception as e:
                self.alerts.discard()
                with contextlib.suppress(Exception), self.ctx.sessions() as s:  # the database may still be down
                    self.alerts.load(s)
                log.warning("readings not stored, retrying in %.0f s: %s", RETRY_S, e)
                waiting = []
                for m in batch:
                    if m.future is not None:  # an HTTP caller hears it now
                        if not m.future.done():
                            m.future.set_exception(e)
                    else:
                        waiting.append(m)
                if not waiting:
                    return
                batch = waiting
                time.sleep(RETRY_S)

    # -- one batch ----------------------------------------------------------------------------------------------
    def _machine_of(self, msg: Message) -> tuple[MachineInfo | None, str | None]:
        d = self.directory
        if d.stale:
            d.load()
        if msg.machine is not None:
            m = d.machines.get(msg.machine)
            return (m, None) if m is not None else (None, f"unknown machine {msg.machine!r}")
        prefix = self.ctx.settings.mqtt_topic_prefix.rstrip("/") + "/"
        topic = msg.topic
        rest = topic[len(prefix) :] if topic.startswith(prefix) else topic
        parts = rest.split("/")
        if len(parts) != 2:
            return None, f"topic {topic!r} is not {prefix}<line>/<machine>"
        line, name = parts
        m = d.machines.get(name)
        if m is None:
            d.load()  # created a moment ago?
            m = d.machines.get(name)
        if m is None:
            return None, f"unknown machine {name!r}"
        if m.line != line:
            return None, f"machine {name!r} is on line {m.line!r}, not {line!r}"
        return m, None

    def process(self, batch: list[Message]) -> None:
        settings = self.ctx.settings
        while self._deleted:
            mid = self._deleted.pop()
            self.alerts.drop(mid)
            self.scorers.pop(mid, None)
            self.health.pop(mid, None)
            self._pending_state.pop(mid, None)
            self._touched.pop(mid, None)
        now_ms = int(time.time() * 1000)
        future_ms = int(settings.max_future_s * 1000)
        outcomes = [Outcome() for _ in batch]
        dead: list[dict] = []
        parts: list[readings.Rows] = []
        owners: list[np.ndarray] = []  # message index per row
        machines_of_rows: list[np.ndarray] = []
        for i, msg in enumerate(batch):
            out = outcomes[i]

            def refuse(reason: str, count: int = 1, msg=msg, out=out) -> None:
                out.refused[reason] += count
                payload = msg.payload
                if not isinstance(payload, bytes | str):
                    payload = json.dumps(payload, default=str)[: MAX_PAYLOAD_KEPT * 2]
                if isinstance(payload, bytes):
                    payload = payload[:MAX_PAYLOAD_KEPT].decode("utf-8", "replace")
                dead.append(
                    {
                        "source": msg.source,
                        "topic": msg.topic[:300],
                        "reason": reason,
                        "count": count,
                        "payload": payload[:MAX_PAYLOAD_KEPT],
                    }
                )

            m, why = self._machine_of(msg)
            if m is None:
                refuse(why or "unknown machine")
                continue
            payload = msg.payload
            if isinstance(payload, bytes | str):
                try:
                    payload = json.loads(payload)
                except (ValueError, UnicodeDecodeError):
                    refuse("not JSON")
                    continue
            try:
                parsed = parse(payload, now_ms, future_ms)
            except PayloadError as e:
                refuse(str(e))
                continue
            for reason, count in parsed.refused.items():
                refuse(reason, count)
            for sensor, (ts, values) in parsed.sensors.items():
                sid = m.sensors.get(sensor)
                if sid is None:
                    refuse(f"unknown sensor {sensor!r} of machine {m.name!r}", len(ts))
                    continue
                parts.append(readings.Rows(np.full(len(ts), sid, np.int64), np.asarray(ts, np.int64), values))
                owners.append(np.full(len(ts), i))
                machines_of_rows.append(np.full(len(ts), m.id))
        rows = readings.Rows.concat(parts)
        owner = np.concatenate(owners) if owners else np.empty(0, int)
        row_machine = np.concatenate(machines_of_rows) if machines_of_rows else np.empty(0, int)
        events: list[Event] = []
        with self.ctx.sessions() as s, s.begin():
            conn = s.connection()
            new = readings.store(conn, rows)
            if dead:
                s.add_all([DeadLetter(**d) for d in dead])
            if len(new):
                # which message each new reading came from: its (sensor, time) key among the batch's
                pos = _positions(rows, new)
                np.add.at(stored := np.zeros(len(batch), int), owner[pos], 1)
                new_machine = row_machine[pos]
                for i, n in enumerate(stored):
                    outcomes[i].stored = int(n)
                if batch[0].score:
                    self._score(conn, new, new_machine)
                self._touch(s, new, new_machine, force=any(m.future is not None for m in batch))
            for i in range(len(batch)):
                accepted = int((owner == i).sum())
                outcomes[i].duplicates = accepted - outcomes[i].stored
            names = {m.id: m.name for m in self.directory.machines.values()}
            events[:0] = self.alerts.write(s, names)
        committed = time.time()
        for msg, out in zip(batch, outcomes, strict=True):
            if msg.ack is not None:
                try:
                    msg.ack()
                except Exception as e:  # the broker connection dropped: it sends the message again
                    log.warning("could not acknowledge a message: %s", e)
            if msg.future is not None and not msg.future.done():
                msg.future.set_result(out)
        self._count(batch, outcomes, new, committed)
        for event in events:
            self.ctx.bus.publish(event)
        self._flush_states(force=False)
        self.batches += 1

    # -- scoring, alerts, state ---------------------------------------------------------------------------------
    def _scorer(self, m: MachineInfo) -> MachineScorer | None:
        if m.id in self._reload_models:
            self._reload_models.discard(m.id)
            self.scorers.pop(m.id, None)
            self.alerts.close_if_quiet(m.id, 2**62)  # a new model: the old one's alert ends
        if m.id not in self.scorers or (
            self.scorers[m.id] is not None and self.scorers[m.id].model_id != m.active_model_id
        ):
            scorer = None
            if m.active_model_id is not None:
                with self.ctx.sessions() as s:
                    mm = s.get(MachineModel, m.active_model_id)
                    path = mm.path if mm is not None and mm.status == "ready" else None
                    method = mm.method if mm is not None else None
                if path:
                    try:
                        scorer = MachineScorer.open(m.active_model_id, path, self.live_dir / str(m.id), method)
                    except Exception as e:
                        log.error("machine %s: its model %s cannot be loaded: %s", m.name, m.active_model_id, e)
            self.scorers[m.id] = scorer
        return self.scorers[m.id]

    def _score(self, conn, new: readings.Rows, new_machine: np.ndarray) -> None:
        score_rows: list[readings.Rows] = []
        for mid in np.unique(new_machine):
            m = self.directory.by_id.get(int(mid))
            if m is None:
                continue
            sel = new_machine == mid
            sensor, ts, value = new.sensor[sel], new.ts[sel], new.value[sel]
            anomalous: list[tuple[int, float, list[dict]]] = []
            scorer = self._scorer(m)
            if scorer is not None:
                cols = np.array([scorer.column.get(m.names.get(int(x), ""), -1) for x in sensor])
                known = cols >= 0
                steps, machine_score, per_sensor, alert = scorer.score(cols[known], ts[known], value[known])
                if len(steps):
                    if m.score_sensor is not None:
                        score_rows.append(
                            readings.Rows(np.full(len(steps), m.score_sensor, np.int64), steps, machine_score)
                        )
                    h = self.health.get(m.id, 1.0)
                    inst = np.clip(1 - machine_score / (2 * scorer.threshold), 0, 1)
                    for v in inst.tolist():  # an exponential average per time step
                        h += HEALTH_ALPHA * (v - h)
                    self.health[m.id] = h
                    for k in np.flatnonzero(alert):
                        order = np.argsort(-per_sensor[k])[:5]
                        drivers = [
                            {"sensor": scorer.names[j], "score": round(float(per_sensor[k, j]), 3)}
                            for j in order
                            if per_sensor[k, j] > 0
                        ]
                        anomalous.append((int(steps[k]), float(machine_score[k]), drivers))
                    self._note_state(m, float(machine_score[-1]))
            for sid, (low, high) in m.ranges.items():
                here = sensor == sid
                if not here.any():
                    continue
                v, t = value[here], ts[here]
                out = ((v < low) if low is not None else False) | ((v > high) if high is not None else False)
                for k in np.flatnonzero(out):
                    x = float(v[k])
                    reason = f"below {low:g}" if low is not None and x < low else f"above {high:g}"
                    anomalous.append((int(t[k]), 0.0, [{"sensor": m.names[sid], "value": x, "reason": reason}]))
            anomalous.sort(key=lambda a: a[0])
            for ms, sc, drivers in anomalous:
                self.alerts.step(m.id, ms, sc, drivers, scorer.model_id if scorer is not None else None)
            self.alerts.close_if_quiet(m.id, int(ts.max()))
            last = {}
            for sid in np.unique(sensor):
                k = np.flatnonzero(sensor == sid)
                j = k[np.argmax(ts[k])]
                last[m.names.get(int(sid), str(sid))] = float(value[j])
            st = self._pending_state.setdefault(m.id, {"values": {}, "readings": 0, "time": 0})
            st["values"].update(last)
            st["readings"] += int(sel.sum())
            st["time"] = max(st["time"], int(ts.max()))
        if score_rows:
            readings.store(conn, readings.Rows.concat(score_rows))

    def _note_state(self, m: MachineInfo, score: float) -> None:
        st = self._pending_state.setdefault(m.id, {"values": {}, "readings": 0, "time": 0})
        st["score"] = score

    def _touch(self, s, new: readings.Rows, new_machine: np.ndarray, force: bool = False) -> None:
        """Each machine's newest reading time and health, in the batch's transaction: at most once every
        ``TOUCH_EVERY_S`` per machine (one statement for all of them), the latest values in between."""
        t = time.monotonic()
        for mid in np.unique(new_machine):
            mid = int(mid)
            newest = int(new.ts[new_machine == mid].max())
            self._touched[mid] = max(self._touched.get(mid, 0), newest)
        due = [mid for mid in self._touched if force or t - self._touched_at.get(mid, 0) >= TOUCH_EVERY_S]
        if not due:
            return
        at = now()
        rows = []
        for mid in due:
            h = self.health.get(mid)
            rows.append(
                {
                    "mid": mid,
                    "last": readings_time(self._touched.pop(mid)),
                    "health": None if h is None else round(h, 4),
                    "health_at": None if h is None else at,
                }
            )
            self._touched_at[mid] = t
        table = Machine.__table__
        s.connection().execute(
            update(table)
            .where(table.c.id == bindparam("mid"))
            .values(
                last_reading_at=bindparam("last"),
                health=func.coalesce(bindparam("health"), table.c.health),
                health_at=func.coalesce(bindparam("health_at"), table.c.health_at),
            ),
            rows,
        )

    def _flush_states(self, force: bool) -> None:
        t = time.monotonic()
        for mid, st in list(self._pending_state.items()):
            if not force and t - self._state_at.get(mid, 0) < STATE_EVERY_S:
                continue
            m = self.directory.by_id.get(mid)
            del self._pending_state[mid]
            if m is None:
                continue
            self._state_at[mid] = t
            health = self.health.get(mid)
            alert = self.alerts.open.get(mid)
            if health is not None:
                self.ctx.metrics.machine_health.labels(m.name).set(health)
            self.ctx.bus.publish(
                MachineState(
                    machine=m.name,
                    line=m.line,
                    time=st["time"] / 1000,
                    health=None if health is None else round(health, 4),
                    score=st.get("score"),
                    values=st["values"],
                    readings=st["readings"],
                    open_alert_id=alert.id if alert is not None else None,
                )
            )
        self.ctx.metrics.alerts_open.set(len(self.alerts.open))

    def _count(self, batch: list[Message], outcomes: list[Outcome], new: readings.Rows, committed: float) -> None:
        metrics = self.ctx.metrics
        for msg, out in zip(batch, outcomes, strict=True):
            if out.stored:
                metrics.readings.labels(msg.source).inc(out.stored)
            for reason, n in out.refused.items():
                metrics.dead_letters.labels(msg.source, reason_kind(reason)).inc(n)
            metrics.ingest_lag.observe(max(0.0, committed - msg.received))

    def prune(self, now_ms: int | None = None) -> int:
        """Raw readings past ``readings_retention_days`` and minute roll-ups past ``rollup_retention_days`` are
        deleted, one sensor per transaction (the roll-ups keep their summary); the raw readings deleted."""
        s = self.ctx.settings
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        raw_before = now_ms - int(s.readings_retention_days * 86_400_000)
        minutes_before = now_ms - int(s.rollup_retention_days * 86_400_000)
        with self.ctx.sessions() as session:
            ids = session.scalars(select(Sensor.id)).all()
        dropped = 0
        for sid in ids:
            with self.ctx.engine.begin() as conn:
                dropped += readings.prune(conn, sid, raw_before, minutes_before)
        return dropped

    def checkpoint(self) -> None:
        for mid, scorer in list(self.scorers.items()):
            if scorer is None:
                continue
            try:
                scorer.checkpoint(self.live_dir / str(mid))
            except Exception as e:
                log.warning("machine %s: live state not checkpointed: %s", mid, e)


def _positions(rows: readings.Rows, new: readings.Rows) -> np.ndarray:
    """Where each new reading is among the batch's rows (the first row with its sensor and time)."""
    if len(rows) and rows.sensor.max() < 2**21 and rows.ts.max() < 2**42:  # one int64 key: to the year 2109
        key = (rows.sensor << 42) | rows.ts
        order = np.argsort(key, kind="stable")
        return order[np.searchsorted(key[order], (new.sensor << 42) | new.ts)]
    first: dict[tuple[int, int], int] = {}
    for i, k in enumerate(zip(rows.sensor.tolist(), rows.ts.tolist(), strict=True)):
        first.setdefault(k, i)
    return np.array([first[k] for k in zip(new.sensor.tolist(), new.ts.tolist(), strict=True)], dtype=np.int64)


def readings_time(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


def reason_kind(reason: str) -> str:
    """A reason without the names in it, as a metric label (bounded set of values)."""
    for prefix in ("unknown sensor", "unknown machine", "topic", "machine"):
        if reason.startswith(prefix):
            return prefix if prefix != "machine" else "wrong line"
    return reason.split(":")[0][:60]
