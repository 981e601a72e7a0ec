"""Images per second of `linewatch batch` on this machine: the model's own stream against Ray actors.

    python benchmarks/vision_batch.py ../shared/data/mvtec_ad/bottle --model MODEL [--repeat 4] [--workers 1,2]

MODEL must have its ONNX export (`linewatch export MODEL`). The category's test images are listed ``--repeat``
times (each pass a new output, so every image is scored each time); prints a table: where, workers, images, seconds
(Ray's start included, and without it), images/s."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from linewatch.vision.batch import score_archive
from linewatch.vision.datasets import expand_inputs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data", type=Path, help="MVTec-layout category")
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--repeat", type=int, default=4, help="passes over the test images")
    ap.add_argument("--workers", default="1,2", help="Ray actor counts to try")
    args = ap.parse_args()
    images = expand_inputs([args.data / "test"])
    work = Path(tempfile.mkdtemp(prefix="lw-batch-bench-"))
    # the same images under other names: the output holds one line per path
    paths = []
    for k in range(args.repeat):
        for p in images:
            link = work / "images" / str(k) / p.parent.name / p.name
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(p.resolve())
            paths.append(link)
    rows = []
    t = time.perf_counter()
    done = score_archive(args.model, paths, work / "here.jsonl")
    rows.append(("this machine (stream)", 1, done.scored, time.perf_counter() - t, done.seconds))
    for n in [int(x) for x in args.workers.split(",")]:
        import ray

        t = time.perf_counter()
        ray.init(num_cpus=n, include_dashboard=False, log_to_driver=False, configure_logging=False)
        started = time.perf_counter() - t
        done = score_archive(args.model, paths, work / f"ray{n}.jsonl", ray_address="auto", workers=n)
        whole = time.perf_counter() - t
        ray.shutdown()
        rows.append((f"Ray, {n} actor(s)", n, done.scored, whole, whole - started))
    print(f"{len(paths)} images ({len(images)} test images x {args.repeat}) from {args.data}")
    print("| where | workers | images | s with start | s scoring | images/s (scoring) |")
    print("|---|---:|---:|---:|---:|---:|")
    for where, n, count, whole, scoring in rows:
        print(f"| {where} | {n} | {count} | {whole:.1f} | {scoring:.1f} | {count / scoring:.1f} |")


if __name__ == "__main__":
    main()
