"""Machine readings end to end: MQTT -> ingest -> score -> store -> alert on the WebSocket, on this machine.

    python benchmarks/machines_ingest.py [--database-url URL] [--rate 20000] [--seconds 30] [--machines 20]
        [--method stream|surprise|mahalanobis|pca|knn|lof|...] [--params '{"false_alarm_rate": 0.001}']

Starts a real `linewatch serve` with MQTT ingest (the local Mosquitto, 127.0.0.1:1883; SQLite by default,
PostgreSQL with --database-url), defines MACHINES machines of 8 sensors each, trains and activates each one's
sensor model (``--method``'s detector) through the API on a minute of normal readings, then publishes at RATE
readings/s for SECONDS (one publisher process, QoS 1, each message one machine's 8 sensors over 25 time steps =
200 readings, stamped with the wall clock) and, once a second, an anomalous reading on one machine (a value 40
standard deviations out). A WebSocket client of the service timestamps each alert event. Prints a table:

- readings/s stored: readings stored (the service's Prometheus counter) over the publishing time, and the time
  the service needed after the last publish to store the rest (its backlog);
- alerts found: injected anomalies whose time step an alert holds (opened at or before it, extended to it or
  beyond), and other alerts (on the noise);
- alert latency: from publishing an anomalous reading to the first event of an alert holding it reaching the
  WebSocket client (p50/p95/p99/max over the injected anomalies);
- CPU seconds of the service process per 10,000 readings.

The publisher and the WebSocket client share the two cores with the service: the figures are for all of it on
one 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np

from linewatch.services.machine_models import DETECTORS

SENSORS = [f"s{i}" for i in range(8)]
STEPS = 25  # time steps per message


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def counter(url: str, name: str) -> float:
    import httpx

    total = 0.0
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


# Each detector's training parameters here. Stream, threshold 6: a one-in-a-million short-term average per series and
# step (the load scores 20,000 points a second: 3, the default, would alert on noise several times a second across
# the fleet). Surprise: its learning period within the 600 training steps. Mahalanobis: the defaults.
#: the parameters each detector is trained with here (a table method not named: its defaults)
TRAIN_PARAMS = {
    "stream": {"threshold": 6, "learning_period": 100},
    "surprise": {"learning_period": 100},
}


def publish(prefix: str, machines: int, rate: float, seconds: float, anomalies: mp.Queue, start_at: float) -> None:
    """The load: RATE readings/s of normal noise, and one anomaly a second (its machine and time to the queue)."""
    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"lw-bench-pub-{uuid.uuid4().hex[:8]}")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", 1883)
    client.loop_start()
    rng = np.random.default_rng(1)
    per_message = len(SENSORS) * STEPS
    interval = per_message / rate  # seconds between messages
    hz = rate / machines / len(SENSORS)  # per sensor
    noise = rng.normal(0, 1, (4096, len(SENSORS)))
    while time.time() < start_at:
        time.sleep(0.001)
    t_next, k, last = start_at, 0, None
    next_anomaly = start_at + 1.0
    clock = {m: start_at for m in range(machines)}
    while time.time() < start_at + seconds:
        m = k % machines
        t = clock[m]
        times = [t + i / hz for i in range(STEPS)]
        clock[m] = t + STEPS / hz
        j = (k * STEPS) % (4096 - STEPS)
        block = 50 + noise[j : j + STEPS]
        payload = {"time": times, "values": {s: block[:, i].round(3).tolist() for i, s in enumerate(SENSORS)}}
        last = client.publish(f"{prefix}/L1/m{m}", json.dumps(payload), qos=1)
        k += 1
        now = time.time()
        if now >= next_anomaly:
            victim = int(rng.integers(machines))
            at = clock[victim]
            clock[victim] = at + 1 / hz
            sent = time.time()
            client.publish(
                f"{prefix}/L1/m{victim}", json.dumps({"time": at, "values": {"s3": 90.0}}), qos=1
            ).wait_for_publish(5)
            anomalies.put((victim, int(round(at * 1000)), sent))
            next_anomaly += 1.0
        t_next += interval
        sleep = t_next - time.time()
        if sleep > 0:
            time.sleep(sleep)
    last.wait_for_publish(60)  # every message with the broker (paho may still hold some)
    sent_until = time.time()
    anomalies.put(("done", k * per_message, sent_until))
    client.loop_stop()
    client.disconnect()


def watch_alerts(url: str, token: str, seen: list, stop: threading.Event) -> None:
    import websockets

    async def run() -> None:
        ws_url = url.replace("http://", "ws://") + f"/api/v1/events?token={token}"
        async with websockets.connect(ws_url, max_size=None) as ws:
            while not stop.is_set():
                try:
                    msg = await asyncio.wait_for(ws.recv(), 0.5)
                except TimeoutError:
                    continue
                event = json.loads(msg)
                if event.get("type") == "alert" and event.get("change") in ("opened", "extended"):
                    seen.append((time.time(), event["alert"]))

    asyncio.run(run())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--database-url", default=None)
    ap.add_argument("--rate", type=float, default=20_000)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--machines", type=int, default=20)
    ap.add_argument("--method", default="stream", choices=DETECTORS, help="the machines' model detector")
    ap.add_argument("--params", type=json.loads, default=None, help="the detector's parameters as JSON (default: ours)")
    args = ap.parse_args()
    import httpx

    work = Path(tempfile.mkdtemp(prefix="lw-machines-bench-"))
    prefix = f"lwbench-{uuid.uuid4().hex[:6]}"
    cid = f"lw-bench-{uuid.uuid4().hex[:6]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LINEWATCH_")}
    env |= {
        "LINEWATCH_DATA_DIR": str(work / "data"),
        "LINEWATCH_MQTT_URL": "mqtt://127.0.0.1:1883",
        "LINEWATCH_MQTT_TOPIC_PREFIX": prefix,
        "LINEWATCH_MQTT_CLIENT_ID": cid,
        "LINEWATCH_ALERT_QUIET_S": "0.5",  # each injected anomaly its own alert
    }
    if args.database_url:
        env["LINEWATCH_DATABASE_URL"] = args.database_url
    cli = [sys.executable, "-m", "linewatch.cli"]
    subprocess.run([*cli, "users", "create", "bench", "--role", "admin", "--password-stdin"], input=b"bench-password\n",
                   env=env, check=True, capture_output=True)  # fmt: skip
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(work / "serve.log", "wb") as log:  # the service writes to its own copy of the descriptor
        proc = subprocess.Popen([*cli, "serve", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        c = httpx.Client(base_url=url, timeout=60)
        token = c.post("/api/v1/auth/login", json={"username": "bench", "password": "bench-password"}).json()[
            "access_token"
        ]
        h = {"Authorization": f"Bearer {token}"}
        c.post("/api/v1/lines", json={"name": "L1"}, headers=h).raise_for_status()
        rng = np.random.default_rng(0)
        t0 = time.time() - 120
        for m in range(args.machines):
            spec = {"name": f"m{m}", "line": "L1", "sensors": [{"name": s} for s in SENSORS]}
            c.post("/api/v1/machines", json=spec, headers=h).raise_for_status()
            normal = 50 + rng.normal(0, 1, (600, len(SENSORS)))
            payload = {
                "time": (t0 + np.arange(600) * 0.1).tolist(),
                "values": {s: normal[:, i].round(3).tolist() for i, s in enumerate(SENSORS)},
            }
            c.post(f"/api/v1/machines/m{m}/readings", json=payload, headers=h).raise_for_status()
            job = c.post(
                f"/api/v1/machines/m{m}/models/train",
                json={
                    "start": "2000-01-01T00:00:00Z",
                    "method": args.method,
                    "params": TRAIN_PARAMS.get(args.method, {}) if args.params is None else args.params,
                },
                headers=h,
            ).json()
            for _ in range(600):
                j = c.get(f"/api/v1/jobs/{job['id']}", headers=h).json()
                if j["status"] in ("succeeded", "failed"):
                    break
                time.sleep(0.1)
            assert j["status"] == "succeeded", j
            c.post(f"/api/v1/machine-models/{j['result']['machine_model_id']}/activate", headers=h).raise_for_status()
        for _ in range(100):
            if c.get("/api/v1/ingest", headers=h).json()["mqtt"]["connected"]:
                break
            time.sleep(0.1)
        seen: list = []
        stop = threading.Event()
        watcher = threading.Thread(target=watch_alerts, args=(url, token, seen, stop), daemon=True)
        watcher.start()
        time.sleep(1.0)
        stored0 = counter(url, "linewatch_readings_ingested_total")
        import psutil

        service = psutil.Process(proc.pid)
        cpu0 = sum(service.cpu_times()[:2])
        q: mp.Queue = mp.Queue()
        start_at = time.time() + 1.0
        pub = mp.Process(target=publish, args=(prefix, args.machines, args.rate, args.seconds, q, start_at))
        pub.start()
        anomalies, done = [], None
        while done is None:
            item = q.get()
            if item[0] == "done":
                done = item
            else:
                anomalies.append(item)
        published, sent_until = done[1], done[2]
        expected = published + len(anomalies)
        stored_at_end = counter(url, "linewatch_readings_ingested_total") - stored0
        drained = time.time()
        while stored_at_end < expected and time.time() < sent_until + 120:
            time.sleep(0.02)
            stored_at_end = counter(url, "linewatch_readings_ingested_total") - stored0
            drained = time.time()
        if stored_at_end >= expected and drained - sent_until < 0.1:
            drained = sent_until  # stored as fast as published: no backlog to speak of
        pub.join()
        stored = counter(url, "linewatch_readings_ingested_total") - stored0
        cpu = sum(service.cpu_times()[:2]) - cpu0
        time.sleep(1.5)
        stop.set()
        watcher.join(5)
        latencies = []
        spanning = set()  # the alerts that hold an injected anomaly's time step
        for victim, at_ms, sent in anomalies:
            hits = [
                (t, alert["id"])
                for t, alert in seen
                if alert["machine"] == f"m{victim}"
                and _ms(alert["opened_at"]) <= at_ms <= _ms(alert["last_at"])
                and t >= sent
            ]
            spanning.update(i for _, i in hits)
            latencies.append(min(hits)[0] - sent if hits else float("inf"))
        others = len({alert["id"] for _, alert in seen} - spanning)
        lat = np.array(latencies)
        found = np.isfinite(lat)
        duration = sent_until - start_at
        db = "PostgreSQL" if args.database_url else "SQLite"
        print(f"\nMachines: {args.machines} x 8 sensors, {db}, target {args.rate:,.0f} readings/s for {duration:.0f} s")
        print("| database | published/s | stored/s | backlog after the last publish | alerts found | other alerts "
              "| latency p50 | p95 | p99 | max | service CPU s per 10k readings |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        p = (lambda q: f"{np.percentile(lat[found], q) * 1000:.0f} ms") if found.any() else (lambda q: "—")
        print(
            f"| {db} | {published / duration:,.0f} | {stored / max(drained - start_at, duration):,.0f} "
            f"| {drained - sent_until:.2f} s | {found.sum()}/{len(lat)} | {others} | {p(50)} | {p(95)} | {p(99)} "
            f"| {p(100)} | {cpu / stored * 10_000:.2f} |"
        )
        if stored < expected:
            print(f"NOT ALL STORED: {stored:,.0f} of {expected:,}")
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.system(f"py-spy dump --pid {proc.pid} > {work}/hang.txt 2>&1")
            print(f"the service did not stop in 30 s: {work}/hang.txt")
            proc.kill()
        import paho.mqtt.client as mqtt

        forget = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid, clean_session=True)
        forget.connect("127.0.0.1", 1883)
        forget.disconnect()


def _ms(iso: str) -> int:
    import datetime as dt

    return int(round(dt.datetime.fromisoformat(iso).timestamp() * 1000))


if __name__ == "__main__":
    main()
