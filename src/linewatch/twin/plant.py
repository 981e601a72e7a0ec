"""A simulated plant that drives a linewatch service through its real interfaces: the demo of the whole product and
the load generator of its benchmarks (``linewatch plant simulate LINE.yaml --speed 60``).

The line model is simulated (``linewatch.twin.sim``) over ``hours`` that end now, and its state events are replayed
at ``speed`` times real time, each at its own (past) time, so the service computes the same OEE a real plant of that
speed would give:

- machine states over MQTT on ``<prefix>/<line>/<machine>/state`` (``{"state", "time", "reason", "job", "good",
  "defective", "reworked"}``), with the parts each machine completed;
- sensor readings over MQTT on ``<prefix>/<line>/<machine>`` for the service's machines of the line and their
  sensors (asked from the service): around the middle of each sensor's expected range, or replaying the shape of a
  real series (``series``: a CSV with a time column and one column per series, rescaled to the range), drifting
  out of range in the minutes before each failure the simulation injects, and flat while the machine is down;
- buffer levels over MQTT on ``<prefix>/<line>/<buffer>/state`` (``{"level", "time"}``) for the buffers the model
  declares, sampled with the readings (every ``reading_every_s`` simulated seconds, when the level changed), at
  most the buffer's capacity (the simulation lets reworked parts in over it; a real buffer cannot hold them);
- part images to the inspect API of each inspection station of the model (``images``: an MVTec-layout folder,
  ``train/good`` and ``test/good`` as good parts, ``test/<defect>`` as defective ones), defective as often as the
  simulation finds parts defective there (the station's ``defect_rate``). The service counts those parts at the
  inspecting machine from the inspections, so that machine's state messages carry no counts then.

It imports nothing from the service: MQTT (paho) and the HTTP client are its only ties."""

from __future__ import annotations

import bisect
import csv
import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from linewatch.errors import LinewatchError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
WARNING_S = 600.0  # sensors drift this long (simulated) before a failure


@dataclass
class ImageSource:
    good: list[Path]
    defective: list[Path]

    @classmethod
    def open(cls, folder: str | Path) -> ImageSource:
        root = Path(folder)
        if not root.is_dir():
            raise LinewatchError(f"--images {root}: no such folder")

        def files(d: Path) -> list[Path]:
            return sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if d.is_dir() else []

        good = files(root / "train" / "good") + files(root / "test" / "good")
        test = root / "test"
        defective = [p for d in sorted(test.iterdir()) if d.name != "good" for p in files(d)] if test.is_dir() else []
        if not good or not defective:
            raise LinewatchError(
                f"--images {root}: expected an MVTec-layout folder with good images (train/good, test/good) and "
                f"defective ones (test/<defect>); found {len(good)} good and {len(defective)} defective"
            )
        return cls(good, defective)


