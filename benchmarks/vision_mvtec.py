"""Accuracy, speed and memory of linewatch's detectors on every MVTec-layout category under a data root.

    python benchmarks/vision_mvtec.py ../shared/data [--methods patchcore,padim] [--backbone NAME] [--set P=V] \
        [--synthetic]

Each (category, method) runs in its own process, so peak memory is that run's alone. Prints a markdown
table: image AUROC, pixel AUROC, AUPRO (maps at model input size, as anomalib), training seconds,
ms per image with PyTorch (decode + resize + forward, batches of 8) and ONNX Runtime (batch 1: forward
only, and end to end from the PNG file to verdict and regions), ONNX parity, and peak RSS. ``--synthetic`` adds the
project's generated category (``synthetic.make_dataset``, seed 1: 150 good training images, 20 good and 10 of each
defect type in the test set, as ``vision_auto.py`` makes it).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def categories(root: Path) -> list[Path]:
    return sorted(
        p.parent.parent for p in root.rglob("train/good") if p.is_dir() and (p.parent.parent / "test").is_dir()
    )


def one(category: Path, method: str, workdir: Path, extra: dict) -> dict:
    import numpy as np

    from linewatch.vision.datasets import load_dataset
    from linewatch.vision.evaluation import evaluate
    from linewatch.vision.export import export_onnx
    from linewatch.vision.runtime import OnnxModel
    from linewatch.vision.saving import create_detector, save

    ds = load_dataset(category)
    det = create_detector(method, **extra)
    t = time.perf_counter()
    det.fit(ds.train)
    train_s = time.perf_counter() - t
    train_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    m = evaluate(det, ds)
    path = save(det, workdir / f"{category.name}-{method}")
    export_onnx(path)
    onnx = OnnxModel(path)
    images = [s.path for s in ds.test]
    # parity over the whole test set
    torch_scores = [s for s, *_ in det.raw_scores(images)]
    onnx_scores = [s for s, *_ in onnx.raw_scores(images)]
    parity = float(np.max(np.abs(np.array(torch_scores) - np.array(onnx_scores))))
    x = onnx.preprocess.__call__
    from linewatch.vision.images import open_image

    batch = np.stack([x(open_image(images[0]))])
    for _ in range(3):
        onnx.run(batch)
    t = time.perf_counter()
    for _ in range(20):
        onnx.run(batch)
    onnx_fwd = (time.perf_counter() - t) / 20 * 1000
    t = time.perf_counter()
    for _ in onnx.iter_predict(images):
        pass
    onnx_e2e = (time.perf_counter() - t) / len(images) * 1000
    m_onnx = evaluate(onnx, ds)
    return {
        "category": str(category.relative_to(category.parent.parent)),
        "method": method,
        "train_images": det.train_info_["train_images"],
        "image_auroc": m["image_auroc"],
        "pixel_auroc": m["pixel_auroc"],
        "aupro": m["aupro"],
        "onnx_image_auroc": m_onnx["image_auroc"],
        "onnx_aupro": m_onnx["aupro"],
        "train_s": round(train_s, 1),
        "torch_ms": m["ms_per_image"],
        "onnx_forward_ms": round(onnx_fwd, 1),
        "onnx_e2e_ms": round(onnx_e2e, 1),
        "parity": parity,
        "train_peak_mb": round(train_rss),
        "peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("--methods", default="patchcore,padim")
    ap.add_argument("--backbone", default=None)
    ap.add_argument("--only", default=None, help="comma-separated category names")
    ap.add_argument(
        "--set", action="append", default=[], metavar="PARAM=VALUE", help="a detector parameter (VALUE as JSON)"
    )
    ap.add_argument("--synthetic", action="store_true", help="add the generated category (seed 1)")
    ap.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    extra = {"backbone": args.backbone} if args.backbone else {}
    for item in args.set:
        key, _, value = item.partition("=")
        extra[key] = json.loads(value)
    if args.one:
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(one(Path(args.one[0]), args.one[1], Path(tmp), extra)))
        return
    cats = categories(args.root)
    if args.only:
        cats = [c for c in cats if c.name in args.only.split(",")]
    tmp = tempfile.TemporaryDirectory() if args.synthetic else None
    if tmp is not None:
        from linewatch.vision.synthetic import make_dataset

        cats.append(make_dataset(Path(tmp.name) / "generated" / "synthetic", 150, 20, 10, seed=1))
    if not cats:
        sys.exit(f"no MVTec-layout categories (train/good + test) under {args.root}")
    rows = []
    for cat in cats:
        for method in args.methods.split(","):
            cmd = [sys.executable, __file__, str(args.root), "--one", str(cat), method]
            if args.backbone:
                cmd += ["--backbone", args.backbone]
            for item in args.set:
                cmd += ["--set", item]
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                print(f"{cat.name} {method}: failed\n{r.stderr[-2000:]}", file=sys.stderr)
                continue
            row = json.loads(r.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    if tmp is not None:
        tmp.cleanup()
    cols = [
        ("category", "category"),
        ("method", "method"),
        ("image_auroc", "image AUROC"),
        ("pixel_auroc", "pixel AUROC"),
        ("aupro", "AUPRO"),
        ("train_s", "train s"),
        ("torch_ms", "PyTorch ms/img"),
        ("onnx_forward_ms", "ONNX forward ms"),
        ("onnx_e2e_ms", "ONNX e2e ms"),
        ("parity", "max torch-ONNX diff"),
        ("train_peak_mb", "train peak MB"),
        ("peak_mb", "peak MB"),
    ]
    print("| " + " | ".join(c[1] for c in cols) + " |")
    print("|" + "---|" * len(cols))
    for row in rows:
        cells = []
        for key, _ in cols:
            v = row.get(key)
            cells.append(
                f"{v:.2e}"
                if key == "parity"
                else f"{v:.3f}"
                if isinstance(v, float) and key.endswith(("auroc", "aupro"))
                else str(v)
            )
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
