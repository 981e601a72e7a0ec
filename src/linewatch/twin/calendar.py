"""Shift calendars: when a line is planned to operate (ISO 22400-2 planned operation time). Times are seconds since
the epoch; shifts are local times in the line's time zone (daylight saving handled by zoneinfo)."""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from linewatch.twin.model import DAYS, Line


@dataclass(frozen=True)
class Window:
    """One occurrence of a shift: ``name`` (e.g. ``early 2024-05-06``), start and end in epoch seconds."""

    shift: str
    start: float
    end: float

    @property
    def label(self) -> str:
        return self.shift


class Calendar:
    def __init__(self, line: Line):
        self.tz = ZoneInfo(line.timezone)
        self.shifts = list(line.shifts)

    @property
    def always(self) -> bool:
        return not self.shifts

    def windows(self, t1: float, t2: float) -> list[Window]:
        """Shift occurrences overlapping [t1, t2), clipped to it, in time order; without shifts one window 'all'."""
        if t2 <= t1:
            return []
        if self.always:
            return [Window("all", t1, t2)]
        d = datetime.fromtimestamp(t1, self.tz).date() - timedelta(days=1)
        last = datetime.fromtimestamp(t2, self.tz).date()
        out: list[Window] = []
        while d <= last:
            for s in self.shifts:
                if DAYS[d.weekday()] not in s.days:
                    continue
                a = datetime.combine(d, s.start_time, self.tz)
                b = datetime.combine(d + timedelta(days=1) if s.end_time <= s.start_time else d, s.end_time, self.tz)
                a_s, b_s = max(a.timestamp(), t1), min(b.timestamp(), t2)
                if b_s > a_s:
                    out.append(Window(f"{s.name} {d.isoformat()}", a_s, b_s))
            d += timedelta(days=1)
        out.sort(key=lambda w: (w.start, w.end))
        return out

    def open_intervals(self, t1: float, t2: float) -> list[tuple[float, float]]:
        """The planned time in [t1, t2) as disjoint sorted intervals (overlapping shifts merged)."""
        merged: list[list[float]] = []
        for w in self.windows(t1, t2):
            if merged and w.start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], w.end)
            else:
                merged.append([w.start, w.end])
        return [(a, b) for a, b in merged]


class OpenClock:
    """Fast 'is the line planned to run at t, and if not when next' for the simulation (precomputed intervals)."""

    def __init__(self, intervals: list[tuple[float, float]], always: bool):
        self.always = always
        self.starts = [a for a, _ in intervals]
        self.ends = [b for _, b in intervals]
        self.before = [0.0]  # open time before each interval starts
        for a, b in intervals:
            self.before.append(self.before[-1] + (b - a))

    def open_before(self, t: float) -> float:
        """Open time from the first interval's start up to t (the line's planned time, cumulative)."""
        i = bisect.bisect_right(self.starts, t) - 1
        if i < 0:
            return 0.0
        return self.before[i] + min(t, self.ends[i]) - self.starts[i]

    def next_open(self, t: float) -> float | None:
        """t if open at t, else the next opening (None: never again in the horizon)."""
        if self.always:
            return t
        i = bisect.bisect_right(self.starts, t) - 1
        if i >= 0 and t < self.ends[i]:
            return t
        return self.starts[i + 1] if i + 1 < len(self.starts) else None

    def open_until(self, t: float) -> float:
        """The end of the open interval holding t (t itself if closed)."""
        if self.always:
            return float("inf")
        i = bisect.bisect_right(self.starts, t) - 1
        return self.ends[i] if i >= 0 and t < self.ends[i] else t
