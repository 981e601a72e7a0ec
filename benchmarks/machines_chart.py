"""Charting a month of one machine: 8 sensors at 1 Hz (about 21 million readings) read through the API.

    python benchmarks/machines_chart.py [--database-url URL] [--days 30] [--repeat 5]

Stores DAYS days of readings of one machine's 8 sensors at 1 Hz through the service's storage path (batches of an
hour: the raw readings and their minute and hour roll-ups, as ingest writes them), starts a real `linewatch
serve` on that database, and times GET /api/v1/machines/{name}/readings for the ranges a chart zooms between
(an hour to the whole range, 1,000 points per series, all 8 sensors and the anomaly score), median and worst of
REPEAT requests each. Prints a table with the tier read and the buckets returned.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SENSORS = [f"s{i}" for i in range(8)]


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--database-url", default=None)
    ap.add_argument("--days", type=float, default=30)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    import httpx
    from rich.progress import Progress

    from linewatch.config import Settings
    from linewatch.core.events import EventBus
    from linewatch.services import machines, readings
    from linewatch.store.db import make_engine, migrate, session_factory

    work = Path(tempfile.mkdtemp(prefix="lw-chart-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("LINEWATCH_")}
    env["LINEWATCH_DATA_DIR"] = str(work / "data")
    if args.database_url:
        env["LINEWATCH_DATABASE_URL"] = args.database_url
    settings = Settings(data_dir=work / "data", database_url=args.database_url)
    engine = make_engine(settings.db_url)
    migrate(engine)
    spec = machines.ImportSpec.model_validate(
        {"lines": [{"name": "L1", "machines": [{"name": "m1", "sensors": [{"name": s} for s in SENSORS]}]}]}
    )
    with session_factory(engine)() as s:
        machines.import_spec(s, EventBus(), spec)
        rows = machines.sensors_of(s, machines.machine(s, "m1").id, with_score=True)
    ids = [r.id for r in rows]  # the 8 sensors and _score
    end = int(time.time()) // 3600 * 3600
    start = end - int(args.days * 86400)
    rng = np.random.default_rng(0)
    hours = (end - start) // 3600
    loaded = 0
    t_load = time.perf_counter()
    with Progress() as bar:
        task = bar.add_task("storing readings", total=hours)
        for h in range(hours):
            ts = (start + h * 3600 + np.arange(3600)) * 1000
            sid = np.repeat(np.array(ids[:8], np.int64), 3600)
            values = 50 + np.cumsum(rng.normal(0, 0.1, (8, 3600)), axis=1).ravel()
            # the anomaly score, as the ingester stores it: one per time step
            sid = np.r_[sid, np.full(3600, ids[8])]
            values = np.r_[values, np.abs(rng.normal(0, 1, 3600))]
            with engine.begin() as conn:
                loaded += len(readings.store(conn, readings.Rows(sid, np.tile(ts, 9), values)))
            bar.advance(task)
    load_s = time.perf_counter() - t_load
    engine.dispose()
    subprocess.run(
        [sys.executable, "-m", "linewatch.cli", "users", "create", "bench", "--role", "viewer", "--password-stdin"],
        input=b"bench-password\n", env=env, check=True, capture_output=True,
    )  # fmt: skip
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(work / "serve.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "linewatch.cli", "serve", "--port", str(port)],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        c = httpx.Client(base_url=url, timeout=120)
        token = c.post("/api/v1/auth/login", json={"username": "bench", "password": "bench-password"}).json()
        h = {"Authorization": f"Bearer {token['access_token']}"}
        db = "PostgreSQL" if args.database_url else "SQLite"
        print(f"\n{db}: {loaded:,} readings ({args.days:g} days x 9 series at 1 Hz) stored in {load_s:.0f} s "
              f"({loaded / load_s:,.0f}/s)")  # fmt: skip
        print("| range | tier read | buckets per series | median | worst |")
        print("|---|---|---|---|---|")
        iso = lambda t: dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
        for label, span in (("1 hour", 3600), ("1 day", 86400), ("7 days", 7 * 86400), ("30 days", 30 * 86400)):
            if span > end - start:
                continue
            params = {"start": iso(end - span), "end": iso(end), "points": 1000}
            times = []
            for _ in range(args.repeat):
                t = time.perf_counter()
                r = c.get("/api/v1/machines/m1/readings", params=params, headers=h)
                times.append(time.perf_counter() - t)
                r.raise_for_status()
            got = r.json()
            n = sum(sum(s["n"]) for s in got["series"])
            buckets = len(got["series"][0]["t"])
            print(f"| {label} ({n:,} readings) | {got['resolution']} | {buckets} | "
                  f"{statistics.median(times) * 1000:.0f} ms | {max(times) * 1000:.0f} ms |")  # fmt: skip
    finally:
        proc.terminate()
        proc.wait(30)


if __name__ == "__main__":
    main()
