"""Heatmap overlays a person can look at: the anomaly map coloured over the image, regions boxed.
numpy and Pillow only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from linewatch.vision.scoring import Prediction
from linewatch.vision.thresholds import Calibration

# a perceptually ordered blue -> cyan -> yellow -> red ramp (anchors of the "turbo" family)
_ANCHORS = np.array(
    [
        [48, 18, 59],
        [70, 107, 227],
        [40, 188, 235],
        [50, 241, 153],
        [164, 252, 60],
        [237, 208, 58],
        [251, 128, 34],
        [210, 49, 5],
        [122, 4, 3],
    ],
    dtype=np.float32,
)


def colorize(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] -> uint8 RGB."""
    v = np.clip(values, 0, 1) * (len(_ANCHORS) - 1)
    lo = np.floor(v).astype(int).clip(0, len(_ANCHORS) - 2)
    t = (v - lo)[..., None]
    return (_ANCHORS[lo] * (1 - t) + _ANCHORS[lo + 1] * t).astype(np.uint8)


def dim_outside(img: Image.Image, area: np.ndarray | None) -> Image.Image:
    """``img`` (RGB) greyed and darkened outside an inspection area (``linewatch.vision.area``): what the model does
    not inspect reads as such, not as a part found good."""
    if area is None:
        return img
    from linewatch.vision.area import at_size

    inside = at_size(area, img.width, img.height)
    grey = np.asarray(img.convert("L"), dtype=np.float32) * 0.35 + 40.0
    dimmed = Image.fromarray(np.repeat(grey.astype(np.uint8)[..., None], 3, axis=2))
    return Image.composite(img, dimmed, Image.fromarray(inside.astype(np.uint8) * 255))


def overlay(
    image: Image.Image,
    pred: Prediction,
    calibration: Calibration | None,
    alpha: float = 0.5,
    area: np.ndarray | None = None,
) -> Image.Image:
    """The image with its normalised anomaly map blended in (0.5 = threshold) and region boxes drawn; with the model's
    inspection ``area``, the photo outside it greyed."""
    img = image.convert("RGB")
    if calibration is not None:
        norm = calibration.normalize_map(pred.anomaly_map)
    else:
        m = pred.anomaly_map
        norm = (m - m.min()) / (np.ptp(m) + 1e-12)
    heat = Image.fromarray(colorize(norm))
    # blend more strongly where the map is high, so good areas stay readable
    weight = (alpha * np.clip(norm * 1.5, 0.15, 1.0) * 255).astype(np.uint8)
    out = dim_outside(Image.composite(heat, img, Image.fromarray(weight)), area)
    draw = ImageDraw.Draw(out)
    width = max(2, img.width // 200)
    for r in pred.regions:
        draw.rectangle([r.x, r.y, r.x + r.width - 1, r.y + r.height - 1], outline=(255, 255, 255), width=width)
    label = f"{pred.verdict}  {pred.normalized_score:.2f}"
    draw.rectangle([0, 0, 8 + 7 * len(label), 16], fill=(0, 0, 0))
    draw.text((4, 2), label, fill=(255, 80, 80) if pred.is_anomalous else (120, 255, 120))
    return out


def save_overlay(
    image: Image.Image, pred: Prediction, calibration: Calibration | None, path: Path, area: np.ndarray | None = None
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    overlay(image, pred, calibration, area=area).save(tmp, format="PNG")
    tmp.replace(path)
    return path
