"""The readings payload: what a machine (or its gateway) publishes to ``<prefix>/<line>/<machine>`` over MQTT,
or POSTs to ``/api/v1/machines/{machine}/readings``. JSON, one of:

- one reading: ``{"sensor": "temp", "value": 71.2, "time": "2026-12-03T10:00:00.250Z"}``
- one time step of several sensors: ``{"time": 1764756000.25, "values": {"temp": 71.2, "pressure": 3.1}}``
- a batch, column-wise (the cheapest for high rates): ``{"time": [t0, t1, ...], "values": {"temp": [v0, v1, ...],
  "pressure": [...]}}``, each list as long as ``time``; or one sensor's: ``{"sensor": "temp", "time": [...],
  "values": [...]}``
- a list of any of the above, or ``{"readings": [...]}``.

``time`` is seconds since the epoch (a number) or an ISO 8601 date and time (UTC without an offset); left out,
it is the time the service received the message. Values are numbers; ``null`` is no reading. What cannot be
stored (a value that is not a finite number, a time that cannot be read or lies too far in the future, an
unknown sensor) is refused reading by reading with a reason; the rest of the message is stored.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

MAX_READINGS = 1_000_000  # per message


class PayloadError(ValueError):
    """The whole message is unusable (not JSON, not one of the shapes)."""


@dataclass
class Parsed:
    """Readings by sensor name: times (ms) and values; refused readings counted by reason."""

    sensors: dict[str, tuple[list[int] | np.ndarray, list[float] | np.ndarray]] = field(default_factory=dict)
    refused: Counter = field(default_factory=Counter)

    def add(self, sensor: str, ts, values) -> None:
        if len(ts) == 0:
            return
        if sensor in self.sensors:
            t0, v0 = self.sensors[sensor]
            self.sensors[sensor] = (np.concatenate([t0, ts]), np.concatenate([v0, values]))
        else:
            self.sensors[sensor] = (np.asarray(ts, dtype=np.int64), np.asarray(values, dtype=float))

    @property
    def count(self) -> int:
        return sum(len(t) for t, _ in self.sensors.values())


def _time_ms(value, now_ms: int) -> int | None:
    """One time as integer ms, or None when it cannot be read."""
    if value is None:
        return now_ms
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0 or value > 1e11:  # seconds; 1e11 s is the year 5138
            return None
        return int(round(value * 1000))
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.strip().replace("z", "Z").replace("Z", "+00:00"))
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        try:
            return int(round(parsed.timestamp() * 1000))
        except (OverflowError, OSError):
            return None
    return None


def _times(values, now_ms: int) -> np.ndarray:
    """Many times as ms (-1 where one cannot be read)."""
    try:
        arr = np.asarray(values, dtype=float)
        if arr.ndim == 1 and not any(isinstance(v, bool) for v in values[:1]):
            ok = np.isfinite(arr) & (arr >= 0) & (arr <= 1e11)
            return np.where(ok, np.round(np.where(ok, arr, 0) * 1000), -1).astype(np.int64)
    except (TypeError, ValueError):
        pass
    out = [_time_ms(v, now_ms) for v in values]
    return np.array([-1 if v is None else v for v in out], dtype=np.int64)


def _values(values) -> np.ndarray:
    """Many values as floats (NaN where one is not a number; None stays None as NaN too, told apart below)."""
    try:
        arr = np.asarray(values, dtype=float)
        if arr.ndim == 1 and not any(isinstance(v, bool) for v in values):
            return arr
    except (TypeError, ValueError):
        pass
    return np.array(
        [float(v) if isinstance(v, int | float) and not isinstance(v, bool) else math.nan for v in values],
        dtype=float,
    )


def _check(out: Parsed, sensor, ts: np.ndarray, raw_values: list, now_ms: int, max_future_ms: int) -> None:
    if not isinstance(sensor, str) or not sensor or len(sensor) > 100:
        out.refused["sensor name missing or not a string"] += len(ts)
        return
    values = _values(raw_values)
    missing = np.array([v is None for v in raw_values], dtype=bool) if any(v is None for v in raw_values) else None
    bad_time = ts < 0
    future = ~bad_time & (ts > now_ms + max_future_ms)
    bad_value = ~np.isfinite(values)
    if missing is not None:
        bad_value &= ~missing
    keep = ~(bad_time | future | bad_value | (missing if missing is not None else False))
    if bad_time.any():
        out.refused["time not readable (seconds since the epoch or ISO 8601)"] += int(bad_time.sum())
    if future.any():
        out.refused["time too far in the future"] += int(future.sum())
    nan_or_type = bad_value & ~bad_time & ~future
    if nan_or_type.any():
        out.refused["value not a finite number"] += int(nan_or_type.sum())
    if keep.all():
        out.add(sensor, ts, values)
    else:
        out.add(sensor, ts[keep], values[keep])


def _all_good(out: Parsed, values: dict, ts: np.ndarray, now_ms: int, max_future_ms: int) -> bool:
    """The common column-wise batch, checked at once: every value a finite number (no None, no bool), every
    time readable and not in the future, every sensor name a short string. False: check sensor by sensor."""
    names = list(values)
    if not names or not all(isinstance(n, str) and 0 < len(n) <= 100 for n in names):
        return False
    if (ts < 0).any() or (ts > now_ms + max_future_ms).any():
        return False
    cols = list(values.values())
    if not all(isinstance(c, list) and len(c) == len(ts) for c in cols):
        return False
    try:
        block = np.array(cols, dtype=float)
    except (TypeError, ValueError):
        return False
    if block.ndim != 2 or not np.isfinite(block).all():
        return False
    if any(v.__class__ is bool for c in cols for v in c):
        return False
    for name, row in zip(names, block, strict=True):
        out.add(name, ts, row)
    return True


def _one(obj, out: Parsed, now_ms: int, max_future_ms: int) -> None:
    if not isinstance(obj, dict):
        out.refused["item not a JSON object"] += 1
        return
    time = obj.get("time")
    if "sensor" in obj:
        vals = obj["values"] if "values" in obj else obj.get("value")
        if isinstance(time, list) or isinstance(vals, list):
            if not isinstance(time, list) or not isinstance(vals, list) or len(time) != len(vals):
                out.refused["time and values lists of different lengths"] += max(
                    len(vals) if isinstance(vals, list) else 1, 1
                )
                return
            _check(out, obj["sensor"], _times(time, now_ms), vals, now_ms, max_future_ms)
        else:
            if "value" not in obj:
                out.refused["no value"] += 1
                return
            t = _time_ms(time, now_ms)
            _check(out, obj["sensor"], np.array([-1 if t is None else t]), [obj["value"]], now_ms, max_future_ms)
        return
    values = obj.get("values")
    if not isinstance(values, dict):
        out.refused["neither sensor and value nor values"] += 1
        return
    if isinstance(time, list):
        ts = _times(time, now_ms)
        if _all_good(out, values, ts, now_ms, max_future_ms):
            return
        for sensor, vals in values.items():
            if not isinstance(vals, list) or len(vals) != len(ts):
                out.refused["time and values lists of different lengths"] += len(vals) if isinstance(vals, list) else 1
                continue
            _check(out, sensor, ts, vals, now_ms, max_future_ms)
        return
    t = _time_ms(time, now_ms)
    ts = np.array([-1 if t is None else t])
    for sensor, v in values.items():
        if isinstance(v, list):
            out.refused["a list of values without a list of times"] += len(v)
            continue
        _check(out, sensor, ts, [v], now_ms, max_future_ms)


def parse(obj, now_ms: int, max_future_ms: int) -> Parsed:
    """The readings of one decoded JSON message."""
    out = Parsed()
    if isinstance(obj, dict) and "readings" in obj:
        obj = obj["readings"]
    items = obj if isinstance(obj, list) else [obj]
    if not items:
        return out
    for item in items:
        _one(item, out, now_ms, max_future_ms)
        if out.count > MAX_READINGS:
            raise PayloadError(f"over {MAX_READINGS:,} readings in one message: split it")
    return out
