"""Typed events on one bus. Something that happened (an inspection stored, a model activated, a job's progress;
the engines add machine states, alerts, plan changes) is one event class, published once, after its database
commit, and every interested part subscribes: WebSocket fan-out, metrics, the search index, duplicate spotting.

The bus is in-process by default. With a transport (``linewatch.core.transports``: Redis or RabbitMQ, the
brokers the service already uses for jobs) events also reach the buses of other processes (workers, other
service instances), so they learn of changes without polling the database. An event arrives on each bus once:
its own process delivers it directly, the transport delivers only other processes' events.

Subscribers that keep per-process state which the database already holds for everyone (Prometheus counters,
the search index's in-memory additions) subscribe ``local_only``; WebSocket fan-out takes every event.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

log = logging.getLogger("linewatch.events")

EVENT_TYPES: dict[str, type[Event]] = {}


@dataclass(frozen=True, kw_only=True)
class Event:
    """Subclass with a ``type`` name and the fields clients receive. Fields declared with ``local()`` travel only
    within the process that published the event (ORM rows, vectors): never on the wire, never to WebSockets."""

    type: ClassVar[str] = ""

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        if cls.type:
            if cls.type in EVENT_TYPES and EVENT_TYPES[cls.type] is not cls:
                raise ValueError(f"event type {cls.type!r} is declared twice")
            EVENT_TYPES[cls.type] = cls

    def message(self) -> dict[str, Any]:
        """What clients receive: ``{"type": ..., <public fields>}``."""
        out = {"type": self.type}
        for f in dataclasses.fields(self):
            if not f.metadata.get("local"):
                out[f.name] = getattr(self, f.name)
        return out

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> Event:
        kind = EVENT_TYPES.get(message.get("type", ""))
        if kind is None:
            raise ValueError(f"unknown event type {message.get('type')!r}")
        names = {f.name for f in dataclasses.fields(kind) if not f.metadata.get("local")}
        return kind(**{k: v for k, v in message.items() if k in names})


def local(default: Any = None) -> Any:
    """A field that stays in the publishing process."""
    return field(default=default, compare=False, repr=False, metadata={"local": True})


# -- the events the service publishes today --------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class InspectionStored(Event):
    type: ClassVar[str] = "inspection"
    inspection: dict
    stored: Any = local()  # (row, station name, vectors) per image, for in-process subscribers


@dataclass(frozen=True, kw_only=True)
class InspectionReviewed(Event):
    type: ClassVar[str] = "review"
    inspection_id: int
    verdict: str
    defect_type: str | None = None


@dataclass(frozen=True, kw_only=True)
class InspectionDeleted(Event):
    type: ClassVar[str] = "inspection_deleted"
    inspection_id: int
    station_id: int | None = None
    promoted_id: int | None = None  # its first repeat, an original now
    vectors: Any = local()  # its search vectors' row, for the index of this process


@dataclass(frozen=True, kw_only=True)
class JobChanged(Event):
    type: ClassVar[str] = "job"
    job: dict


@dataclass(frozen=True, kw_only=True)
class ModelActivated(Event):
    type: ClassVar[str] = "model_activated"
    station: str
    model_id: int
    previous_model_id: int | None = None


@dataclass(frozen=True, kw_only=True)
class StationDrift(Event):
    """A station's drift level changed (stored first in ``station_drift``): its recent scores against the good scores
    its model's thresholds were set on (``linewatch.core.drift``)."""

    type: ClassVar[str] = "station_drift"
    station: str
    model_id: int | None
    level: str
    previous_level: str | None
    reason: str
    shift_auroc: float | None = None
    false_alarm_share: float | None = None
    at: str = ""


# -- machines: their definitions, models, alerts and live state ------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class MachinesChanged(Event):
    """Lines, machines or sensors were created, changed or deleted: ingesters reload what they know."""

    type: ClassVar[str] = "machines_changed"
    machines: list[str]
    change: str  # created, updated, deleted, imported


@dataclass(frozen=True, kw_only=True)
class MachineModelActivated(Event):
    type: ClassVar[str] = "machine_model_activated"
    machine: str
    model_id: int
    previous_model_id: int | None = None
    kind: str = "anomaly"  # anomaly (scores readings), rul or failure (maintenance predictions)


@dataclass(frozen=True, kw_only=True)
class MaintenancePredicted(Event):
    """A machine's newest maintenance prediction: RUL in cycles of ``cycle_s`` with its interval, or the failure
    probability, at the end of cycle ``cycle`` of its life."""

    type: ClassVar[str] = "maintenance"
    machine: str
    time: float
    cycle: int
    cycle_s: float
    rul: float | None = None
    rul_low: float | None = None
    rul_high: float | None = None
    failure_probability: float | None = None
    model_id: int | None = None


