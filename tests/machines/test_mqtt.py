"""Readings over the real Mosquitto (127.0.0.1:1883) and NATS JetStream (127.0.0.1:4222): stored, scored, alerted,
and none lost or stored twice when the service is killed mid-stream. Skipped with the reason when a broker is not
running here."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import uuid

import numpy as np
import pytest

pytest.importorskip("paho.mqtt.client")


def _reachable(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


needs_mqtt = pytest.mark.skipif(not _reachable(1883), reason="no MQTT broker (Mosquitto) on 127.0.0.1:1883")
needs_nats = pytest.mark.skipif(not _reachable(4222), reason="no NATS server on 127.0.0.1:4222")


def _publisher():
    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"lw-test-pub-{uuid.uuid4().hex[:8]}")
    client.max_inflight_messages_set(100)
    client.connect("127.0.0.1", 1883)
    client.loop_start()
    return client


def _forget_session(client_id: str) -> None:
    """Drop the persistent session the service left on the broker (a clean-session connect with its id)."""
    import paho.mqtt.client as mqtt

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
    with contextlib.suppress(OSError):
        c.connect("127.0.0.1", 1883)
        c.loop_start()
        time.sleep(0.2)
        c.disconnect()
        c.loop_stop()


def _until(check, timeout: float = 30.0, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached in {timeout} s (last: {got!r})")
        time.sleep(every)


@contextlib.contextmanager
def _service(tmp_path, **settings):
    from fastapi.testclient import TestClient

    from linewatch.api.app import build_context, create_app
    from linewatch.config import Settings

    s = Settings(data_dir=tmp_path / "data", **settings)
    ctx = build_context(s)
    try:
        with TestClient(create_app(s, ctx)) as client:
            yield client, ctx
    finally:
        ctx.engine.dispose()
        if s.mqtt_url:
            _forget_session(s.mqtt_client_id)


def _define(ctx, prefix: str, sensors=("a", "b"), high: float | None = None) -> None:
    from linewatch.services import machines

    spec = machines.ImportSpec.model_validate(
        {
            "lines": [
                {
                    "name": "L1",
                    "machines": [{"name": "m1", "sensors": [{"name": s, "high": high} for s in sensors]}],
                }
            ]
        }
    )
    with ctx.sessions() as s:
        machines.import_spec(s, ctx.bus, spec)


def _count(ctx) -> int:
    from sqlalchemy import text

    with ctx.engine.connect() as c:
        return c.execute(
            text("SELECT count(*) FROM readings r JOIN sensors s ON s.id = r.sensor_id WHERE s.kind = 'sensor'")
        ).scalar()


@needs_mqtt
def test_mqtt_readings_are_stored_scored_and_dead_lettered(tmp_path):
    prefix = f"lwtest-{uuid.uuid4().hex[:8]}"
    cid = f"lw-test-{uuid.uuid4().hex[:8]}"
    with _service(tmp_path, mqtt_url="mqtt://127.0.0.1:1883", mqtt_topic_prefix=prefix, mqtt_client_id=cid) as (
        client,
        ctx,
    ):
        _define(ctx, prefix, high=100.0)
        _until(lambda: ctx.sources.mqtt.connected.is_set())
        pub = _publisher()
        t0 = time.time() - 600
        for k in range(20):
            payload = {"time": [t0 + k * 10 + i for i in range(10)], "values": {"a": [1.0] * 10, "b": [2.0] * 10}}
            pub.publish(f"{prefix}/L1/m1", json.dumps(payload), qos=1).wait_for_publish()
        pub.publish(f"{prefix}/L1/m1", b"{not json", qos=1).wait_for_publish()
        pub.publish(f"{prefix}/L2/m1", json.dumps({"sensor": "a", "value": 1}), qos=1).wait_for_publish()
        pub.publish(f"{prefix}/L1/m1", json.dumps({"sensor": "a", "time": t0 + 500, "value": 150.0}), qos=1)
        _until(lambda: _count(ctx) == 401)
        from linewatch.store.tables import Alert, DeadLetter

        with ctx.sessions() as s:
            reasons = {d.reason for d in s.query(DeadLetter).all()}
            alert = _until(lambda: s.query(Alert).first())
        assert reasons == {"not JSON", "machine 'm1' is on line 'L1', not 'L2'"}
        assert alert.sensors[0]["reason"] == "above 100"
        metrics = client.get("/metrics").text
        assert 'linewatch_readings_ingested_total{source="mqtt"} 401.0' in metrics
        pub.disconnect()


@needs_mqtt
def test_readings_published_while_the_service_is_down_arrive_once(tmp_path, linewatch_processes):
    """QoS 1 with a persistent session: readings published during a SIGKILL and the restart are all stored, each
    exactly once, and the roll-ups count each once too."""
    import httpx

    prefix = f"lwtest-{uuid.uuid4().hex[:8]}"
    cid = f"lw-test-{uuid.uuid4().hex[:8]}"
    data_dir = tmp_path / "data"
    env = linewatch_processes.env(
        LINEWATCH_MQTT_URL="mqtt://127.0.0.1:1883",
        LINEWATCH_MQTT_TOPIC_PREFIX=prefix,
        LINEWATCH_MQTT_CLIENT_ID=cid,
        LINEWATCH_DATA_DIR=str(data_dir),
    )
    linewatch_processes.create_admin(data_dir, "admin-password", env=env)
    messages, per_message = 300, 40
    try:
        with linewatch_processes() as procs:
            url, proc = procs.serve(tmp_path / "serve1.log", env=env)
            token = httpx.post(
                f"{url}/api/v1/auth/login", json={"username": "admin", "password": "admin-password"}
            ).json()["access_token"]
            h = {"Authorization": f"Bearer {token}"}
            assert httpx.post(f"{url}/api/v1/lines", json={"name": "L1"}, headers=h).status_code == 201
            spec = {"name": "m1", "line": "L1", "sensors": [{"name": "a"}, {"name": "b"}]}
            assert httpx.post(f"{url}/api/v1/machines", json=spec, headers=h).status_code == 201
            _until(lambda: httpx.get(f"{url}/api/v1/ingest", headers=h).json()["mqtt"]["connected"])
            pub = _publisher()
            t0 = time.time() - 7200  # the 6,000 s of readings end before now
            sent = threading.Event()

            def publish() -> None:
                for k in range(messages):
                    ts = [t0 + (k * per_message + i) * 0.5 for i in range(per_message // 2)]
                    payload = {"time": ts, "values": {"a": list(range(len(ts))), "b": [k] * len(ts)}}
                    pub.publish(f"{prefix}/L1/m1", json.dumps(payload), qos=1).wait_for_publish(10)
                    time.sleep(0.01)
                sent.set()

            worker = threading.Thread(target=publish)
            worker.start()
            time.sleep(1.0)
            proc.kill()  # SIGKILL: no shutdown, whatever was in flight is unacknowledged
            proc.wait()
            time.sleep(1.0)  # the publisher goes on while the service is down
            url, proc = procs.serve(tmp_path / "serve2.log", env=env)
            worker.join(60)
            assert sent.is_set()
            pub.disconnect()
            total = messages * per_message

            def stored() -> int:
                return httpx.get(
                    f"{url}/api/v1/machines/m1/readings",
                    params={"sensors": "a,b", "start": "2000-01-01T00:00:00Z", "points": 10},
                    headers=h,
                ).json()

            def complete():
                got = stored()
                n = sum(sum(s["n"]) for s in got["series"])
                return got if n >= total else None

            got = _until(complete, timeout=60)
            # the per-minute and per-hour roll-ups (this long range reads them) count each reading once
            assert sum(sum(s["n"]) for s in got["series"]) == total
        from sqlalchemy import create_engine, text

        engine = create_engine(f"sqlite:///{data_dir / 'linewatch.db'}")
        with engine.connect() as c:
            raw = c.execute(
                text(
                    "SELECT count(*), count(DISTINCT sensor_id || ':' || ts) FROM readings r "
                    "JOIN sensors s ON s.id = r.sensor_id WHERE s.kind = 'sensor'"
                )
            ).one()
        engine.dispose()
        assert tuple(raw) == (total, total)
    finally:
        _forget_session(cid)


@needs_mqtt
@needs_nats
def test_readings_through_nats_jetstream(tmp_path):
    prefix = f"lwtest-{uuid.uuid4().hex[:8]}"
    cid = f"lw-test-{uuid.uuid4().hex[:8]}"
    queue_name = f"lwtest_{uuid.uuid4().hex[:8]}"
    with _service(
        tmp_path,
        mqtt_url="mqtt://127.0.0.1:1883",
        mqtt_topic_prefix=prefix,
        mqtt_client_id=cid,
        readings_bus_url="nats://127.0.0.1:4222",
        queue_name=queue_name,
    ) as (client, ctx):
        _define(ctx, prefix)
        _until(lambda: ctx.sources.mqtt.connected.is_set() and ctx.sources.nats.ready.is_set())
        pub = _publisher()
        t0 = time.time() - 600
        values = np.arange(50, dtype=float).tolist()
        pub.publish(
            f"{prefix}/L1/m1", json.dumps({"time": [t0 + i for i in range(50)], "values": {"a": values}}), qos=1
        ).wait_for_publish()
        _until(lambda: _count(ctx) == 50)
        assert 'linewatch_readings_ingested_total{source="nats"} 50.0' in client.get("/metrics").text
        pub.disconnect()
    _drop_stream(queue_name)


def _drop_stream(queue_name: str) -> None:
    import asyncio

    import nats

    from linewatch.services.mqtt import jetstream_names

    async def drop() -> None:
        nc = await nats.connect("nats://127.0.0.1:4222")
        with contextlib.suppress(Exception):
            await nc.jetstream().delete_stream(jetstream_names(queue_name)[0])
        await nc.close()

    asyncio.run(drop())
