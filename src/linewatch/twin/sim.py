"""The discrete-event simulation of a line model (SimPy), started empty or from a given state.

Each machine is one SimPy process: take a part from the input buffer of an operation it offers (starved while there
is none), wait for the shift if the line is closed (idle, "off shift"), run the cycle (failures interrupt it after a
time to failure counted in running time; the machine is down for the repair and then finishes the cycle), then hand
the part to the next operation's buffer (blocked while it is full). An inspection station finds a part defective at
its defect rate; a defective part is reworked (sent back to ``rework_to``, entering that buffer even when it is full,
so rework loops cannot deadlock) or scrapped. Outside the shifts a machine finishes the part in hand and is idle
("off shift") rather than starved; its state shares (utilisation = running, blocked, starved, down) are shares of the
planned (shift) time after the warm-up. Without ``arrivals`` the machines of a routing's first operation make
a new part whenever their buffer is empty (a saturated line); with it, a source releases parts at those intervals.

The machines emit the same :class:`~linewatch.twin.events.StateEvent` records as the live twin, so the OEE of a run is
computed by :mod:`linewatch.twin.oee` from its events, as it would be from the plant's. Buffers are a small deque
with waiting getters and putters (not ``simpy.Store``): fewer events per part, which is what makes a week of a
10-machine line take about a second."""

from __future__ import annotations

import bisect
import gc
import math
import random
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from linewatch.twin.calendar import Calendar, OpenClock
from linewatch.twin.events import STATES, StateEvent
from linewatch.twin.model import Line, TwinModelError

DEFAULT_START = "2024-01-01T00:00:00"  # a Monday, in the line's time zone


class Part:
    __slots__ = ("product", "routing", "step", "t0")

    def __init__(self, product: str, routing: tuple[str, ...], step: int, t0: float | None):
        self.product = product
        self.routing = routing
        self.step = step
        self.t0 = t0


class Buf:
    """A FIFO buffer with a capacity (None: unlimited), time-weighted level statistics, waiting getters and putters."""

    __slots__ = ("name", "cap", "items", "getters", "putters", "area", "last", "env", "peak", "log")

    def __init__(self, env, name: str, cap: int | None):
        self.env = env
        self.name = name
        self.cap = cap
        self.items: deque = deque()
        self.getters: deque = deque()
        self.putters: deque = deque()
        self.area = 0.0
        self.last = 0.0
        self.peak = 0
        self.log: list[tuple[float, int]] | None = None  # (time, level) at each change, when asked for

    def _track(self) -> None:
        now = self.env.now
        self.area += len(self.items) * (now - self.last)
        self.last = now

    def put(self, part: Part, force: bool = False):
        """None when the part is placed (or handed to a waiting machine), else an event that fires when it is."""
        getters = self.getters
        while getters:
            g = getters.popleft()
            if not g.triggered:  # a machine waiting on several buffers is registered in each
                g.succeed(part)
                return None
        if force or self.cap is None or len(self.items) < self.cap:
            self._track()
            self.items.append(part)
            if len(self.items) > self.peak:
                self.peak = len(self.items)
            if self.log is not None:
                self.log.append((self.env.now, len(self.items)))
            return None
        ev = self.env.event()
        self.putters.append((ev, part))
        return ev

    def take(self) -> Part | None:
        if not self.items:
            return None
        self._track()
        part = self.items.popleft()
        if self.putters:
            ev, p = self.putters.popleft()
            self.items.append(p)
            ev.succeed()
        elif self.log is not None:
            self.log.append((self.env.now, len(self.items)))
        return part

    def level_area(self) -> float:
        return self.area + len(self.items) * (self.env.now - self.last)


@dataclass
class MachineStart:
    """A machine's state when the run starts: ``down``/``maintenance`` with ``remaining_s`` to go, ``running`` a
    part of ``product`` with ``remaining_s`` of its cycle left, ``blocked`` holding a finished part of ``product``,
    or ``idle``/``starved`` (the default)."""

    state: str = "starved"
    remaining_s: float = 0.0
    product: str | None = None
    cause: str | None = None


