"""A copy of an MVTec-layout category whose photos are moved and turned at random, each mask with its image: a part
that sits anywhere in the frame, from a category whose parts are aligned.

    python benchmarks/vision_moved.py ../shared/data/mvtec_ad/bottle /tmp/bottle_moved --turn 180 --shift 0.12

Every image of ``train/`` and ``test/`` is turned by an angle drawn from [-turn, turn] degrees and shifted by up to
``shift`` of its width and height (seed 0), the uncovered corners filled with the median colour of its top and
bottom rows; the ground-truth masks get the same motion (nearest neighbour). Written as PNG. Used by
``vision_padim_share.py`` (docs/benchmarks.md, "PaDiM's share in the combined score").
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src", type=Path)
    ap.add_argument("dst", type=Path)
    ap.add_argument("--turn", type=float, default=180.0, help="largest turn, degrees")
    ap.add_argument("--shift", type=float, default=0.12, help="largest shift, share of the side")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    n = 0
    for p in sorted((a.src / "train").rglob("*")) + sorted((a.src / "test").rglob("*")):
        if p.suffix.lower() not in (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"):
            continue
        rel = p.relative_to(a.src)
        img = Image.open(p).convert("RGB")
        w, h = img.size
        angle = rng.uniform(-a.turn, a.turn)
        dx, dy = (rng.uniform(-a.shift, a.shift, 2) * (w, h)).astype(int)
        rows = np.concatenate([np.asarray(img)[0], np.asarray(img)[-1]])
        fill = tuple(int(v) for v in np.median(rows, 0))
        out = a.dst / rel.with_suffix(".png")
        out.parent.mkdir(parents=True, exist_ok=True)
        img.rotate(angle, Image.BILINEAR, translate=(int(dx), int(dy)), fillcolor=fill).save(out)
        n += 1
        mask = a.src / "ground_truth" / rel.parts[1] / f"{p.stem}_mask.png"
        if rel.parts[1] != "good" and mask.is_file():
            moved = a.dst / "ground_truth" / rel.parts[1] / mask.name
            moved.parent.mkdir(parents=True, exist_ok=True)
            m = Image.open(mask).convert("L")
            m.rotate(angle, Image.NEAREST, translate=(int(dx), int(dy)), fillcolor=0).save(moved)
    print(f"wrote {n} moved images to {a.dst}")


if __name__ == "__main__":
    main()
