"""Inspection throughput and latency through the HTTP API, against the engine's own scoring time.

    python benchmarks/service_throughput.py [--data CATEGORY] [--database-url URL] [--clients 1,4,16] [--seconds 20]

Starts a real `linewatch serve` (SQLite by default; PostgreSQL with --database-url), trains a model through
the API on the category's good images (default: a synthetic one), exports it to ONNX (training does),
then for each client count sends test images for a fixed time from that many client processes (plain
http.client, ready-made request bodies: a light load generator on the same cores) and prints a table:
requests/s, latency p50/p95/p99, the engine's own ms per image (ONNX Runtime in-process, same images), and
the service overhead (API p50 minus engine p50) and the share of the engine's throughput reached.
"""

from __future__ import annotations

import argparse
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _body(name: str, data: bytes, boundary: str) -> bytes:
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode()


def _split(data: bytes) -> tuple[bytes, bytes, str]:
    """``data`` cut where a marker can go without changing the pixels: before a PNG's IEND chunk (a text chunk) or
    after a JPEG's SOI marker (a comment segment); other formats are sent as they are."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[-12:-8] == b"\x00\x00\x00\x00" and data[-8:-4] == b"IEND":
        return data[:-12], data[-12:], "png"
    if data[:2] == b"\xff\xd8":
        return data[:2], data[2:], "jpeg"
    return data, b"", ""


def _marked(parts: tuple[bytes, bytes, str], mark: bytes) -> bytes:
    """The image with ``mark`` in a text chunk or comment: the same pixels, different bytes."""
    head, tail, kind = parts
    if kind == "png":
        body = b"tEXt" + b"bench\x00" + mark
        return head + struct.pack(">I", len(body) - 4) + body + struct.pack(">I", zlib.crc32(body)) + tail
    if kind == "jpeg":
        return head + b"\xff\xfe" + struct.pack(">H", len(mark) + 2) + mark + tail
    return head


def _client_process(
    port: int, key: str, images: list[tuple[str, bytes]], boundary: str, start: int, step: int, window, q, unique
):
    """One client: a kept-alive connection posting multipart bodies from ``window[0]`` until ``window[1]`` (wall
    clock); puts its latencies (s) on ``q``. Plain http.client so the load generator spends little of the shared
    CPU. With ``unique`` each request's image carries a counter in a text chunk (PNG) or comment (JPEG), as a
    camera's photos are each new: the service stores and fsyncs every one, where repeated bytes are stored once."""
    import http.client
    import json

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"X-API-Key": key, "Content-Type": f"multipart/form-data; boundary={boundary}"}
    parts = [(name, _split(data)) for name, data in images]
    lat, k, failed = [], start, 0
    begin, stop_at = window
    time.sleep(max(0.0, begin - time.time()))
    while time.time() < stop_at:
        name, split = parts[k % len(parts)]
        data = _marked(split, f"{os.getpid()}-{k}-{time.time_ns()}".encode()) if unique else b"".join(split[:2])
        body = _body(name, data, boundary)
        t = time.perf_counter()
        conn.request("POST", "/api/v1/stations/bench/inspect", body=body, headers=headers)
        resp = conn.getresponse()
        payload = resp.read()
        if resp.status != 200:
            failed += 1
        else:
            json.loads(payload)
            lat.append(time.perf_counter() - t)
        k += step
    conn.close()
    q.put((lat, failed))


