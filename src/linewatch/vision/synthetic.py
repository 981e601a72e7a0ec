"""Procedural parts with painted defects and their masks, in the MVTec AD layout. Feeds the demo and tests.

A part is a textured disc (a washer-like part seen from above) on a textured background, with small
random shifts, rotations and lighting changes. Defects: scratches, spots and chips, each with a mask."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

DEFECTS = ("scratch", "spot", "chip")


def _noise(rng: np.random.Generator, size: int, scale: int) -> np.ndarray:
    """Smooth value noise in [0, 1]."""
    small = rng.random((size // scale + 2, size // scale + 2)).astype(np.float32)
    img = Image.fromarray(small).resize((size + 2 * scale, size + 2 * scale), Image.BICUBIC)
    arr = np.asarray(img)[scale : scale + size, scale : scale + size]
    return (arr - arr.min()) / (np.ptp(arr) + 1e-6)


def good_part(rng: np.random.Generator, size: int = 256) -> Image.Image:
    bg = 0.35 + 0.1 * _noise(rng, size, 32) + 0.04 * rng.standard_normal((size, size))
    img = np.stack([bg * 0.9, bg * 0.95, bg], axis=-1)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    cx = size / 2 + rng.uniform(-0.03, 0.03) * size
    cy = size / 2 + rng.uniform(-0.03, 0.03) * size
    r = np.hypot(xx - cx, yy - cy)
    outer, inner = 0.36 * size, 0.13 * size
    body = (r < outer) & (r > inner)
    angle = np.arctan2(yy - cy, xx - cx) + rng.uniform(0, 2 * np.pi)
    # brushed-metal texture: fine concentric grain plus a slow light gradient
    grain = 0.05 * np.sin(r * 1.7 + 0.3 * _noise(rng, size, 8) * 6) + 0.03 * _noise(rng, size, 4)
    light = 0.12 * np.cos(angle) + rng.uniform(-0.04, 0.04)
    metal = 0.62 + grain + light
    for c, tint in enumerate((1.0, 0.97, 0.9)):
        img[..., c] = np.where(body, metal * tint, img[..., c])
    ring = np.abs(r - outer) < 1.5
    img[ring] *= 0.6
    return Image.fromarray((img.clip(0, 1) * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.6))


def add_defect(rng: np.random.Generator, img: Image.Image, kind: str) -> tuple[Image.Image, np.ndarray]:
    """The image with one painted defect on the part, and its boolean mask."""
    size = img.width
    mask = Image.new("L", img.size, 0)
    draw_m = ImageDraw.Draw(mask)
    out = img.copy()
    draw = ImageDraw.Draw(out)
    ang = rng.uniform(0, 2 * np.pi)
    rad = rng.uniform(0.18, 0.32) * size
    cx, cy = size / 2 + rad * np.cos(ang), size / 2 + rad * np.sin(ang)
    if kind == "scratch":
        length = rng.uniform(0.12, 0.25) * size
        t = rng.uniform(0, np.pi)
        pts = [
            (cx - length / 2 * np.cos(t), cy - length / 2 * np.sin(t)),
            (cx + length / 2 * np.cos(t), cy + length / 2 * np.sin(t)),
        ]
        width = int(rng.integers(2, 4))
        shade = int(rng.integers(20, 60))
        draw.line(pts, fill=(shade, shade, shade), width=width)
        draw_m.line(pts, fill=255, width=width)
    elif kind == "spot":
        r = rng.uniform(0.025, 0.05) * size
        color = tuple(int(v) for v in rng.integers(60, 140, 3)) if rng.random() < 0.5 else (150, 90, 40)
        box = [cx - r, cy - r * rng.uniform(0.6, 1.0), cx + r, cy + r * rng.uniform(0.6, 1.0)]
        draw.ellipse(box, fill=color)
        draw_m.ellipse(box, fill=255)
    elif kind == "chip":
        r = rng.uniform(0.04, 0.07) * size
        pts = [
            (cx + r * np.cos(a) * rng.uniform(0.6, 1.2), cy + r * np.sin(a) * rng.uniform(0.6, 1.2))
            for a in np.linspace(0, 2 * np.pi, 7)[:-1]
        ]
        bgc = tuple(int(v) for v in np.asarray(img)[2, 2])
        draw.polygon(pts, fill=bgc)
        draw_m.polygon(pts, fill=255)
    else:
        raise ValueError(f"unknown defect kind {kind!r}")
    return out, np.asarray(mask) > 127


def make_dataset(
    root: str | Path,
    n_train: int = 40,
    n_test_good: int = 10,
    n_test_defect: int = 6,
    size: int = 256,
    seed: int = 0,
) -> Path:
    """Write an MVTec-layout category: train/good, test/good, test/<defect>, ground_truth/<defect>."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    (root / "train" / "good").mkdir(parents=True, exist_ok=True)
    for i in range(n_train):
        good_part(rng, size).save(root / "train" / "good" / f"{i:03d}.png")
    (root / "test" / "good").mkdir(parents=True, exist_ok=True)
    for i in range(n_test_good):
        good_part(rng, size).save(root / "test" / "good" / f"{i:03d}.png")
    for kind in DEFECTS:
        (root / "test" / kind).mkdir(parents=True, exist_ok=True)
        (root / "ground_truth" / kind).mkdir(parents=True, exist_ok=True)
        for i in range(n_test_defect):
            img, mask = add_defect(rng, good_part(rng, size), kind)
            img.save(root / "test" / kind / f"{i:03d}.png")
            Image.fromarray(mask.astype(np.uint8) * 255).save(root / "ground_truth" / kind / f"{i:03d}_mask.png")
    return root
