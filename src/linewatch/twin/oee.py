"""OEE as ISO 22400-2 defines it, from machine state events, for any time range, per machine, line and shift.

For a work unit (a machine) over the range, restricted to the planned operation time of the shift calendar:

| ISO 22400-2 | here |
|---|---|
| POT planned operation time | the range within shifts (all of it without shifts) |
| PDOT planned down time | time in ``maintenance`` |
| PBT planned busy time | POT − PDOT |
| APT actual production time | time ``running`` |
| ADOT actual unit down time | time ``down`` (by cause) |
| ADET actual unit delay time | time ``starved``, ``blocked`` or ``idle`` within planned time |
| PQ produced quantity | good + defective (scrapped and reworked) |
| GQ, SQ, RQ | good, scrapped (defective − reworked), reworked |
| PRI planned run time per item | the operation's ideal cycle time for the product (line model) |

availability = APT / PBT, effectiveness (performance) = Σ PRI·PQ / APT, quality ratio = GQ / PQ, and
OEE = availability × effectiveness × quality ratio. Counts belong to the running interval their event ends and are
spread evenly over it, so a range that cuts an interval takes its share. Time before a machine's first event is
``no_data`` and not part of PBT. The losses are time: downtime by cause, delays (starved, blocked, idle), the speed
loss APT − Σ PRI·PQ, and the scrap and rework losses Σ PRI·SQ and Σ PRI·RQ; together with the good parts' ideal time
Σ PRI·GQ they add up to PBT.

The line, two views. As the sum of its work units: availability and effectiveness from the machines' summed times
(Σ APT / Σ PBT, Σ PRI·PQ / Σ APT), and the quality ratio as the rolled throughput yield, the product of the machines'
quality ratios (a part must pass every station), so a defect found at one inspection station is not diluted by the
machines that cannot see it. This view drops when a machine is added in parallel (each of the two idles half the
time). And by its output (``output_oee``, with a line model): good parts leaving the line × the line's ideal cycle
time (its slowest operation's nameplate time divided by the machines offering it) / planned operation time, the share
of the nameplate output delivered, which is the figure to compare what-if scenarios by."""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from linewatch.twin.events import StateEvent, StateMachine, format_time, sort_events

INF = float("inf")


@dataclass
class Timeline:
    """One machine's accepted events as intervals: interval i runs from starts[i] to ends[i] in states[i]; the
    counts its closing event reported are in good[i], defective[i], reworked[i], for products[i]."""

    machine: str
    starts: list[float] = field(default_factory=list)
    ends: list[float] = field(default_factory=list)
    states: list[str] = field(default_factory=list)
    causes: list[str | None] = field(default_factory=list)
    products: list[str | None] = field(default_factory=list)
    good: list[int] = field(default_factory=list)
    defective: list[int] = field(default_factory=list)
    reworked: list[int] = field(default_factory=list)


def timelines(events: Iterable[StateEvent], machines: Iterable[str] | None = None):
    """Per machine timelines from the events that a live twin would accept, and the rejected ones with reasons."""
    sm = StateMachine(frozenset(machines) if machines is not None else None)
    tl: dict[str, Timeline] = {}
    rejected: list[tuple[StateEvent, str]] = []
    problem, update = sm.problem, sm._update
    for ev in sort_events(events):
        why = problem(ev)
        if why is not None:
            rejected.append((ev, why))
            continue
        t = tl.get(ev.machine)
        if t is None:
            t = tl[ev.machine] = Timeline(ev.machine)
        if t.ends:
            t.ends[-1] = ev.time
            t.good[-1], t.defective[-1], t.reworked[-1] = ev.good, ev.defective, ev.reworked
        cur = update(ev)
        t.starts.append(ev.time)
        t.ends.append(INF)
        t.states.append(ev.state)
        t.causes.append(ev.cause)
        t.products.append(cur.product)
        t.good.append(0)
        t.defective.append(0)
        t.reworked.append(0)
    return tl, rejected