def run_clients(
    port: int, key: str, images: list[Path], blobs: list[bytes], n: int, seconds: float, unique: bool = True
):
    """n client processes inspecting for ``seconds``; (latencies in seconds, wall time, failed requests)."""
    import multiprocessing as mp

    boundary = "linewatch-bench-boundary"
    named = [(p.name, b) for p, b in zip(images, blobs, strict=True)]
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    begin = time.time() + 2.0  # all processes started before the clock runs
    procs = [
        ctx.Process(
            target=_client_process, args=(port, key, named, boundary, i, n, (begin, begin + seconds), q, unique)
        )
        for i in range(n)
    ]
    for p in procs:
        p.start()
    results = [q.get() for _ in procs]
    for p in procs:
        p.join()
    wall = time.time() - begin
    lat = [x for r, _ in results for x in r]
    return lat, max(wall, seconds), sum(f for _, f in results)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=None, help="MVTec-layout category (default: synthetic)")
    ap.add_argument("--database-url", default=None)
    ap.add_argument("--clients", default="1,4,16")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument(
        "--repeat",
        action="store_true",
        help="send the test images' bytes as they are, so each is stored once (before 2026-12-05 the only way); "
        "by default every request's image carries a counter in a text chunk or comment, as each new photo of a "
        "camera is new, and is stored and fsynced",
    )
    args = ap.parse_args()

    from linewatch.client import Client
    from linewatch.vision.runtime import OnnxModel

    work = Path(tempfile.mkdtemp(prefix="lw-bench-"))
    data = args.data
    if data is None:
        from linewatch.vision.synthetic import make_dataset

        data = make_dataset(work / "washer", n_train=40, n_test_good=10, n_test_defect=4)
    env = {**os.environ, "LINEWATCH_DATA_DIR": str(work / "svc")}
    if args.database_url:
        env["LINEWATCH_DATABASE_URL"] = args.database_url
    cli = [sys.executable, "-m", "linewatch.cli"]
    subprocess.run(
        [*cli, "users", "create", "bench", "--role", "admin", "--password-stdin"],
        input="bench-password\n",
        text=True,
        env=env,
        check=True,
        capture_output=True,
    )
    port = free_port()
    server = subprocess.Popen(
        [*cli, "serve", "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                Client.login(url, "bench", "bench-password").close()
                break
            except Exception:
                time.sleep(0.5)
        admin = Client.login(url, "bench", "bench-password")
        ds = admin.create_dataset("bench")
        train = sorted((data / "train" / "good").iterdir())
        for i in range(0, len(train), 20):  # in parts: a request's body is limited (50 MB by default)
            admin.upload_images(ds["id"], train[i : i + 20])
        job = admin.train(ds["id"])
        job = admin.wait_for_job(job["id"], timeout=1800)
        model_id = job["result"]["model_id"]
        admin.create_station("bench")
        admin.activate(model_id, "bench")
        key = admin.create_api_key("bench-camera", "operator")["key"]
        images = [p for d in sorted((data / "test").iterdir()) for p in sorted(d.iterdir())]
        blobs = [p.read_bytes() for p in images]

        engine = OnnxModel(work / "svc" / "models" / str(model_id))
        from linewatch.vision.images import open_image_bytes

        times = []
        for b in blobs * 2:
            t = time.perf_counter()
            engine.predict([open_image_bytes(b)])
            times.append(time.perf_counter() - t)
        engine_ms = float(np.median(times) * 1000)
        engine_rps = 1000.0 / float(np.mean(times) * 1000)

        rows = []
        for n in [int(x) for x in args.clients.split(",")]:
            lat, wall, failed = run_clients(port, key, images, blobs, n, args.seconds, unique=not args.repeat)
            if failed:
                print(f"{failed} requests failed with {n} clients", file=sys.stderr)
            ms = np.array(lat) * 1000
            rps = len(lat) / wall
            rows.append((n, len(lat), rps, *np.percentile(ms, [50, 95, 99]), rps / engine_rps))
        db = "PostgreSQL" if args.database_url else "SQLite"
        print(
            f"engine (ONNX Runtime, in-process, decode to regions): p50 {engine_ms:.1f} ms, {engine_rps:.1f} images/s"
        )
        print("| database | clients | requests | images/s | p50 ms | p95 ms | p99 ms | overhead p50 ms | of engine |")
        print("|---|---|---|---|---|---|---|---|---|")
        for n, count, rps, p50, p95, p99, share in rows:
            print(
                f"| {db} | {n} | {count} | {rps:.1f} | {p50:.1f} | {p95:.1f} | {p99:.1f} | {p50 - engine_ms:.1f} | "
                f"{share:.0%} |"
            )
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
