"""Defect search through the service: how often a label suggestion is right, and similar-defect query latency with
many inspections stored.

    python benchmarks/search_service.py DATA_ROOT/mvtec_ad/bottle [--model MODEL_DIR] [--stored 100000]

1. Suggestions. A real service (in-process, SQLite, temp data dir) with the category's model inspects every
   defective test image through the API. Reviewers label a random half with its true defect type; every other image
   asks GET /inspections/{id}/suggestion. Reported: accuracy of the suggested type, over 20 random halves, overall and
   for the suggestions at or above a confidence (what a reviewer would accept in one key press). Also leave-one-out:
   every other image labelled, one asks.
2. Latency. ``--stored`` more inspections are written straight into the database with vectors of the same space
   (copies of the real ones plus Gaussian noise, so that the neighbourhoods are realistic), the service is started
   as a real process (`linewatch serve`), builds its index from the database, and GET /inspections/{id}/similar is
   timed from a client process for the real inspections, without and with a station filter. Reported: p50/p95.

Without --model a PatchCore is trained with the defaults on train/good.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def train(category: Path, out: Path) -> Path:
    from linewatch.vision.datasets import load_dataset
    from linewatch.vision.export import export_onnx
    from linewatch.vision.saving import create_detector, save

    ds = load_dataset(category)
    det = create_detector("patchcore").fit(ds.train)
    path = save(det, out)
    export_onnx(path)
    return path


@contextlib.contextmanager
def service(data_dir: Path):
    from fastapi.testclient import TestClient

    from linewatch.api.app import build_context, create_app
    from linewatch.config import Settings

    settings = Settings(data_dir=data_dir)
    ctx = build_context(settings)
    try:
        with TestClient(create_app(settings, ctx)) as client:
            yield client, ctx
    finally:
        ctx.engine.dispose()


def headers(client, ctx, role: str) -> dict:
    from linewatch.services.accounts import create_user

    with ctx.sessions() as s, s.begin():
        create_user(s, f"bench-{role}", "bench-password", role)
    r = client.post("/api/v1/auth/login", json={"username": f"bench-{role}", "password": "bench-password"})
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def register(client, ctx, model: Path, eng: dict) -> int:
    from linewatch.store.tables import ModelVersion
    from linewatch.vision.manifest import read_manifest

    man = read_manifest(model)
    with ctx.sessions() as s, s.begin():
        mv = ModelVersion(
            name="bench", method=man["method"], backbone=man.get("backbone", "?"), image_size=man["image_size"]
        )
        mv.status, mv.path = "ready", str(model.resolve())
        s.add(mv)
    client.post("/api/v1/stations", json={"name": "line1"}, headers=eng)
    client.post(f"/api/v1/models/{mv.id}/activate", json={"station": "line1"}, headers=eng)
    return mv.id


def review(client, op: dict, inspection_id: int, kind: str | None) -> None:
    r = client.post(
        f"/api/v1/inspections/{inspection_id}/reviews", json={"verdict": "anomalous", "defect_type": kind}, headers=op
    )
    assert r.status_code == 201, r.text


def suggestions(client, ctx, op: dict, ids: list[int], kinds: list[str], splits: int, seed: int) -> dict:
    """Label a random half, ask the rest; accuracy overall and by confidence, mean over ``splits`` halves."""
    from sqlalchemy import delete, update

    from linewatch.store.tables import Inspection, Review

    rng = random.Random(seed)
    asked: list[tuple[bool, float]] = []
    for _ in range(splits):
        with ctx.sessions() as s, s.begin():
            s.execute(delete(Review))
            s.execute(update(Inspection).values(reviewed=False, review_verdict=None, defect_type=None))
        for iid in ids:  # and from the index: an earlier split's labels must not vote
            ctx.search.refresh(iid)
        order = list(range(len(ids)))
        rng.shuffle(order)
        labelled, rest = order[: len(ids) // 2], order[len(ids) // 2 :]
        for i in labelled:
            client.post(
                f"/api/v1/inspections/{ids[i]}/reviews",
                json={"verdict": "anomalous", "defect_type": kinds[i]},
                headers=op,
            )
        for i in rest:
            sug = client.get(f"/api/v1/inspections/{ids[i]}/suggestion", headers=op).json()
            asked.append((sug["defect_type"] == kinds[i], sug["confidence"]))
    return summarise(asked)


def leave_one_out(client, ctx, op: dict, ids: list[int], kinds: list[str]) -> dict:
    from sqlalchemy import delete, update

    from linewatch.store.tables import Inspection, Review

    with ctx.sessions() as s, s.begin():
        s.execute(delete(Review))
        s.execute(update(Inspection).values(reviewed=False))
    for i, iid in enumerate(ids):
        client.post(
            f"/api/v1/inspections/{iid}/reviews", json={"verdict": "anomalous", "defect_type": kinds[i]}, headers=op
        )
    asked = []
    for i, iid in enumerate(ids):
        # hide this one's own label: a review with no defect type is the latest and counts
        review(client, op, iid, None)
        sug = client.get(f"/api/v1/inspections/{iid}/suggestion", headers=op).json()
        asked.append((sug["defect_type"] == kinds[i], sug["confidence"]))
        client.post(
            f"/api/v1/inspections/{iid}/reviews", json={"verdict": "anomalous", "defect_type": kinds[i]}, headers=op
        )
    return summarise(asked)


def summarise(asked: list[tuple[bool, float]]) -> dict:
    out = {"n": len(asked), "accuracy": float(np.mean([ok for ok, _ in asked]))}
    for c in (0.6, 0.8):
        sel = [ok for ok, conf in asked if conf >= c]
        out[f"conf>={c}"] = (len(sel) / len(asked), float(np.mean(sel)) if sel else float("nan"))
    return out


def fill(ctx, model_id: int, stored: int, seed: int) -> None:
    """``stored`` inspections with vectors near the real ones (noise), straight into the database."""
    from sqlalchemy import insert, select

    from linewatch.store.tables import Inspection, InspectionVectors, Station

    rng = np.random.default_rng(seed)
    with ctx.sessions() as s:
        real = list(s.scalars(select(InspectionVectors)))
        station = s.scalar(select(Station.id))
        others = [s.get(Station, station)]
    space, dim = real[0].space, real[0].defect_dim
    bases = np.concatenate([np.frombuffer(r.defects, np.float32).reshape(-1, dim) for r in real])
    img_dim = len(real[0].image) // 4
    stations = ["line1", "line2", "line3", "line4"]
    with ctx.sessions() as s, s.begin():
        from linewatch.store.tables import Station as St

        ids = {others[0].name: others[0].id}
        for name in stations[1:]:
            st = St(name=name)
            s.add(st)
            s.flush()
            ids[name] = st.id
    t0 = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    chunk = 5000
    for start in range(0, stored, chunk):
        n = min(chunk, stored - start)
        pick = rng.integers(0, len(bases), n)
        vecs = bases[pick] + rng.normal(0, 0.03, (n, dim)).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        rows = [
            {
                "station_id": ids[stations[int(rng.integers(0, 4))]],
                "model_id": model_id,
                "image_sha256": f"{start + i:064x}",
                "image_phash": "0" * 16,
                "heatmap_sha256": f"{start + i:064x}",
                "filename": None,
                "width": 900,
                "height": 900,
                "score": 1.0,
                "normalized_score": 0.9,
                "verdict": "anomalous",
                "regions": [],
                "latency_ms": 50.0,
                "reviewed": False,
                "created_at": t0 + dt.timedelta(seconds=start + i),
            }
            for i in range(n)
        ]
        with ctx.sessions() as s, s.begin():
            new_ids = list(s.scalars(insert(Inspection).returning(Inspection.id), rows))
            s.execute(
                insert(InspectionVectors),
                [
                    {
                        "inspection_id": iid,
                        "space": space,
                        "image": np.zeros(img_dim, np.float32).tobytes(),
                        "defects": vecs[i].tobytes(),
                        "defect_dim": dim,
                        "from_regions": False,
                    }
                    for i, iid in enumerate(new_ids)
                ],
            )
        print(f"stored {start + n:,}/{stored:,}", file=sys.stderr, end="\r")
    print(file=sys.stderr)


def time_queries(port: int, key: str, ids: list[int], rounds: int, params: str) -> np.ndarray:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    lat = []
    for _ in range(rounds):
        for iid in ids:
            t = time.perf_counter()
            conn.request("GET", f"/api/v1/inspections/{iid}/similar?k=5{params}", headers={"X-API-Key": key})
            r = conn.getresponse()
            body = r.read()
            lat.append(time.perf_counter() - t)
            assert r.status == 200, body[:300]
            assert len(json.loads(body)) == 5
    return np.array(lat) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("category", type=Path)
    ap.add_argument("--model", type=Path)
    ap.add_argument("--stored", type=int, default=100_000)
    ap.add_argument("--splits", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="lw-search-bench-"))
    model = args.model or train(args.category, work / "model")
    data = work / "data"
    paths = sorted(p for d in sorted((args.category / "test").iterdir()) if d.name != "good" for p in d.iterdir())
    kinds = [p.parent.name for p in paths]
    with service(data) as (client, ctx):
        eng, op = headers(client, ctx, "engineer"), headers(client, ctx, "operator")
        model_id = register(client, ctx, model, eng)
        ids = []
        for p in paths:
            r = client.post("/api/v1/stations/line1/inspect", files=[("files", (p.name, p.read_bytes()))], headers=op)
            assert r.status_code == 200, r.text
            ids.append(r.json()[0]["id"])
        half = suggestions(client, ctx, op, ids, kinds, args.splits, args.seed)
        loo = leave_one_out(client, ctx, op, ids, kinds)
        key = client.post(
            "/api/v1/api-keys", json={"name": "bench", "role": "viewer"}, headers=headers(client, ctx, "admin")
        )
        key = key.json()["key"]
        chance = float(np.mean([(np.array(kinds) == k).sum() - 1 for k in kinds]) / (len(kinds) - 1))
        print(f"\n{args.category.name}: {len(paths)} defective images, {len(set(kinds))} types, chance {chance:.3f}")
        print("| labelled | suggestions | accuracy | confidence ≥ 0.6: share, accuracy | ≥ 0.8: share, accuracy |")
        print("|---|---|---|---|---|")
        for name, r in ((f"a random half ({args.splits} splits)", half), ("all others (leave-one-out)", loo)):
            a6, a8 = r["conf>=0.6"], r["conf>=0.8"]
            print(f"| {name} | {r['n']} | {r['accuracy']:.3f} | {a6[0]:.0%}, {a6[1]:.3f} | {a8[0]:.0%}, {a8[1]:.3f} |")
        if args.stored:
            fill(ctx, model_id, args.stored, args.seed)
    if not args.stored:
        return
    # the index is rebuilt from the database at the service's start: what a lost or deleted index costs
    shutil.rmtree(data / "search", ignore_errors=True)
    port = free_port()
    env = {**os.environ, "LINEWATCH_DATA_DIR": str(data)}
    started = time.perf_counter()
    server = subprocess.Popen(
        [sys.executable, "-m", "linewatch.cli", "serve", "--port", str(port)], env=env, stderr=subprocess.PIPE
    )
    try:
        for _ in range(1200):
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                c.request("GET", "/healthz")
                if c.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.5)
        ready = time.perf_counter() - started
        time_queries(port, key, ids[:5], 1, "")  # warm
        plain = time_queries(port, key, ids, 3, "")
        filtered = time_queries(port, key, ids, 3, "&station=line1")
        total = args.stored + len(ids)
        print(f"\nservice start with {total:,} inspections and no index (built from the database): {ready:.0f} s")
        print("| inspections stored | query | p50 ms | p95 ms | p99 ms |")
        print("|---|---|---|---|---|")
        for name, lat in (("similar, k=5", plain), ("similar, k=5, station filter (1 in 4)", filtered)):
            p50, p95, p99 = np.percentile(lat, [50, 95, 99])
            print(f"| {total:,} | {name} | {p50:.1f} | {p95:.1f} | {p99:.1f} |")
    finally:
        server.terminate()
        server.wait(30)


if __name__ == "__main__":
    main()
