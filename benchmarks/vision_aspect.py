"""Long images: squashing them to a square against keeping their aspect ratio (``keep_aspect``), on real images.

    python benchmarks/vision_aspect.py ../shared/data/mvtec_ad/bottle ../shared/data/magnetic_tile/magnetic_tile \
        [--parts 3] [--work /tmp/aspect]

Each category becomes a category of strips: ``--parts`` images side by side (after resizing each to the
category's median image size), the way a line-scan camera or a long part fills a frame. Training strips are made of
training images; each test image sits at a random place in its strip between good test images (never training
images, which the model has memorised), and its mask goes with it. The same strips train both variants with the
defaults otherwise; the table gives image AUROC, pixel AUROC and AUPRO (at model input size), the model input
and the training time.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def make_strips(src: Path, out: Path, parts: int, seed: int = 0) -> Path:
    from linewatch.vision.datasets import load_dataset
    from linewatch.vision.images import open_image

    rng = np.random.default_rng(seed)
    ds = load_dataset(src)
    sizes = [Image.open(p).size for p in ds.train[:50]]
    w, h = int(np.median([s[0] for s in sizes])), int(np.median([s[1] for s in sizes]))
    w, h = max(64, min(w, 512)), max(64, min(h, 512))  # keep the strips' files small

    def tile(img: Image.Image, mode: str = "RGB") -> Image.Image:
        return img.convert(mode).resize((w, h), Image.BILINEAR if mode == "RGB" else Image.NEAREST)

    def strip(tiles: list[Image.Image], mode: str = "RGB") -> Image.Image:
        canvas = Image.new(mode, (w * len(tiles), h))
        for i, t in enumerate(tiles):
            canvas.paste(t, (i * w, 0))
        return canvas

    root = out / f"{src.name}-strips{parts}"
    (root / "train" / "good").mkdir(parents=True, exist_ok=True)
    train = list(ds.train)
    order = rng.permutation(len(train))
    for k in range(0, len(order) - parts + 1, parts):
        tiles = [tile(open_image(train[i])) for i in order[k : k + parts]]
        strip(tiles).save(root / "train" / "good" / f"{k:05d}.png")
    goods = [s.path for s in ds.test if not s.is_anomalous]
    for n, s in enumerate(ds.test):
        kind = "good" if not s.is_anomalous else s.label
        (root / "test" / kind).mkdir(parents=True, exist_ok=True)
        others = [g for g in goods if g != s.path]
        flank = [tile(open_image(others[i])) for i in rng.choice(len(others), parts - 1, replace=False)]
        at = int(rng.integers(parts))
        tiles = flank[:at] + [tile(open_image(s.path))] + flank[at:]
        strip(tiles).save(root / "test" / kind / f"{n:05d}.png")
        if s.is_anomalous:
            (root / "ground_truth" / kind).mkdir(parents=True, exist_ok=True)
            m = Image.open(s.mask_path) if s.mask_path else Image.new("L", (w, h))
            blank = Image.new("L", (w, h))
            masks = [blank] * at + [tile(m, "L")] + [blank] * (parts - 1 - at)
            strip(masks, "L").save(root / "ground_truth" / kind / f"{n:05d}_mask.png")
    return root


def run(category: Path, keep_aspect: bool) -> dict:
    from linewatch.vision.datasets import load_dataset
    from linewatch.vision.evaluation import evaluate
    from linewatch.vision.patchcore import PatchCore

    ds = load_dataset(category)
    det = PatchCore(keep_aspect=keep_aspect, self_check=False)
    t = time.perf_counter()
    det.fit(ds.train)
    train_s = time.perf_counter() - t
    m = evaluate(det, ds)
    h, w = det.preprocess.input_hw
    return {
        "strips": category.name,
        "input": "keep aspect" if keep_aspect else "squashed",
        "shape": f"{w}x{h}",
        "image_auroc": m["image_auroc"],
        "pixel_auroc": m["pixel_auroc"],
        "aupro": m["aupro"],
        "train_s": round(train_s, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("categories", nargs="+", type=Path)
    ap.add_argument("--parts", type=int, default=3)
    ap.add_argument("--work", type=Path, default=None)
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="lw-aspect-"))
    rows = []
    for cat in args.categories:
        strips = make_strips(cat, work, args.parts)
        for keep in (False, True):
            rows.append(run(strips, keep))
            print(rows[-1], flush=True)
    cols = ["strips", "input", "shape", "image_auroc", "pixel_auroc", "aupro", "train_s"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        cells = [f"{r[c]:.3f}" if isinstance(r[c], float) and c != "train_s" else str(r[c]) for c in cols]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
