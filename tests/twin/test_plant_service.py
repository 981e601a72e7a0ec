"""The twin's plant inputs against a real service: machine state messages over the real Mosquitto (stored,
dead-lettered with the reason), and ``linewatch plant simulate`` replaying a simulated line into it (states and
sensor readings arrive). Skipped with the reason when no broker runs here."""

from __future__ import annotations

import bisect
import contextlib
import json
import math
import socket
import time
import uuid

import pytest

pytest.importorskip("paho.mqtt.client")
pytest.importorskip("simpy")


def _reachable(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


needs_mqtt = pytest.mark.skipif(not _reachable(1883), reason="no MQTT broker (Mosquitto) on 127.0.0.1:1883")

LINE = {
    "name": "press line",
    "machines": [
        {
            "name": "press",
            "operation": "press",
            "cycle_time_s": 10,
            "failures": [{"cause": "jam", "mtbf_h": 0.05, "mttr_min": 1}],
        },
        {"name": "camera", "operation": "inspect", "cycle_time_s": 12},  # the bottleneck: the conveyor fills
    ],
    "buffers": [{"name": "conveyor", "before": "inspect", "capacity": 5}],
}


def _iso(t: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat().replace("+00:00", "Z")


def _until(check, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached in {timeout} s (last: {got!r})")
        time.sleep(0.1)


@contextlib.contextmanager
def _service(tmp_path, prefix: str):
    from fastapi.testclient import TestClient

    from linewatch.api.app import build_context, create_app
    from linewatch.config import Settings

    cid = f"lw-test-{uuid.uuid4().hex[:8]}"
    s = Settings(
        data_dir=tmp_path / "data", mqtt_url="mqtt://127.0.0.1:1883", mqtt_topic_prefix=prefix, mqtt_client_id=cid
    )
    ctx = build_context(s)
    try:
        with TestClient(create_app(s, ctx)) as client:
            _until(lambda: ctx.sources.mqtt.connected.is_set())
            from linewatch.services.accounts import create_user

            with ctx.sessions() as db, db.begin():
                create_user(db, "eng", "password-eng", "engineer")
            token = client.post("/api/v1/auth/login", json={"username": "eng", "password": "password-eng"}).json()
            headers = {"Authorization": f"Bearer {token['access_token']}"}
            assert client.put("/api/v1/lines/L1/model", json=LINE, headers=headers).status_code == 200
            yield client, ctx, headers
    finally:
        ctx.engine.dispose()
        import paho.mqtt.client as mqtt

        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid, clean_session=True)
        with contextlib.suppress(OSError):
            c.connect("127.0.0.1", 1883)
            c.disconnect()


def _rows(ctx, table):
    with ctx.sessions() as s:
        return s.query(table).all()


@needs_mqtt
def test_state_messages_over_mqtt_are_stored_or_dead_lettered(tmp_path):
    from linewatch.store.tables import DeadLetter, TwinEvent
    from linewatch.twin.plant import mqtt_publisher

    prefix = f"lwtest-{uuid.uuid4().hex[:8]}"
    with _service(tmp_path, prefix) as (client, ctx, headers):
        publish, close = mqtt_publisher("mqtt://127.0.0.1:1883")
        t = time.time() - 100
        publish(f"{prefix}/L1/press/state", json.dumps({"state": "running", "time": t, "job": "bracket"}))
        publish(f"{prefix}/L1/press/state", json.dumps([{"state": "down", "time": t + 50, "reason": "jam", "good": 5}]))
        publish(f"{prefix}/L1/conveyor/state", json.dumps({"level": 2, "time": t + 50}))
        publish(f"{prefix}/L1/welder/state", json.dumps({"state": "running", "time": t}))
        publish(f"{prefix}/L1/press/state", b"{not json")
        publish(f"{prefix}/L7/press/state", json.dumps({"state": "running"}))
        # a camera holding no part cannot be blocked: the second is refused, the first stays
        camera = [{"state": "starved", "time": t}, {"state": "blocked", "time": t + 1}]
        publish(f"{prefix}/L1/camera/state", json.dumps({"events": camera}))
        close()
        _until(lambda: len(_rows(ctx, DeadLetter)) == 4)
        _until(lambda: len(_rows(ctx, TwinEvent)) == 4)
        events = {(e.machine, e.state, e.source) for e in _rows(ctx, TwinEvent)}
        assert events == {
            ("press", "running", "mqtt"),
            ("press", "down", "mqtt"),
            ("conveyor", None, "mqtt"),
            ("camera", "starved", "mqtt"),
        }
        dead = {d.reason: d.topic for d in _rows(ctx, DeadLetter)}
        assert dead == {
            "twin: unknown machine 'welder'": f"{prefix}/L1/welder/state",
            "twin: not JSON": f"{prefix}/L1/press/state",
            "twin: unknown line 'L7'": f"{prefix}/L7/press/state",
            "twin: blocked right after starved: a machine holding no part must run before it can be blocked": (
                f"{prefix}/L1/camera/state"
            ),
        }
        state = client.get("/api/v1/lines/L1/state", headers=headers).json()
        press = next(m for m in state["machines"] if m["machine"] == "press")
        assert (press["state"], press["reason"], press["good"], press["job"]) == ("down", "jam", 5, "bracket")
        assert state["buffers"][0]["level"] == 2


@needs_mqtt
def test_plant_simulate_drives_the_service_with_states_buffer_levels_and_readings(tmp_path):
    from fastapi.testclient import TestClient
    from sqlalchemy import text

    from linewatch.client import Client
    from linewatch.services import machines
    from linewatch.store.tables import TwinEvent
    from linewatch.twin.model import line_from_dict
    from linewatch.twin.plant import Plant, mqtt_publisher

    prefix = f"lwtest-{uuid.uuid4().hex[:8]}"
    with _service(tmp_path, prefix) as (client, ctx, headers):
        spec = {
            "lines": [
                {"name": "L1", "machines": [{"name": "press", "sensors": [{"name": "force", "low": 10, "high": 50}]}]}
            ]
        }
        with ctx.sessions() as s:
            machines.import_spec(s, ctx.bus, machines.ImportSpec.model_validate(spec))
        api = Client("http://testserver")
        api._http.close()
        api._http = TestClient(client.app, base_url="http://testserver", headers=headers)
        publish, close = mqtt_publisher("mqtt://127.0.0.1:1883")
        plant = Plant(
            line_from_dict(LINE), "L1", publish, prefix, speed=1200, hours=0.5, seed=3, client=api, reading_every_s=30
        )
        stats = plant.run()
        close()
        assert stats.states > 20 and stats.readings == 61 and stats.images == 0 and stats.buffer_levels > 5
        # every state sent is stored (the readings drifting before failures also open alerts: health events)
        _until(lambda: len([e for e in _rows(ctx, TwinEvent) if e.kind == "state"]) == stats.states, timeout=60)
        assert any(e.kind == "health" and e.source == "alert" for e in _rows(ctx, TwinEvent))
        # the conveyor's levels, as the simulation had them at each sample (none refused: within its capacity)
        _until(lambda: len([e for e in _rows(ctx, TwinEvent) if e.kind == "buffer"]) == stats.buffer_levels)
        rows = sorted((e for e in _rows(ctx, TwinEvent) if e.kind == "buffer"), key=lambda e: e.ts)
        levels = [e.data["level"] for e in rows]
        assert {e.machine for e in rows} == {"conveyor"}
        assert all(0 <= v <= 5 for v in levels) and len(set(levels)) > 1
        cap, log = plant.buffer_logs["conveyor"]
        for e in rows:  # each level sent is the simulation's at that time
            k = bisect.bisect_right(log, (e.ts + 0.001, math.inf)) - 1
            assert e.data["level"] == min(cap, log[k][1] if k >= 0 else 0)
        state = client.get("/api/v1/lines/L1/state", headers=headers).json()
        assert state["buffers"] == [{"buffer": "conveyor", "level": levels[-1], "capacity": 5}]

        def readings():
            with ctx.engine.connect() as c:
                return c.execute(
                    text("SELECT count(*) FROM readings r JOIN sensors s ON s.id = r.sensor_id WHERE s.kind = 'sensor'")
                ).scalar()

        _until(lambda: readings() == 61)
        r = client.get("/api/v1/lines/L1/oee", params={"from": _iso(time.time() - 3600)}, headers=headers).json()
        press = next(m for m in r["machines"] if m["machine"] == "press")
        assert press["good"] > 0 and press["losses"]["downtime_s"].get("jam", 0) > 0  # failures injected from the model
        assert press["performance"] == pytest.approx(1.0, abs=0.02)  # replayed at the plant's own times


def test_plant_simulate_bad_input_is_one_line_and_exit_2(tmp_path):
    from typer.testing import CliRunner

    from linewatch.cli import app

    runner = CliRunner()
    r = runner.invoke(app, ["plant", "simulate", str(tmp_path / "none.yaml")])
    assert r.exit_code == 2 and "no such file" in r.output
    model = tmp_path / "line.json"
    model.write_text(json.dumps(LINE))
    (tmp_path / "imgs" / "train" / "good").mkdir(parents=True)
    r = runner.invoke(app, ["plant", "simulate", str(model), "--images", str(tmp_path / "imgs")])
    assert r.exit_code == 2 and "found 0 good and 0 defective" in r.output
    r = runner.invoke(app, ["plant", "simulate", str(model), "--speed", "0"])
    assert r.exit_code == 2
    r = runner.invoke(app, ["plant", "simulate", str(model), "--mqtt", "http://x"])
    assert r.exit_code == 2 and "--mqtt must be" in r.output