@dataclass
class InitialState:
    """Where a run starts: machine states and buffer contents (``{buffer: n}`` parts spread over the products by the
    mix, or ``{buffer: {product: n}}``); buffers are named as in the model, or by ``<operation> input``."""

    machines: dict[str, MachineStart] = field(default_factory=dict)
    buffers: dict[str, int | dict[str, int]] = field(default_factory=dict)

    @classmethod
    def from_json(cls, d: dict) -> InitialState:
        ms = {}
        for k, v in (d.get("machines") or {}).items():
            if isinstance(v, str):
                v = {"state": v}
            if not isinstance(v, dict):
                raise TwinModelError(f"initial state: machines.{k}: expected a state or a mapping")
            unknown = set(v) - {"state", "remaining_s", "product", "cause"}
            if unknown:
                raise TwinModelError(f"initial state: machines.{k}.{sorted(unknown)[0]}: unknown field")
            if v.get("state", "starved") not in STATES:
                raise TwinModelError(f"initial state: machines.{k}.state: must be one of {', '.join(STATES)}")
            rem = v.get("remaining_s", 0.0)
            if isinstance(rem, bool) or not isinstance(rem, int | float) or not 0 <= rem < math.inf:
                raise TwinModelError(f"initial state: machines.{k}.remaining_s: must be a number of seconds >= 0")
            for f in ("product", "cause"):
                if v.get(f) is not None and not isinstance(v[f], str):
                    raise TwinModelError(f"initial state: machines.{k}.{f}: must be text")
            ms[k] = MachineStart(**v)
        bufs = d.get("buffers") or {}
        if not isinstance(bufs, dict):
            raise TwinModelError("initial state: buffers: expected a mapping of buffer name to a count")
        for k, v in bufs.items():
            counts = v.values() if isinstance(v, dict) else [v]
            if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts):
                raise TwinModelError(f"initial state: buffers.{k}: expected a count >= 0 or {{product: count}}")
        return cls(ms, dict(bufs))

    @classmethod
    def from_status(cls, line: Line, status: dict, at: float, buffers: dict | None = None) -> InitialState:
        """From a rebuilt live state (:func:`linewatch.twin.events.rebuild`) at time ``at``: a machine down since t
        gets the mean repair time of its first failure mode left, less the time already spent (at least a minute);
        a running machine is given a fresh cycle."""
        ms = {}
        for name, st in status.items():
            try:
                m = line.machine(name)
            except KeyError:
                continue
            start = MachineStart(state=st.state, cause=st.cause, product=st.product)
            if st.state in ("down", "maintenance"):
                mode = next((f for f in m.failures if f.cause == st.cause), m.failures[0] if m.failures else None)
                mean = mode.ttr_s.mean_value if mode is not None else 600.0
                start.remaining_s = max(60.0, mean - (at - st.since))
            elif st.state == "running":
                start.remaining_s = m.ops[0].cycle_time_s.mean_value
            ms[name] = start
        return cls(ms, dict(buffers or {}))


def epoch(start: str | float | datetime | None, line: Line) -> float:
    if start is None:
        start = DEFAULT_START
    if isinstance(start, int | float):
        return float(start)
    if isinstance(start, str):
        start = datetime.fromisoformat(start.replace("Z", "+00:00"))
    if start.tzinfo is None:
        start = start.replace(tzinfo=ZoneInfo(line.timezone))
    return start.timestamp()