def _overlap(s: float, e: float, planned: list[tuple[float, float]], starts: list[float]) -> float:
    if e <= s:
        return 0.0
    total = 0.0
    i = max(bisect.bisect_right(starts, s) - 1, 0)
    while i < len(planned) and planned[i][0] < e:
        a, b = planned[i]
        lo, hi = max(a, s), min(b, e)
        if hi > lo:
            total += hi - lo
        i += 1
    return total


def _in_planned(t: float, planned: list[tuple[float, float]], starts: list[float]) -> bool:
    i = bisect.bisect_right(starts, t) - 1
    return i >= 0 and planned[i][0] <= t < planned[i][1]


@dataclass
class OEE:
    """One work unit's (or the line's) figures over a range. Times in seconds, quantities in parts (fractional
    where a range cuts a running interval)."""

    name: str
    pot_s: float = 0.0
    pdot_s: float = 0.0
    apt_s: float = 0.0
    down_s: dict[str, float] = field(default_factory=dict)
    delay_s: dict[str, float] = field(default_factory=dict)  # starved, blocked, idle
    no_data_s: float = 0.0
    good: float = 0.0
    scrap: float = 0.0
    rework: float = 0.0
    ideal_s: float = 0.0  # Σ PRI·PQ
    ideal_good_s: float = 0.0
    ideal_scrap_s: float = 0.0
    ideal_rework_s: float = 0.0
    quality_override: float | None = None  # the line: rolled throughput yield
    good_by_product: dict[str | None, float] = field(default_factory=dict)
    output_oee: float | None = None  # the line: good parts out x the line's ideal cycle / planned operation time

    @property
    def pbt_s(self) -> float:
        return self.pot_s - self.pdot_s - self.no_data_s

    @property
    def produced(self) -> float:
        return self.good + self.scrap + self.rework

    @property
    def availability(self) -> float | None:
        return self.apt_s / self.pbt_s if self.pbt_s > 0 else None

    @property
    def performance(self) -> float | None:
        return self.ideal_s / self.apt_s if self.apt_s > 0 else None

    @property
    def quality(self) -> float | None:
        if self.quality_override is not None:
            return self.quality_override
        return self.good / self.produced if self.produced > 0 else None

    @property
    def oee(self) -> float | None:
        a, p, q = self.availability, self.performance, self.quality
        if a is None:
            return None
        if a == 0:
            return 0.0
        return None if p is None or q is None else a * p * q

    def losses(self) -> dict[str, Any]:
        return {
            "planned_downtime_s": self.pdot_s,
            "downtime_s": dict(sorted(self.down_s.items(), key=lambda kv: -kv[1])),
            "delay_s": dict(self.delay_s),
            "speed_loss_s": self.apt_s - self.ideal_s,
            "scrap_loss_s": self.ideal_scrap_s,
            "rework_loss_s": self.ideal_rework_s,
            "no_data_s": self.no_data_s,
        }

    def to_json(self) -> dict[str, Any]:
        def r(x):
            return None if x is None else round(x, 6)

        return {
            "name": self.name,
            "oee": r(self.oee),
            "availability": r(self.availability),
            "performance": r(self.performance),
            "quality": r(self.quality),
            "planned_operation_s": self.pot_s,
            "planned_busy_s": self.pbt_s,
            "production_s": self.apt_s,
            "good": self.good,
            "scrap": self.scrap,
            "rework": self.rework,
            "ideal_s": self.ideal_s,
            "losses": self.losses(),
            **({} if self.output_oee is None else {"output_oee": r(self.output_oee)}),
        }


