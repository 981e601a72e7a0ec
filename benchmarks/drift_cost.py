"""What the drift watch costs the service: one station's check (``GET /stations/{name}/drift``) and the watcher's
minute over many stations, with the photos' looks compared beside the scores.

    python benchmarks/drift_cost.py MODEL [--stations 20] [--parts 5000] [--repeats 20] [--database-url URL]

MODEL is a model directory trained by this linewatch (its manifest keeps the good images' scores and looks; only the
manifest is read). An in-process service on a temporary data dir (SQLite, or ``--database-url``) gets ``--stations``
stations running it, each with ``--parts`` stored inspections: scores, brightness and whole-image vectors drawn
around the model's kept good ones, as a station's good parts would be. Reported: the check of one station over its
last 500 and its last 5,000 parts (p50 and p95 of ``--repeats`` calls, in the process, the API's own work without
HTTP), and one round of the watcher over every station with new parts (each stores its first level).
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("--stations", type=int, default=20)
    ap.add_argument("--parts", type=int, default=5000)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--database-url", default=None)
    args = ap.parse_args()

    from linewatch.api.app import build_context
    from linewatch.config import Settings
    from linewatch.services.drift import DriftWatcher, station_drift
    from linewatch.store.tables import Inspection, InspectionVectors, ModelVersion, Station
    from linewatch.vision.appearance import kept_reference_looks
    from linewatch.vision.manifest import read_manifest

    manifest = read_manifest(args.model)
    looks = kept_reference_looks(manifest)
    if looks.vectors is None or looks.brightness is None:
        raise SystemExit(f"{args.model} keeps no looks of its good images: train it again with this linewatch")
    scores = np.asarray(manifest["calibration_scores"]["image"], np.float64)
    threshold = float(manifest["calibration"]["image_threshold"])
    rng = np.random.default_rng(0)
    work = Path(tempfile.mkdtemp(prefix="lw-drift-cost-"))
    extra = {"database_url": args.database_url} if args.database_url else {}
    ctx = build_context(Settings(data_dir=work / "data", **extra))
    try:
        with ctx.sessions() as s, s.begin():
            mv = ModelVersion(
                name="bench",
                method=manifest["method"],
                backbone=manifest["backbone"],
                image_size=int(manifest["image_size"]),
                status="ready",
                threshold=threshold,
                path=str(args.model),
            )
            s.add(mv)
            s.flush()
            model_id = mv.id
        started = time.perf_counter()
        for k in range(args.stations):
            with ctx.sessions() as s, s.begin():
                st = Station(name=f"cam{k:02d}", active_model_id=model_id)
                s.add(st)
                s.flush()
                pick = rng.integers(0, len(looks.vectors), args.parts)
                v = looks.vectors[pick] + 0.01 * rng.normal(size=(args.parts, looks.vectors.shape[1]))
                v = (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)
                at = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
                rows = [
                    Inspection(
                        station_id=st.id,
                        model_id=model_id,
                        image_sha256=f"{k:04d}{i:060d}",
                        image_phash="0" * 16,
                        heatmap_sha256="0" * 64,
                        width=256,
                        height=256,
                        score=float(rng.choice(scores)),
                        normalized_score=0.3,
                        verdict="good",
                        latency_ms=1.0,
                        brightness=float(rng.choice(looks.brightness)),
                        created_at=at + dt.timedelta(seconds=i),
                    )
                    for i in range(args.parts)
                ]
                s.add_all(rows)
                s.flush()
                s.add_all(
                    InspectionVectors(
                        inspection_id=r.id,
                        space="bench",
                        image=v[i].tobytes(),
                        defects=v[i].tobytes(),
                        defect_dim=v.shape[1],
                        from_regions=False,
                    )
                    for i, r in enumerate(rows)
                )
        print(
            f"stored {args.stations} stations x {args.parts} parts in {time.perf_counter() - started:.1f} s; "
            f"reference: {len(scores)} good scores, {len(looks.vectors)} looks of {looks.vectors.shape[1]} dims\n"
        )
        print("| what | p50 ms | p95 ms | level |")
        print("|---|---:|---:|---|")
        for last in (500, 5000):
            times, level = [], None
            for _ in range(args.repeats):
                t = time.perf_counter()
                with ctx.sessions() as s:
                    level = station_drift(s, "cam00", last)["level"]
                times.append((time.perf_counter() - t) * 1000)
            print(
                f"| one station, its last {min(last, args.parts):,} parts | {np.percentile(times, 50):.1f} "
                f"| {np.percentile(times, 95):.1f} | {level} |",
                flush=True,
            )
        watcher = DriftWatcher(ctx)
        t = time.perf_counter()
        changed = watcher.run_once()
        took = (time.perf_counter() - t) * 1000
        what = f"the watcher's round over {args.stations} stations (last 500 each)"
        print(f"| {what} | {took:.0f} | | {changed} stored |")
    finally:
        ctx.engine.dispose()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