@dataclass
class Series:
    """Shapes taken from real series: each column scaled to 0..1, replayed in a loop."""

    columns: list[list[float]]

    @classmethod
    def read(cls, path: str | Path) -> Series:
        p = Path(path)
        if not p.is_file():
            raise LinewatchError(f"--series {p}: no such file")
        with p.open(newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
        if len(rows) < 3:
            raise LinewatchError(f"--series {p}: expected a header and at least two rows")
        head = rows[0]
        cols = []
        for j, name in enumerate(head):
            if name.strip().lower() in ("time", "timestamp", "ts", "datetime"):
                continue
            try:
                vals = [float(r[j]) for r in rows[1:] if j < len(r) and r[j] != ""]
            except ValueError:
                continue
            lo, hi = min(vals), max(vals)
            if hi > lo and all(math.isfinite(v) for v in vals):
                cols.append([(v - lo) / (hi - lo) for v in vals])
        if not cols:
            raise LinewatchError(f"--series {p}: no numeric column that varies")
        return cls(cols)


@dataclass
class SensorPlan:
    machine: str
    sensor: str
    low: float
    high: float
    shape: list[float] | None = None


@dataclass
class Stats:
    states: int = 0
    readings: int = 0
    images: int = 0
    buffer_levels: int = 0
    image_errors: int = 0
    last_error: str | None = None
    by_machine: dict[str, int] = field(default_factory=dict)


def sensor_plans(machines: list[dict], names: set[str], series: Series | None, seed: int) -> list[SensorPlan]:
    """One plan per sensor of the service's machines that the model also has (the rest are not simulated)."""
    rng = random.Random(seed)
    out = []
    for m in machines:
        if m["name"] not in names:
            continue
        for s in m.get("sensors") or []:
            low, high = s.get("low"), s.get("high")
            if low is None and high is None:
                low, high = 0.0, 100.0
            elif low is None:
                low = high - 100.0 if high > 0 else high - 10.0
            elif high is None:
                high = low + 100.0
            shape = series.columns[rng.randrange(len(series.columns))] if series is not None else None
            out.append(SensorPlan(m["name"], s["name"], float(low), float(high), shape))
    return out


def reading(plan: SensorPlan, t: float, state: str, to_failure: float | None, rng: random.Random) -> float:
    """A plausible value at ``t``: within the range (a real shape, or a slow wave with noise), drifting past the
    top in the ``WARNING_S`` before a failure, at the bottom while the machine is down."""
    span = plan.high - plan.low
    if state in ("down", "maintenance"):
        return plan.low + 0.05 * span * rng.random()
    if plan.shape is not None:
        x = plan.shape[int(t) % len(plan.shape)]
        base = plan.low + span * (0.15 + 0.7 * x)
    else:
        base = plan.low + span * (0.5 + 0.2 * math.sin(t / 900.0)) + rng.gauss(0, 0.03 * span)
    if to_failure is not None and 0 <= to_failure < WARNING_S:
        base += span * 0.8 * (1 - to_failure / WARNING_S)  # past the top before it fails: the service alerts
    return round(base, 4)


class Plant:
    """Replays a simulated line into a service. ``publish(topic, payload)`` sends one MQTT message; ``client`` is a
    :class:`linewatch.client.Client` (images, the service's sensors), or None for states only."""

    def __init__(
        self,
        line,
        line_name: str,
        publish: Callable[[str, str], None],
        prefix: str = "linewatch",
        speed: float = 60.0,
        hours: float = 1.0,
        seed: int = 0,
        client=None,
        images: ImageSource | None = None,
        series: Series | None = None,
        reading_every_s: float = 10.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if not speed > 0:
            raise LinewatchError("--speed must be > 0")
        if not hours > 0:
            raise LinewatchError("--hours must be > 0")
        if images is not None and client is None:
            raise LinewatchError("--images needs --url (images go to the service's inspect API)")
        if images is not None and not line.inspections:
            raise LinewatchError("--images: the line model has no inspection station (inspections: [...])")
        self.line = line
        self.line_name = line_name
        self.publish = publish
        self.prefix = prefix.rstrip("/")
        self.speed = speed
        self.hours = hours
        self.seed = seed
        self.client = client
        self.images = images
        self.series = series
        self.reading_every_s = reading_every_s
        self.clock = clock
        self.sleep = sleep
        self.rng = random.Random(seed)
        self.stats = Stats()

    def _sensors(self) -> list[SensorPlan]:
        if self.client is None:
            return []
        from urllib.parse import quote

        try:
            machines = self.client.request("GET", f"/api/v1/machines?line={quote(self.line_name)}")
        except LinewatchError as e:
            if getattr(e, "status_code", None) == 404:
                return []  # the line has no machines with sensors in the service
            raise
        return sensor_plans(machines, {m.name for m in self.line.machines}, self.series, self.seed)

    def events(self, start: float):
        from linewatch.twin.sim import Simulation

        sim = Simulation(self.line, self.hours, seed=self.seed, start=start, record_buffers=True)
        sim.run()
        self.buffer_logs = {
            b.name: (b.cap, [(sim.t0 + t, level) for t, level in b.log]) for b in sim.bufs.values() if b.log is not None
        }
        return sim.events

    def run(self, progress: Callable[[str, int, int], None] | None = None) -> Stats:
        start_wall = self.clock()
        t0 = start_wall - self.hours * 3600.0  # the simulated hours end now: every time sent is in the past
        self.buffer_logs: dict[str, tuple[int | None, list[tuple[float, int]]]] = {}
        events = self.events(t0)
        sent_levels: dict[str, int] = {}
        sensors = self._sensors()
        counted_by_service = {i.machine: i for i in self.line.inspections} if self.images is not None else {}
        failures = sorted((e.time, e.machine) for e in events if e.state == "down")
        fail_times: dict[str, list[float]] = {}
        for t, m in failures:
            fail_times.setdefault(m, []).append(t)
        state_now: dict[str, str] = {}
        total_s = self.hours * 3600.0
        steps = [t0 + k * self.reading_every_s for k in range(int(total_s / self.reading_every_s) + 1)]
        i = j = 0
        done_steps = -1
        while i < len(events) or j < len(steps):
            t_ev = events[i].time if i < len(events) else math.inf
            t_rd = steps[j] if j < len(steps) else math.inf
            t = min(t_ev, t_rd)
            wait = start_wall + (t - t0) / self.speed - self.clock()
            if wait > 0:
                self.sleep(wait)
            if t_ev <= t_rd:
                ev = events[i]
                i += 1
                ins = counted_by_service.get(ev.machine)
                if ins is not None and (ev.good or ev.defective):
                    self._inspect(ins.station, ev.good, ev.defective)
                self._state(ev, counts=ins is None)
                state_now[ev.machine] = ev.state
            else:
                j += 1
                self._readings(sensors, t, state_now, fail_times)
                self._levels(t, sent_levels)
            step = int(10 * (t - t0) / total_s)
            if progress is not None and step != done_steps:
                done_steps = step
                progress("plant", min(int(t - t0), int(total_s)), int(total_s))
        if progress is not None:
            progress("plant", int(total_s), int(total_s))
        return self.stats

    def _state(self, ev, counts: bool) -> None:
        payload: dict[str, Any] = {"state": ev.state, "time": round(ev.time, 3)}
        if ev.cause:
            payload["reason"] = ev.cause
        if ev.product:
            payload["job"] = ev.product
        if counts:
            for k in ("good", "defective", "reworked"):
                if getattr(ev, k):
                    payload[k] = getattr(ev, k)
        self.publish(f"{self.prefix}/{self.line_name}/{ev.machine}/state", json.dumps(payload))
        self.stats.states += 1
        self.stats.by_machine[ev.machine] = self.stats.by_machine.get(ev.machine, 0) + 1

    def _readings(self, sensors: list[SensorPlan], t: float, state_now: dict, fail_times: dict) -> None:
        per: dict[str, dict[str, float]] = {}
        for p in sensors:
            ft = fail_times.get(p.machine) or []
            k = bisect.bisect_left(ft, t)
            to_failure = ft[k] - t if k < len(ft) else None
            per.setdefault(p.machine, {})[p.sensor] = reading(
                p, t, state_now.get(p.machine, "starved"), to_failure, self.rng
            )
        for machine, values in per.items():
            self.publish(
                f"{self.prefix}/{self.line_name}/{machine}", json.dumps({"time": round(t, 3), "values": values})
            )
            self.stats.readings += len(values)

    def _levels(self, t: float, sent: dict[str, int]) -> None:
        """Each model buffer's level at ``t`` (the last change at or before it), sent when it changed."""
        for name, (cap, log) in self.buffer_logs.items():
            k = bisect.bisect_right(log, (t, math.inf)) - 1
            level = log[k][1] if k >= 0 else 0
            if cap is not None:
                level = min(level, cap)
            if sent.get(name) == level:
                continue
            sent[name] = level
            self.publish(
                f"{self.prefix}/{self.line_name}/{name}/state", json.dumps({"level": level, "time": round(t, 3)})
            )
            self.stats.buffer_levels += 1

    def _inspect(self, station: str, good: int, defective: int) -> None:
        picks = [(self.rng.choice(self.images.good)) for _ in range(good)]
        picks += [self.rng.choice(self.images.defective) for _ in range(defective)]
        self.rng.shuffle(picks)
        for p in picks:
            try:
                self.client.inspect(station, (p.name, p.read_bytes()), retries=1)
                self.stats.images += 1
            except LinewatchError as e:
                if self.stats.images == 0 and self.stats.image_errors == 0:
                    raise LinewatchError(
                        f"the inspect API refused the first image at station {station!r}: {e}"
                    ) from None
                self.stats.image_errors += 1
                self.stats.last_error = str(e)


def mqtt_publisher(url: str, client_id: str | None = None):
    """(publish(topic, payload), close()) over a broker (QoS 1); LinewatchError when it cannot be reached."""
    import uuid
    from urllib.parse import unquote, urlsplit

    import paho.mqtt.client as mqtt

    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts"):
        raise LinewatchError(f"--mqtt must be mqtt://host:1883 or mqtts://host:8883, not {url!r}")
    tls = parts.scheme == "mqtts"
    try:
        host, port = parts.hostname or "127.0.0.1", parts.port or (8883 if tls else 1883)
    except ValueError:
        raise LinewatchError(f"--mqtt has an invalid port: {url!r}") from None
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or f"linewatch-plant-{uuid.uuid4().hex[:8]}")
    c.max_inflight_messages_set(200)
    if user:
        c.username_pw_set(user, password)
    if tls:
        c.tls_set()
    try:
        c.connect(host, port, keepalive=30)
    except OSError as e:
        raise LinewatchError(f"cannot reach the MQTT broker at {host}:{port}: {e}") from None
    c.loop_start()
    pending = []

    def publish(topic: str, payload: str) -> None:
        pending.append(c.publish(topic, payload, qos=1))
        if len(pending) > 500:
            pending.pop(0).wait_for_publish(10)

    def close() -> None:
        for info in pending:
            info.wait_for_publish(10)
        c.disconnect()
        c.loop_stop()

    return publish, close