class _Machine:
    def __init__(self, sim: Simulation, m, ops_in: list[str]):
        self.sim = sim
        self.name = m.name
        self.inbufs = [sim.bufs[o] for o in ops_in]
        rng = sim.rng
        self.cycle = {o.name: o.cycle_time_s.sampler(rng) for o in m.ops}
        self.modes = [(f.cause, f.ttf_s.sampler(rng), f.ttr_s.sampler(rng)) for f in m.failures]
        self.ttf = [ttf() for _, ttf, _ in self.modes]
        ins = sim.line.inspection_at(m.name)
        self.defect_rate = ins.defect_rate if ins else 0.0
        self.rework_fraction = ins.rework_fraction if ins else 0.0
        self.rework_to = ins.rework_to if ins else None
        self.raw = None  # (cumulative weights, products) when this machine makes new parts (saturated line)
        self.rr = 0  # the next input buffer to look at first (machines with several operations)
        self.waiting = False  # for a part (starved, or idle off shift)
        self.state: str | None = None
        self.cause: str | None = None
        self.product: str | None = None
        self.since = 0.0
        self.acc = dict.fromkeys(STATES, 0.0)
        self.good = self.defective = self.reworked = 0
        self.total = 0

    # one state change -> one event (counts since the previous event ride along)
    def set(self, state: str, cause: str | None = None, product: str | None = None) -> None:
        if product is None and state != "starved":
            product = self.product  # as the state machine does: the product stays until the machine has no part
        if state == self.state and cause == self.cause and product == self.product:
            return
        sim = self.sim
        now = sim.env.now
        if self.state is not None:
            if sim.clock.always:
                self.acc[self.state] += now - self.since
            else:  # only planned (shift) time counts towards the state shares
                c = sim.clock
                self.acc[self.state] += c.open_before(sim.t0 + now) - c.open_before(sim.t0 + self.since)
        if sim.record:
            sim.events.append(
                StateEvent(self.name, sim.t0 + now, state, cause, self.good, self.defective, self.reworked, product)
            )
        self.good = self.defective = self.reworked = 0
        self.state, self.cause, self.product, self.since = state, cause, product, now

    def flush(self) -> None:
        if self.sim.record and (self.good or self.defective):
            self.sim.events.append(
                StateEvent(
                    self.name,
                    self.sim.t0 + self.sim.env.now,
                    self.state,
                    self.cause,
                    self.good,
                    self.defective,
                    self.reworked,
                    self.product,
                )
            )
            self.good = self.defective = self.reworked = 0

    def times(self) -> dict[str, float]:
        out = dict(self.acc)
        if self.state is not None:
            sim = self.sim
            now = sim.env.now
            if sim.clock.always:
                out[self.state] += now - self.since
            else:
                c = sim.clock
                out[self.state] += c.open_before(sim.t0 + now) - c.open_before(sim.t0 + self.since)
        return out

    def process(self, start: MachineStart | None):
        sim = self.sim
        env = sim.env
        timeout = env.timeout
        clock = sim.clock
        t0 = sim.t0
        part: Part | None = None
        finished = False
        if start is not None and start.state != "starved":
            if start.state in ("down", "maintenance"):
                self.set(start.state, start.cause or ("failure" if start.state == "down" else "planned"))
                yield timeout(max(0.0, start.remaining_s))
            elif start.state in ("running", "blocked"):
                part = sim.part_at(self.name, start.product)
                finished = start.state == "blocked"
                if finished:
                    self.set("running", product=part.product)
                    self.set("blocked", product=part.product)
                else:
                    work = max(0.0, start.remaining_s)
            elif start.state == "idle":
                self.set("idle", start.cause)
        while True:
            if part is None:
                inbufs = self.inbufs
                if len(inbufs) == 1:
                    part = inbufs[0].take()
                else:  # several operations: look at their buffers in turn, starting after the last one served
                    n = len(inbufs)
                    for k in range(n):
                        part = inbufs[(self.rr + k) % n].take()
                        if part is not None:
                            self.rr = (self.rr + k + 1) % n
                            break
                if part is None and self.raw is not None:
                    cum, prods = self.raw
                    part = sim.new_part(prods[bisect.bisect_right(cum, sim.rng.random() * cum[-1])])
                if part is None:
                    ev = env.event()
                    for b in self.inbufs:
                        b.getters.append(ev)
                    # starved in the shift, idle outside it (the shift process switches a waiting machine)
                    if clock.always or clock.next_open(t0 + env.now) == t0 + env.now:
                        self.set("starved")
                    else:
                        self.set("idle", "off shift")
                    self.waiting = True
                    part = yield ev
                    self.waiting = False
                work = self.cycle[part.routing[part.step]]()
            if not finished:
                if not clock.always:
                    t = t0 + env.now
                    nxt = clock.next_open(t)
                    if nxt != t:
                        self.set("idle", "off shift", part.product)
                        if nxt is None:
                            yield env.event()  # closed for the rest of the horizon
                        yield timeout(nxt - t)
                product = part.product
                self.set("running", None, product)
                modes = self.modes
                if modes:
                    ttf = self.ttf
                    while True:
                        k = 0
                        nt = ttf[0]
                        for j in range(1, len(ttf)):
                            if ttf[j] < nt:
                                k, nt = j, ttf[j]
                        if work < nt:
                            yield timeout(work)
                            for j in range(len(ttf)):
                                ttf[j] -= work
                            break
                        yield timeout(nt)
                        for j in range(len(ttf)):
                            ttf[j] -= nt
                        work -= nt
                        cause, fail, repair = modes[k]
                        self.set("down", cause, product)
                        yield timeout(repair())
                        ttf[k] = fail()
                        self.set("running", None, product)
                else:
                    yield timeout(work)
                self.total += 1
            # where the part goes next
            dest = None
            force = False
            if finished:  # held finished at the start: counted before the run, just handed on
                finished = False
                part.step += 1
                if part.step == len(part.routing):
                    sim.exit_part(part)
                else:
                    dest = sim.bufs[part.routing[part.step]]
            elif self.defect_rate and sim.rng.random() < self.defect_rate:
                self.defective += 1
                if self.rework_fraction and sim.rng.random() < self.rework_fraction:
                    self.reworked += 1
                    sim.reworked += 1
                    part.step = part.routing.index(self.rework_to)
                    dest = sim.bufs[self.rework_to]
                    force = True
                else:
                    sim.scrap_part(part)
            else:
                self.good += 1
                part.step += 1
                if part.step == len(part.routing):
                    sim.exit_part(part)
                else:
                    dest = sim.bufs[part.routing[part.step]]
            if dest is not None:
                ev = dest.put(part, force)
                if ev is not None:
                    self.set("blocked", None, part.product)
                    yield ev
            part = None


