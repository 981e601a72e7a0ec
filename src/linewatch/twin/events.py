"""Machine state events: the twin's history, whether they come from the plant or from the simulation.

An event says that ``machine`` entered ``state`` at ``time`` (seconds since the epoch), why (``cause``: a failure
mode, "off shift", ...), which product it is working on from then (``product``), and how many parts it completed
since its previous event (``good``, ``defective``, and of the defective ones how many went to ``reworked``; the rest
were scrapped). A machine only completes parts while running, so counts belong to the running interval the event
ends; an event may repeat the current state just to report counts (or a product change). The product stays until
an event names another, and is cleared when the machine is starved (it holds no part).

:class:`StateMachine` applies events one at a time and rejects an impossible one with a reason, leaving the state
as it was (never applied half-way); :func:`rebuild` replays an event list to the state at any time."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from linewatch.errors import LinewatchError

STATES = ("running", "idle", "blocked", "starved", "down", "maintenance")
# holding no part, a machine cannot become blocked (blocked = a finished part waiting for room downstream)
NO_PART = ("starved", "idle")
MAX_EVENTS_FILE_BYTES = 512 * 1024 * 1024


class EventError(LinewatchError):
    """An event record or events file that cannot be read."""


class TransitionError(LinewatchError):
    """An event that cannot happen from the machine's current state; ``reason`` says why."""

    def __init__(self, event: StateEvent, reason: str):
        super().__init__(f"{event.machine} at {format_time(event.time)}: {reason}")
        self.event = event
        self.reason = reason


@dataclass(slots=True)
class StateEvent:
    """One state change (or count report) of one machine. Treat it as immutable (not frozen only because a frozen
    dataclass is four times slower to create, and the simulation makes one per machine cycle)."""

    machine: str
    time: float
    state: str
    cause: str | None = None
    good: int = 0
    defective: int = 0
    reworked: int = 0
    product: str | None = None

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: v for k, v in d.items() if v is not None and not (k in ("good", "defective", "reworked") and v == 0)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> StateEvent:
        """Checked construction from a mapping (a JSON object, a CSV row); EventError names the field."""
        if not isinstance(d, dict):
            raise EventError("expected an object with machine, time and state")
        unknown = set(d) - {"machine", "time", "state", "cause", "good", "defective", "reworked", "product"}
        if unknown:
            raise EventError(f"{sorted(unknown)[0]}: unknown field")
        machine = d.get("machine")
        if not isinstance(machine, str) or not machine:
            raise EventError("machine: is required")
        state = d.get("state")
        if state not in STATES:
            raise EventError(f"state: must be one of {', '.join(STATES)} (got {state!r})")
        t = parse_time(d.get("time"), "time")
        counts = {}
        for k in ("good", "defective", "reworked"):
            v = d.get(k)
            if v in (None, ""):
                v = 0
            try:
                n = int(v)
                if n != float(v):
                    raise ValueError
            except (TypeError, ValueError):
                raise EventError(f"{k}: must be a whole number (got {v!r})") from None
            if n < 0:
                raise EventError(f"{k}: must be >= 0")
            counts[k] = n
        if counts["reworked"] > counts["defective"]:
            raise EventError("reworked: cannot exceed defective")
        cause = d.get("cause") or None
        product = d.get("product") or None
        return cls(machine, t, state, None if cause is None else str(cause), product=product and str(product), **counts)


def parse_time(v: Any, what: str = "time") -> float:
    """Seconds since the epoch from a number or an ISO 8601 text (no offset: UTC)."""
    if isinstance(v, bool) or v is None or v == "":
        raise EventError(f"{what}: is required (seconds since the epoch or ISO 8601)")
    if isinstance(v, int | float):
        t = float(v)
    else:
        s = str(v).strip()
        try:
            t = float(s)
        except ValueError:
            try:
                dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
            except ValueError:
                raise EventError(f"{what}: {s!r} is neither seconds since the epoch nor an ISO 8601 time") from None
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=UTC)
            t = dt.timestamp()
    if not math.isfinite(t):
        raise EventError(f"{what}: must be finite")
    if abs(t) > LAST_TIME:  # beyond any calendar: a unit mix-up (milliseconds, nanoseconds) or a typo
        raise EventError(f"{what}: {t:g} s is past the year 9999; times are seconds since the epoch")
    return t


LAST_TIME = 253_402_300_799.0  # 9999-12-31T23:59:59Z in seconds since the epoch


def format_time(t: float) -> str:
    try:
        return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):
        return f"{t:g}"


@dataclass
class MachineStatus:
    """A machine's state at some time, and its counts since the history began."""

    machine: str
    state: str
    since: float
    cause: str | None = None
    product: str | None = None
    good: int = 0
    defective: int = 0
    reworked: int = 0
    last_time: float = 0.0

    @property
    def scrapped(self) -> int:
        return self.defective - self.reworked

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("last_time")
        return d


def transition_problem(prev: MachineStatus | None, ev: StateEvent) -> str | None:
    """Why ``ev`` cannot follow ``prev`` (None: it can)."""
    counts = ev.good + ev.defective
    if prev is None:
        if counts:
            return "parts counted before the machine's state is known (its first event must carry no counts)"
        return None
    if ev.time < prev.last_time:
        return f"out of order: the machine's last event is at {format_time(prev.last_time)}"
    if counts and prev.state != "running":
        return f"parts counted while {prev.state}: a machine completes parts only while running"
    if ev.state == "blocked" and prev.state in NO_PART:
        return f"blocked right after {prev.state}: a machine holding no part must run before it can be blocked"
    if (
        ev.state == prev.state
        and ev.cause == prev.cause
        and not counts
        and (ev.product == prev.product or ev.product is None)
    ):
        return f"no change: already {prev.state}" + (f" ({prev.cause})" if prev.cause else "")
    return None