def _machine_oee(t: Timeline, a: float, b: float, planned, pstarts, pri) -> OEE:
    o = OEE(t.machine)
    o.pot_s = sum(max(0.0, min(y, b) - max(x, a)) for x, y in planned)
    first = t.starts[0] if t.starts else INF
    if first > a:
        o.no_data_s = _overlap(a, min(first, b), planned, pstarts)
    i0 = max(bisect.bisect_right(t.starts, a) - 1, 0)
    n_planned = len(planned)
    j = 0  # planned intervals before j end before the current machine interval starts (both lists are sorted)
    for i in range(i0, len(t.starts)):
        s, e = t.starts[i], t.ends[i]
        if s >= b:
            break
        if e <= a and not (e == s == a):
            continue
        lo, hi = (s if s > a else a), (e if e < b else b)
        span = 0.0
        while j < n_planned and planned[j][1] <= lo:
            j += 1
        k = j
        while k < n_planned and planned[k][0] < hi:
            x, y = planned[k]
            x = x if x > lo else lo
            y = y if y < hi else hi
            if y > x:
                span += y - x
            k += 1
        st = t.states[i]
        if st == "running":
            o.apt_s += span
        elif st == "down":
            c = t.causes[i] or "unspecified"
            o.down_s[c] = o.down_s.get(c, 0.0) + span
        elif st == "maintenance":
            o.pdot_s += span
        else:
            o.delay_s[st] = o.delay_s.get(st, 0.0) + span
        n_def = t.defective[i]
        if t.good[i] or n_def:
            instant = a <= s < b and _in_planned(s, planned, pstarts)
            share = span / (e - s) if e > s else float(instant)
            if share:
                g, rw = t.good[i] * share, t.reworked[i] * share
                sc = (n_def - t.reworked[i]) * share
                p = pri(t.machine, t.products[i])
                o.good += g
                o.good_by_product[t.products[i]] = o.good_by_product.get(t.products[i], 0.0) + g
                o.scrap += sc
                o.rework += rw
                o.ideal_good_s += p * g
                o.ideal_scrap_s += p * sc
                o.ideal_rework_s += p * rw
                o.ideal_s += p * (g + sc + rw)
    return o


def _line(name: str, parts: list[OEE]) -> OEE:
    o = OEE(name)
    q = 1.0
    any_q = False
    for m in parts:
        o.pot_s += m.pot_s
        o.pdot_s += m.pdot_s
        o.apt_s += m.apt_s
        o.no_data_s += m.no_data_s
        for k, v in m.down_s.items():
            o.down_s[k] = o.down_s.get(k, 0.0) + v
        for k, v in m.delay_s.items():
            o.delay_s[k] = o.delay_s.get(k, 0.0) + v
        o.good += m.good
        o.scrap += m.scrap
        o.rework += m.rework
        o.ideal_s += m.ideal_s
        o.ideal_good_s += m.ideal_good_s
        o.ideal_scrap_s += m.ideal_scrap_s
        o.ideal_rework_s += m.ideal_rework_s
        if m.quality is not None:
            q *= m.quality
            any_q = True
    o.quality_override = q if any_q else None
    return o


def _output_oee(line, parts: list[OEE], pot_s: float) -> float | None:
    """Good parts leaving the line (counted at the machines doing each product's last operation) times the line's
    ideal cycle for the product (its slowest operation, ideal cycle over the machines that offer it), over the
    planned operation time: the share of the line's nameplate output it delivered."""
    if pot_s <= 0:
        return None
    by_name = {o.name: o for o in parts}
    total = 0.0
    for p in line.product_list:
        ideal = max(
            min(m.op(op).ideal_s for m in line.machines_for(op)) / len(line.machines_for(op)) for op in p.routing
        )
        for m in line.machines_for(p.routing[-1]):
            o = by_name.get(m.name)
            if o is not None:
                key = p.name if p.name in o.good_by_product else (None if len(line.product_list) == 1 else p.name)
                total += o.good_by_product.get(key, 0.0) * ideal
    return total / pot_s