class Simulation:
    """One run of a line model. ``run()`` returns the result dict (and keeps ``events`` when ``record``, and each
    of the model's buffers' levels at every change, ``(time, level)`` in ``bufs[op].log``, when ``record_buffers``)."""

    def __init__(
        self,
        line: Line,
        hours: float,
        seed: int = 0,
        warmup_h: float = 0.0,
        initial: InitialState | None = None,
        start: str | float | datetime | None = None,
        record: bool = True,
        record_buffers: bool = False,
    ):
        import simpy

        if not hours > 0:
            raise TwinModelError("the horizon must be > 0 hours")
        if not 0 <= warmup_h < hours:
            raise TwinModelError("the warm-up must be >= 0 and shorter than the horizon")
        self.line = line
        self.horizon = hours * 3600.0
        self.warmup = warmup_h * 3600.0
        self.seed = seed
        self.rng = random.Random(seed)
        self.env = simpy.Environment()
        self.t0 = epoch(start, line)
        self.record = record
        self.events: list[StateEvent] = []
        cal = Calendar(line)
        self.clock = OpenClock(cal.open_intervals(self.t0, self.t0 + self.horizon + 1), cal.always)
        self.products = line.product_list
        self.routing = {p.name: tuple(p.routing) for p in self.products}
        self.bufs: dict[str, Buf] = {}
        self.buf_names: dict[str, str] = {}
        for op in line.operations():
            b = line.buffer_before(op)
            name = b.name if b is not None else f"{op} input"
            self.bufs[op] = Buf(self.env, name, b.capacity if b is not None else 1)
            self.buf_names[name] = op
            if record_buffers and b is not None:
                self.bufs[op].log = []  # the model's buffers' levels at each change (the plant sends them)
        self.machines = []
        for m in line.machines:
            self.machines.append(_Machine(self, m, [o.name for o in m.ops]))
        # releases: a source with arrivals, else the first operations' machines make parts when they run out
        self.wip = 0
        self.wip_area = 0.0
        self.wip_last = 0.0
        self.released = 0
        self.exits: dict[str, int] = {p.name: 0 for p in self.products}
        self.lead_sum = 0.0
        self.lead_n = 0
        self.scrapped = 0
        self.reworked = 0
        self._initial = initial or InitialState()
        if line.arrivals is None:
            for mm in self.machines:
                cum, prods, acc = [], [], 0.0
                for p in self.products:
                    if p.mix > 0 and mm.cycle.get(p.routing[0]) is not None:
                        acc += p.mix
                        cum.append(acc)
                        prods.append(p.name)
                if prods:
                    mm.raw = (cum, prods)

    # -- parts --------------------------------------------------------------------------------------------------
    def _wip(self, delta: int) -> None:
        now = self.env.now
        self.wip_area += self.wip * (now - self.wip_last)
        self.wip_last = now
        self.wip += delta

    def new_part(self, product: str) -> Part:
        self._wip(1)
        self.released += 1
        return Part(product, self.routing[product], 0, self.env.now)

    def exit_part(self, part: Part) -> None:
        self._wip(-1)
        now = self.env.now
        if now >= self.warmup:
            self.exits[part.product] += 1
            if part.t0 is not None:
                self.lead_sum += now - part.t0
                self.lead_n += 1

    def scrap_part(self, part: Part) -> None:
        self._wip(-1)
        if self.env.now >= self.warmup:
            self.scrapped += 1

    def _mix_for(self, op: str) -> list[str]:
        prods = [p for p in self.products if op in p.routing and p.mix > 0] or [
            p for p in self.products if op in p.routing
        ]
        if not prods:
            raise TwinModelError(f"initial state: no product's routing has operation {op!r}")
        return [p.name for p in prods]

    def part_at(self, machine: str, product: str | None) -> Part:
        """A part (of unknown age) held by ``machine`` at the start."""
        m = self.line.machine(machine)
        ops = [o.name for o in m.ops]
        if product is None:
            product = self._mix_for(ops[0])[0]
        if product not in self.routing:
            raise TwinModelError(f"initial state: machines.{machine}.product: unknown product {product!r}")
        step = next((i for i, s in enumerate(self.routing[product]) if s in ops), None)
        if step is None:
            raise TwinModelError(f"initial state: machine {machine!r} has no operation on {product!r}'s routing")
        self._wip(1)
        return Part(product, self.routing[product], step, None)

    def _fill(self) -> None:
        names = {b.name: op for op, b in self.bufs.items()}
        for name, content in self._initial.buffers.items():
            op = names.get(name)
            if op is None:
                raise TwinModelError(f"initial state: buffers.{name}: unknown buffer (buffers: {', '.join(names)})")
            if isinstance(content, int):
                count = content
                if count < 0:
                    raise TwinModelError(f"initial state: buffers.{name}: must be >= 0")
                prods = self._mix_for(op)
                weights = [next(p.mix for p in self.products if p.name == n) or 1.0 for n in prods]
                total = sum(weights)
                content, assigned = {}, 0
                for i, (pn, w) in enumerate(zip(prods, weights, strict=True)):
                    k = count - assigned if i == len(prods) - 1 else round(count * w / total)
                    content[pn] = k
                    assigned += k
            elif not isinstance(content, dict):
                raise TwinModelError(f"initial state: buffers.{name}: expected a count or {{product: count}}")
            buf = self.bufs[op]
            for pn, k in content.items():
                if pn not in self.routing or op not in self.routing[pn]:
                    raise TwinModelError(f"initial state: buffers.{name}.{pn}: not a product that visits {op!r}")
                for _ in range(int(k)):
                    self._wip(1)
                    buf.put(Part(pn, self.routing[pn], self.routing[pn].index(op), None), force=True)

    def _source(self):
        env = self.env
        ia = self.line.arrivals.interarrival_s.sampler(self.rng)
        cum, prods, acc = [], [], 0.0
        for p in self.products:
            if p.mix > 0:
                acc += p.mix
                cum.append(acc)
                prods.append(p.name)
        rng = self.rng
        clock = self.clock
        while True:
            yield env.timeout(ia())
            if not clock.always:
                t = self.t0 + env.now
                nxt = clock.next_open(t)
                if nxt is None:
                    return
                if nxt != t:
                    yield env.timeout(nxt - t)
            part = self.new_part(prods[bisect.bisect_right(cum, rng.random() * acc)])
            ev = self.bufs[part.routing[0]].put(part)
            if ev is not None:
                yield ev

    def _shifts(self):
        """At each shift's start and end, machines waiting for parts turn starved or idle (off shift)."""
        env = self.env
        for a, b in zip(self.clock.starts, self.clock.ends, strict=True):
            for at, change in ((a, ("starved", None)), (b, ("idle", "off shift"))):
                t = at - self.t0
                if t >= self.horizon:
                    return
                if t > env.now:
                    yield env.timeout(t - env.now)
                    for mm in self.machines:
                        if mm.waiting:
                            mm.set(*change)

    # -- running ------------------------------------------------------------------------------------------------
    def run(self, progress=None) -> dict[str, Any]:
        env = self.env
        known = {m.name for m in self.line.machines}
        for name in self._initial.machines:
            if name not in known:
                raise TwinModelError(f"initial state: machines.{name}: unknown machine")
        for name, st in self._initial.machines.items():
            if st.state not in STATES:
                raise TwinModelError(f"initial state: machines.{name}.state: must be one of {', '.join(STATES)}")
        self._fill()
        for mm in self.machines:
            env.process(mm.process(self._initial.machines.get(mm.name)))
        if self.line.arrivals is not None:
            env.process(self._source())
        if not self.clock.always:
            env.process(self._shifts())
        snap: dict[str, Any] = {}
        # the run makes millions of small objects and keeps the events: the cycle collector would rescan them
        # over and over, for nothing (nothing here is a cycle worth collecting before the end)
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            if self.warmup > 0:
                env.run(until=self.warmup)
                snap = self._snapshot()
            step = self.horizon / 20
            t = self.warmup
            while t < self.horizon:
                t = min(self.horizon, t + step)
                env.run(until=t)
                if progress is not None:
                    progress(t / self.horizon)
            for mm in self.machines:
                mm.flush()
            return self._result(snap)
        finally:
            if was_enabled:
                gc.enable()

    def _snapshot(self) -> dict[str, Any]:
        return {
            "times": {mm.name: mm.times() for mm in self.machines},
            "totals": {mm.name: mm.total for mm in self.machines},
            "bufs": {op: b.level_area() for op, b in self.bufs.items()},
            "wip": self.wip_area + self.wip * (self.env.now - self.wip_last),
        }

    def _result(self, snap: dict[str, Any]) -> dict[str, Any]:
        end = self._snapshot()
        span = self.horizon - self.warmup
        hours = span / 3600.0
        c = self.clock
        planned = span if c.always else c.open_before(self.t0 + self.horizon) - c.open_before(self.t0 + self.warmup)
        machines = {}
        for mm in self.machines:
            t1, t0 = end["times"][mm.name], (snap.get("times") or {}).get(mm.name, dict.fromkeys(STATES, 0.0))
            fr = {s: (t1[s] - t0[s]) / planned if planned > 0 else math.nan for s in STATES}
            machines[mm.name] = {
                **fr,
                "utilisation": fr["running"],
                "parts": end["totals"][mm.name] - (snap.get("totals") or {}).get(mm.name, 0),
            }
        buffers = {}
        for op, b in self.bufs.items():
            a0 = (snap.get("bufs") or {}).get(op, 0.0)
            buffers[b.name] = {"mean": (end["bufs"][op] - a0) / span, "max": b.peak, "capacity": b.cap}
        good = sum(self.exits.values())
        res: dict[str, Any] = {
            "seed": self.seed,
            "hours": self.horizon / 3600.0,
            "warmup_h": self.warmup / 3600.0,
            "planned_h": planned / 3600.0,
            "throughput_per_h": good / hours,
            "throughput_by_product": {k: v / hours for k, v in self.exits.items()},
            "good": good,
            "scrap": self.scrapped,
            "reworked": self.reworked,
            "released": self.released,
            "lead_time_s": self.lead_sum / self.lead_n if self.lead_n else math.nan,
            "wip": (end["wip"] - snap.get("wip", 0.0)) / span,
            "machines": machines,
            "buffers": buffers,
            "events": len(self.events),
        }
        active = {n: m["running"] + m["down"] + m["maintenance"] for n, m in machines.items()}
        res["bottleneck"] = max(active, key=active.get)
        if self.record:
            from linewatch.twin.oee import compute_oee

            rep = compute_oee(self.events, self.t0 + self.warmup, self.t0 + self.horizon, self.line, per_shift=False)
            if rep.rejected:  # the simulation must only make events a live twin accepts
                ev, why = rep.rejected[0]
                raise RuntimeError(f"the simulation made an impossible event: {ev} ({why})")
            res["oee"] = rep.line.oee
            res["output_oee"] = rep.line.output_oee
            res["line_oee"] = rep.line.to_json()
            for o in rep.machines:
                machines[o.name].update(
                    oee=o.oee, availability=o.availability, performance=o.performance, quality=o.quality
                )
        return res


def simulate(line: Line, hours: float, seed: int = 0, **kw) -> dict[str, Any]:
    """One run; see :class:`Simulation` for the options."""
    return Simulation(line, hours, seed=seed, **kw).run()