@dataclass
class StateMachine:
    """The live state of a line's machines, changed only by events that can happen.

    ``machines``: the known machine names (None: any name). ``apply`` raises TransitionError and changes nothing
    when the event is impossible; ``offer`` returns the reason instead."""

    machines: frozenset[str] | None = None
    status: dict[str, MachineStatus] = field(default_factory=dict)

    def __post_init__(self):
        if self.machines is not None:
            self.machines = frozenset(self.machines)

    def problem(self, ev: StateEvent) -> str | None:
        if self.machines is not None and ev.machine not in self.machines:
            return f"unknown machine {ev.machine!r}"
        return transition_problem(self.status.get(ev.machine), ev)

    def apply(self, ev: StateEvent) -> MachineStatus:
        """Apply one event; the machine's :class:`MachineStatus` is updated in place (a new one for a machine seen
        for the first time). Raises TransitionError, changing nothing, when the event cannot happen."""
        why = self.problem(ev)
        if why is not None:
            raise TransitionError(ev, why)
        return self._update(ev)

    def _update(self, ev: StateEvent) -> MachineStatus:
        st = self.status.get(ev.machine)
        if st is None:
            st = self.status[ev.machine] = MachineStatus(
                ev.machine, ev.state, ev.time, ev.cause, ev.product, last_time=ev.time
            )
            return st
        if ev.state != st.state or ev.cause != st.cause:
            st.since = ev.time
        if ev.product is not None:
            st.product = ev.product
        elif ev.state == "starved":  # the part in hand (the product) is kept until the machine has none
            st.product = None
        st.state = ev.state
        st.cause = ev.cause
        st.good += ev.good
        st.defective += ev.defective
        st.reworked += ev.reworked
        st.last_time = ev.time
        return st

    def offer(self, ev: StateEvent) -> str | None:
        try:
            self.apply(ev)
        except TransitionError as e:
            return e.reason
        return None


@dataclass
class Rebuilt:
    status: dict[str, MachineStatus]
    rejected: list[tuple[StateEvent, str]]
    applied: int


def sort_events(events: Iterable[StateEvent]) -> list[StateEvent]:
    """By time; events at the same time keep their order (a machine may change twice in one instant)."""
    return sorted(events, key=lambda e: e.time)


def rebuild(events: Iterable[StateEvent], at: float | None = None, machines: Iterable[str] | None = None) -> Rebuilt:
    """The line's state at ``at`` (None: after every event) replayed from the events; impossible events are left
    out and listed with their reason, as the live twin would have rejected them."""
    sm = StateMachine(frozenset(machines) if machines is not None else None)
    rejected: list[tuple[StateEvent, str]] = []
    applied = 0
    for ev in sort_events(events):
        if at is not None and ev.time > at:
            break
        why = sm.offer(ev)
        if why is None:
            applied += 1
        else:
            rejected.append((ev, why))
    return Rebuilt(sm.status, rejected, applied)


# -- files --------------------------------------------------------------------------------------------------------
FIELDS = ("machine", "time", "state", "cause", "good", "defective", "reworked", "product")


def iter_events(path: str | Path) -> Iterator[StateEvent]:
    """Events from a CSV (header with at least machine, time, state) or JSON Lines file; EventError names the line."""
    path = Path(path)
    if not path.is_file():
        raise EventError(f"{path}: no such file")
    if path.stat().st_size > MAX_EVENTS_FILE_BYTES:
        raise EventError(f"{path} is over {MAX_EVENTS_FILE_BYTES // 1024 // 1024} MB")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise EventError(f"{path} is not UTF-8 text") from None
    jsonl = path.suffix.lower() in (".jsonl", ".ndjson", ".json") or text.lstrip().startswith("{")
    if jsonl:
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                raise EventError(f"{path} line {n}: not a JSON object") from None
            except RecursionError:
                raise EventError(f"{path} line {n}: nested too deeply to read") from None
            try:
                yield StateEvent.from_json(obj)
            except EventError as e:
                raise EventError(f"{path} line {n}: {e}") from None
        return
    reader = csv.DictReader(io.StringIO(text))
    head = reader.fieldnames or []
    lacking = [f for f in ("machine", "time", "state") if f not in head]
    if lacking:
        raise EventError(
            f"{path}: the CSV header lacks {', '.join(lacking)} (it has {', '.join(head) or 'no columns'}; the columns "
            f"read are {', '.join(FIELDS)})"
        )
    for row in reader:
        row.pop(None, None)
        try:
            yield StateEvent.from_json({k: v for k, v in row.items() if k in FIELDS and v is not None})
        except EventError as e:
            raise EventError(f"{path} line {reader.line_num}: {e}") from None


def read_events(path: str | Path) -> list[StateEvent]:
    events = list(iter_events(path))
    if not events:
        raise EventError(f"{path}: no events")
    return events


def write_events(events: Iterable[StateEvent], path: str | Path) -> None:
    """JSON Lines (``.jsonl``) or CSV (anything else)."""
    path = Path(path)
    with path.open("w", encoding="utf-8", newline="") as f:
        if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
            for ev in events:
                f.write(json.dumps(ev.to_json()) + "\n")
        else:
            w = csv.writer(f)
            w.writerow(FIELDS)
            for ev in events:
                w.writerow(
                    [
                        ev.machine,
                        repr(ev.time),
                        ev.state,
                        ev.cause or "",
                        ev.good,
                        ev.defective,
                        ev.reworked,
                        ev.product or "",
                    ]
                )