@dataclass(frozen=True, kw_only=True)
class AlertChanged(Event):
    type: ClassVar[str] = "alert"
    alert: dict
    change: str  # opened, extended, closed, acknowledged, commented


@dataclass(frozen=True, kw_only=True)
class MachineState(Event):
    """A machine's latest readings and health, at most about once a second per machine."""

    type: ClassVar[str] = "machine_state"
    machine: str
    line: str
    time: float  # the newest reading's time, seconds since the epoch
    health: float | None
    score: float | None  # the anomaly score of the newest scored time step
    values: dict  # sensor name -> newest value
    readings: int  # readings stored since the previous state event
    open_alert_id: int | None = None


# -- scheduling -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class ScheduleProgress(Event):
    """A solver's better plan while it runs: elapsed seconds, the incumbent's objective and the proven bound."""

    type: ClassVar[str] = "schedule_progress"
    schedule_id: int
    elapsed_s: float
    value: float
    bound: float | None = None


@dataclass(frozen=True, kw_only=True)
class PlanActivated(Event):
    """The line's plan is now this schedule."""

    type: ClassVar[str] = "plan_activated"
    schedule_id: int
    name: str
    summary: dict
    previous_id: int | None = None


# -- the digital twin ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class TwinEventStored(Event):
    """One event of a line's twin history, stored: a machine's state change or count report (``kind`` state), its
    health (``health``: open alerts, RUL) or a buffer's level (``buffer``). ``ts`` is ISO 8601."""

    type: ClassVar[str] = "twin_event"
    id: int
    line: str
    machine: str
    ts: str
    kind: str
    state: str | None = None
    reason: str | None = None
    job: str | None = None
    source: str = ""
    data: dict = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class TwinModelChanged(Event):
    """A line's twin model was stored (``version``) or deleted (``version`` None): twins rebuild that line."""

    type: ClassVar[str] = "twin_model"
    line: str
    version: int | None = None


# -- the bus ------------------------------------------------------------------------------------------------------
class Transport(Protocol):
    """Carries event messages between processes."""

    def start(self, deliver: Callable[[dict], None]) -> None:
        """Begin receiving; ``deliver`` is called with every message published by any process."""

    def send(self, message: dict) -> None: ...

    def close(self) -> None: ...


@dataclass(eq=False)
class _Subscription:
    callback: Callable[[Event], None]
    types: tuple[type[Event], ...] | None
    local_only: bool


class EventBus:
    def __init__(self, transport: Transport | None = None, origin: str | None = None):
        self.origin = origin or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.transport = transport
        self._subs: list[_Subscription] = []
        self._lock = threading.Lock()
        self.received = 0  # events delivered from other processes

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def subscribe(
        self,
        callback: Callable[[Event], None],
        types: tuple[type[Event], ...] | type[Event] | None = None,
        local_only: bool = False,
    ) -> Callable[[], None]:
        """Call ``callback`` for each event (of ``types``); the returned function unsubscribes."""
        if isinstance(types, type):
            types = (types,)
        sub = _Subscription(callback, types, local_only)
        with self._lock:
            self._subs = [*self._subs, sub]

        def unsubscribe() -> None:
            with self._lock:
                self._subs = [s for s in self._subs if s is not sub]

        return unsubscribe

    def publish(self, event: Event) -> None:
        """Deliver to this process's subscribers, then to other processes. Call it after the commit that made
        the event true. Never raises: a failing subscriber or transport is logged, the others still run."""
        self._deliver(event, local=True)
        if self.transport is not None:
            try:
                self.transport.send({"origin": self.origin, "event": event.message()})
            except Exception:
                log.exception("could not send a %s event to other processes", event.type)

    def receive(self, envelope: dict) -> None:
        """A message from the transport: delivered here unless this process sent it."""
        if envelope.get("origin") == self.origin:
            return
        try:
            event = Event.from_message(envelope["event"])
        except (KeyError, TypeError, ValueError) as e:
            log.warning("ignored an event from another process: %s", e)
            return
        self.received += 1
        self._deliver(event, local=False)

    def _deliver(self, event: Event, local: bool) -> None:
        for sub in self._subs:
            if sub.local_only and not local:
                continue
            if sub.types is not None and not isinstance(event, sub.types):
                continue
            try:
                sub.callback(event)
            except Exception:
                log.exception("an event subscriber failed on a %s event", event.type)
