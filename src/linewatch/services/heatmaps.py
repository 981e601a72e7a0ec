"""Heatmaps as the service stores and serves them.

An inspection stores its anomaly map once, small and exact enough to look at: the calibrated map (0.5 = the pixel
threshold, a sigmoid of the raw map) quantised to 8 bits, at most ``MAX_SIDE`` pixels on its longer side, as a
greyscale PNG. Encoding that costs about a millisecond, where colouring and blending a full-resolution overlay costs
tens (100 ms for a 900×900 image), and it is all that is needed to draw any view later: the coloured map
(``/heatmap``, for a dashboard to lay over the image with its own opacity) and the blended overlay with region boxes
(``/overlay``) are rendered when someone asks. Inspections stored before this format hold a coloured RGB overlay;
those are served as they are."""

from __future__ import annotations

import io

import numpy as np
from imagecodecs import png_encode
from PIL import Image, ImageDraw

from linewatch.vision.overlay import colorize, dim_outside
from linewatch.vision.scoring import Prediction
from linewatch.vision.thresholds import Calibration

MAX_SIDE = 256


def _small(amap: np.ndarray, max_side: int) -> np.ndarray:
    h, w = amap.shape
    scale = max_side / max(h, w)
    if scale >= 1:
        return amap.astype(np.float32, copy=False)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    # box filter: each stored pixel is the mean of the map pixels it covers
    return np.asarray(Image.fromarray(amap.astype(np.float32, copy=False), mode="F").resize(size, Image.BOX))


def encode_map(pred: Prediction, calibration: Calibration | None, max_side: int = MAX_SIDE) -> bytes:
    """The stored form: the calibrated anomaly map, 8-bit greyscale PNG, longer side ≤ ``max_side``."""
    if pred.map_at is not None and pred.size is not None and max(pred.size) > max_side:
        # straight from the model-resolution map (which holds all the detail there is) to the stored size
        w, h = pred.size
        scale = max_side / max(w, h)
        small = pred.map_at(max(1, round(w * scale)), max(1, round(h * scale))).astype(np.float32, copy=False)
    else:
        small = _small(pred.anomaly_map, max_side)
    if calibration is not None:
        norm = calibration.normalize_map(small)
    else:  # an uncalibrated model: the map's own range
        norm = (small - small.min()) / (float(np.ptp(small)) + 1e-12)
    q = np.clip(np.rint(norm * 255.0), 0, 255).astype(np.uint8)
    # libpng through imagecodecs (a service dependency) at the fastest deflate level: 1.3 ms at 256 x 256 against
    # Pillow's 1.8 ms, on the request path; the same pixels, any PNG reader opens it
    return png_encode(np.ascontiguousarray(q), level=1)


def _open(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def is_map(data: bytes) -> bool:
    """Whether a stored heatmap blob is a calibrated map (greyscale) rather than an old coloured overlay."""
    return _open(data).mode == "L"


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=3)
    return buf.getvalue()


def colored(data: bytes) -> bytes:
    """The stored map coloured (blue = normal, yellow at the threshold, red = far above), as an RGB PNG at the
    stored size; an old coloured overlay is returned unchanged."""
    img = _open(data)
    if img.mode != "L":
        return data
    norm = np.asarray(img, dtype=np.float32) / 255.0
    return _png(Image.fromarray(colorize(norm)))


def blended(
    image: Image.Image, data: bytes, regions: list[dict], alpha: float = 0.5, area: np.ndarray | None = None
) -> bytes:
    """The image with the coloured map blended in where it is high and the regions boxed, at the image's size; with
    the model's inspection ``area``, the photo outside it greyed (``overlay.dim_outside``)."""
    stored = _open(data)
    if stored.mode != "L":  # an old overlay already is this picture
        return data
    img = image.convert("RGB")
    norm = np.asarray(stored.resize(img.size, Image.BILINEAR), dtype=np.float32) / 255.0
    heat = Image.fromarray(colorize(norm))
    weight = (alpha * np.clip(norm * 1.5, 0.15, 1.0) * 255).astype(np.uint8)
    out = dim_outside(Image.composite(heat, img, Image.fromarray(weight)), area)
    draw = ImageDraw.Draw(out)
    width = max(2, img.width // 200)
    for r in regions:
        draw.rectangle(
            [r["x"], r["y"], r["x"] + r["width"] - 1, r["y"] + r["height"] - 1], outline=(255, 255, 255), width=width
        )
    return _png(out)