@dataclass
class Report:
    start: float
    end: float
    machines: list[OEE]
    line: OEE
    shifts: list[tuple[str, float, float, list[OEE], OEE]]
    rejected: list[tuple[StateEvent, str]]

    def to_json(self) -> dict[str, Any]:
        return {
            "from": format_time(self.start),
            "to": format_time(self.end),
            "line": self.line.to_json(),
            "machines": [m.to_json() for m in self.machines],
            "shifts": [
                {
                    "shift": n,
                    "from": format_time(a),
                    "to": format_time(b),
                    "line": ln.to_json(),
                    "machines": [m.to_json() for m in ms],
                }
                for n, a, b, ms, ln in self.shifts
            ],
            "rejected": [{"event": ev.to_json(), "reason": why} for ev, why in self.rejected],
        }


def compute_oee(
    events: Iterable[StateEvent] | tuple[dict, list],
    start: float,
    end: float,
    line=None,
    ideal_cycle_s: dict[str, float] | None = None,
    per_shift: bool = True,
    name: str | None = None,
) -> Report:
    """OEE over [start, end) per machine, for the line, and per shift occurrence.

    ``line`` (a :class:`linewatch.twin.model.Line`) gives the shift calendar, the machine names (events of others are
    rejected) and the ideal cycle times per product; without it, ``ideal_cycle_s`` maps machine names to one ideal
    cycle time each and the whole range is planned. ``events`` may also be the (timelines, rejected) pair of
    :func:`timelines`, to compute several ranges from one pass."""
    if not end > start:
        raise ValueError("the range's end must be after its start")
    if isinstance(events, tuple):
        tl, rejected = events
    else:
        tl, rejected = timelines(events, [m.name for m in line.machines] if line is not None else None)
    if line is not None:
        from linewatch.twin.calendar import Calendar

        cal = Calendar(line)
        pri = _pri_cache(line)
        names = [m.name for m in line.machines]
    else:
        cal = None
        table = dict(ideal_cycle_s or {})

        def pri(machine: str, product: str | None) -> float:
            if machine not in table:
                raise ValueError(f"no ideal cycle time for machine {machine!r}")
            return table[machine]

        names = sorted(tl)

    def one(a: float, b: float) -> tuple[list[OEE], OEE]:
        planned = cal.open_intervals(a, b) if cal is not None else [(a, b)]
        pstarts = [x for x, _ in planned]
        ms = [_machine_oee(tl.get(n) or Timeline(n), a, b, planned, pstarts, pri) for n in names]
        total = _line(name or (line.name if line is not None else "line"), ms)
        if line is not None:
            total.output_oee = _output_oee(line, ms, sum(y - x for x, y in planned))
        return ms, total

    machines, total = one(start, end)
    shifts = []
    if per_shift and cal is not None and not cal.always:
        for w in cal.windows(start, end):
            ms, ln = one(w.start, w.end)
            shifts.append((w.label, w.start, w.end, ms, ln))
    return Report(start, end, machines, total, shifts, rejected)


def _pri_cache(line):
    cache: dict[tuple[str, str | None], float] = {}

    def pri(machine: str, product: str | None) -> float:
        k = (machine, product)
        v = cache.get(k)
        if v is None:
            v = cache[k] = line.ideal_cycle_s(machine, product)
        return v

    return pri


def pct(x: float | None) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}%"


def summary_rows(report: Report) -> list[list[str]]:
    """Rows for a table: machine, OEE, A, P, Q, good, scrap, rework, top downtime cause."""
    rows = []
    for o in [*report.machines, report.line]:
        top = max(o.down_s.items(), key=lambda kv: kv[1], default=None)
        rows.append(
            [
                o.name,
                pct(o.oee),
                pct(o.availability),
                pct(o.performance),
                pct(o.quality),
                f"{o.good:.0f}",
                f"{o.scrap:.0f}",
                f"{o.rework:.0f}",
                "—" if top is None else f"{top[0]} {top[1] / 60:.0f} min",
            ]
        )
    return rows


def by_cause(report: Report) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for m in report.machines:
        for k, v in m.down_s.items():
            out[k] += v
    return dict(out)
