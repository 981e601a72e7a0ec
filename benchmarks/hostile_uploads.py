"""What hostile uploads cost the service, and what they do to other clients' latency (issue 12).

    python benchmarks/hostile_uploads.py [--src SRC] [--clients 2] [--seconds 20]

Starts a real `linewatch serve` from ``--src`` (a checkout's ``src`` folder, default this one: run it once with an
older checkout's ``src`` for the figures before a change), trains a small model through the API on the synthetic
set, then:

1. *alone*: sends each hostile request once with nothing else running and measures the server process's CPU
   seconds (user + system, all threads) and its peak memory above what it held before (RSS sampled every 10 ms):
   five 1 x 39,999,999-pixel 1-bit PNGs in one request, ten 6,300 x 6,300 1-bit PNGs in one request (a few KB
   each), and the largest request still accepted by default, one 6,300 x 6,300 image;
2. *others' latency*: ``--clients`` camera clients inspect ordinary images for ``--seconds``, first alone, then
   while one attacker sends the hostile requests back to back; prints their p50/p95 both times.
"""

from __future__ import annotations

import argparse
import io
import os
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from service_throughput import free_port, run_clients  # noqa: E402


def png_claiming(width: int, height: int) -> bytes:
    """A 1-bit PNG of width x height, all black: a few hundred bytes to a few KB, however large it says it is."""
    raw_row = b"\x00" + b"\x00" * ((width + 7) // 8)  # filter byte, then the packed bits
    comp = zlib.compressobj(9)
    body = b"".join(comp.compress(raw_row) for _ in range(height)) + comp.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def multipart(files: list[tuple[str, bytes]], boundary: str = "lw-hostile") -> tuple[bytes, dict]:
    out = io.BytesIO()
    for name, data in files:
        out.write(
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
            "Content-Type: image/png\r\n\r\n".encode()
        )
        out.write(data + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def send(port: int, key: str, body: bytes, headers: dict, timeout: float = 600) -> tuple[int, float, str]:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    t = time.perf_counter()
    conn.request("POST", "/api/v1/stations/bench/inspect", body=body, headers={**headers, "X-API-Key": key})
    resp = conn.getresponse()
    payload = resp.read()
    conn.close()
    return resp.status, time.perf_counter() - t, payload[:160].decode("utf-8", "replace")


def measured(pid: int, action):
    """(result of action(), server CPU seconds, server peak RSS above the start in MB)."""
    import psutil

    proc = psutil.Process(pid)
    before_cpu = sum(proc.cpu_times()[:2])
    start_rss = proc.memory_info().rss
    peak = [start_rss]
    done = threading.Event()

    def sample():
        while not done.is_set():
            try:
                peak[0] = max(peak[0], proc.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        result = action()
    finally:
        done.set()
        sampler.join()
    cpu = sum(proc.cpu_times()[:2]) - before_cpu
    return result, cpu, (peak[0] - start_rss) / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--src", type=Path, default=Path(__file__).resolve().parents[1] / "src")
    ap.add_argument("--clients", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=20.0)
    args = ap.parse_args()

    from linewatch.client import Client
    from linewatch.vision.synthetic import make_dataset

    work = Path(tempfile.mkdtemp(prefix="lw-hostile-"))
    data = make_dataset(work / "washer", n_train=24, n_test_good=8, n_test_defect=4)
    env = {**os.environ, "LINEWATCH_DATA_DIR": str(work / "svc"), "PYTHONPATH": str(args.src.resolve())}
    env = {k: v for k, v in env.items() if not k.startswith("LINEWATCH_") or k == "LINEWATCH_DATA_DIR"}
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
        for _ in range(240):
            try:
                Client.login(url, "bench", "bench-password").close()
                break
            except Exception:
                time.sleep(0.5)
        admin = Client.login(url, "bench", "bench-password", timeout=600)
        ds = admin.create_dataset("bench")
        admin.upload_images(ds["id"], sorted((data / "train" / "good").iterdir()))
        job = admin.wait_for_job(admin.train(ds["id"], image_size=128)["id"], timeout=1800)
        admin.create_station("bench")
        admin.activate(job["result"]["model_id"], "bench")
        key = admin.create_api_key("bench-camera", "operator")["key"]
        images = [p for d in sorted((data / "test").iterdir()) for p in sorted(d.iterdir())]
        blobs = [p.read_bytes() for p in images]
        for b in blobs[:3]:  # warm up: the model loaded
            send(port, key, *multipart([("w.png", b)]))

        strip = png_claiming(1, 39_999_999)
        square = png_claiming(6300, 6300)
        largest = {"one 6,300 x 6,300 PNG": multipart([("q.png", square)])}  # measured first: a fresh heap
        hostile = {
            "five 1 x 39,999,999 PNGs": multipart([(f"s{n}.png", strip) for n in range(5)]),
            "ten 6,300 x 6,300 PNGs": multipart([(f"q{n}.png", square) for n in range(10)]),
        }
        print(f"server code: {args.src}")
        print("| request | body KB | status | seconds | server CPU s | server peak MB above idle |")
        print("|---|---|---|---|---|---|")
        for name, (body, headers) in {**largest, **hostile}.items():
            (status, secs, detail), cpu, mem = measured(server.pid, lambda b=body, h=headers: send(port, key, b, h))
            print(f"| {name} | {len(body) / 1024:.0f} | {status} | {secs:.2f} | {cpu:.2f} | {mem:.0f} |", flush=True)
            if status != 200:
                print(f"|   | | {detail} | | | |", flush=True)

        def percentiles(lat):
            ms = np.array(lat) * 1000
            return len(ms), *np.percentile(ms, [50, 95])

        quiet = percentiles(run_clients(port, key, images, blobs, args.clients, args.seconds)[0])
        stop = threading.Event()
        attacks: list[tuple[str, int, float]] = []

        def attacker():
            time.sleep(2.0)  # run_clients starts its clock 2 s after the processes start
            kinds = list(hostile.items())
            n = 0
            while not stop.is_set():
                name, (body, headers) = kinds[n % 2]
                status, secs, _ = send(port, key, body, headers)
                attacks.append((name, status, secs))
                n += 1

        thread = threading.Thread(target=attacker, daemon=True)
        thread.start()
        loud = percentiles(run_clients(port, key, images, blobs, args.clients, args.seconds)[0])
        stop.set()
        thread.join(900)
        print(f"\n{args.clients} camera clients, {args.seconds:g} s each")
        print("| while | requests | p50 ms | p95 ms |")
        print("|---|---|---|---|")
        print(f"| alone | {quiet[0]} | {quiet[1]:.0f} | {quiet[2]:.0f} |")
        print(f"| hostile requests arrive back to back | {loud[0]} | {loud[1]:.0f} | {loud[2]:.0f} |")
        print(f"p95 ratio: {loud[2] / quiet[2]:.2f}x")
        statuses = sorted({(a[0], a[1]) for a in attacks})
        mean = np.mean([a[2] for a in attacks]) if attacks else float("nan")
        print(f"hostile requests sent: {len(attacks)} ({statuses}), mean answer {mean:.2f} s")
    finally:
        server.terminate()
        server.wait(30)


if __name__ == "__main__":
    main()
