"""Embeddings for defect search, from the scoring pass itself (numpy only, so the ONNX Runtime path has them too).

The scoring graph has two extra outputs on a coarse grid of cells (the patch grid average-pooled so that it is
about 16 x 16 cells, whatever the input size):

- ``features``: the patch features (what the part looks like there), ``(C, g, g)``;
- ``residuals``: the patch features minus what a good part looks like there, ``(C', g, g)``. PatchCore: minus the
  nearest memory-bank entry (the one that set the patch's anomaly score); PaDiM: minus the position's mean (over
  the model's selected channels).

Pooled here, outside the graph:

- the **image** embedding is the mean of ``features`` over all cells (the whole part);
- a **region** embedding pools the cells under one defect region (a component of the thresholded anomaly map),
  each cell weighted by how far the region's pixels in it rise above the threshold (anomaly-weighted pooling).
  What it pools is the *residuals* (how this spot differs from the nearest normal patch: the defect, not the
  part), L2-normalised per backbone layer so that no layer's scale dominates, and it appends a small code of the
  region's extent (a soft histogram bin of log10 of its share of the image: a chip and a broken-off half differ
  mostly in size). See docs/architecture.md, "Defect search", for the choice and the numbers behind it.
- the **peak** embedding pools the same way around the anomaly map's highest point, found on the grid: the
  component of cells whose mean anomaly is at least (highest + median) / 2 that holds the highest cell, each
  weighted by its height above that level. It exists for every image, so one with no region above the threshold
  can still be searched by its most anomalous spot.
- with a model's ``search_vectors="crop"`` (the default since 2026-12-05), each region and peak vector also carries
  a **crop** vector and the **image** vector: ``sqrt(0.7) * region ++ sqrt(0.2) * crop ++ sqrt(0.1) * image``, so
  that the cosine of two such vectors is ``0.7 * region cosine + 0.2 * crop cosine + 0.1 * image cosine`` and any
  cosine index ranks by that blend. A region's crop is the model's input cut around that region (the first
  ``CROP_REGIONS`` by peak score; the others and the peak vector take the top region's; with no region, around the
  map's peak), grown to twice its side and at least 32 px, resized to 64 px and run through the model's own backbone
  layers, each layer mean-pooled and L2-normalised
  (``linewatch.vision.backbones.CropEmbedder``; ``crops.onnx`` in an export): what the defect looks like up close,
  where the residuals say how it differs from the nearest good patch. See docs/benchmarks.md, "Defect search".

All vectors are float32 and L2-normalised: inner product is cosine similarity.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from linewatch.vision.regions import label

# the region embedding (what ``Embeddings.regions`` holds); the other modes are the alternatives compared in
# benchmarks/search_retrieval.py and docs/architecture.md
DEFAULT_REGION_MODE = "residuals-layers-extent"
REGION_MODES = ("features", "residuals", "residuals-layers", "residuals-layers-extent")
EXTENT_WEIGHT = 0.5  # the extent code's share of a region vector (its norm before the final normalisation)
EXTENT_CENTRES = np.arange(-4.5, 0.01, 0.25)  # log10 of the region's share of the image
EXTENT_WIDTH = 0.5
TARGET_CELLS = 16  # the grid is about this many cells a side
CROP_SIZE = 64  # the crop's side in pixels as the backbone sees it (96 measured the same, at 1.5x the cost)
CROP_GROW = 0.5  # the box grows by this share of its longer side on every side (twice its side in all) ...
CROP_LEAST = 32  # ... and is at least this many model-input pixels a side
CROP_REGIONS = 4  # regions with a crop of their own (the highest peaks); the others share the top region's
# shares of the cosine: region (residuals, extent), crop, whole image; chosen on bottle, magnetic_tile and the
# synthetic set (docs/benchmarks.md, "Defect search")
CONTEXT_WEIGHTS = (0.7, 0.2, 0.1)


def grid_pool(h: int, w: int) -> int:
    """The pooling factor from the patch grid (h, w) to the embedding grid: the largest divisor of both that
    leaves at least ``TARGET_CELLS`` cells a side (1 for small grids)."""
    limit = max(1, min(h, w) // TARGET_CELLS)
    return max(p for p in range(1, limit + 1) if h % p == 0 and w % p == 0)


@dataclass
class Embeddings:
    """Search vectors of one scored image (all L2-normalised float32)."""

    image: np.ndarray  # (C,) the whole image
    regions: np.ndarray  # (R, E) one per Prediction.regions, same order
    peak: np.ndarray  # (E,) around the anomaly map's peak

    def defects(self) -> np.ndarray:
        """What region-level search indexes and queries for this image: its regions, or its peak if it has none."""
        return self.regions if len(self.regions) else self.peak[None]

    @property
    def dim(self) -> int:
        return int(self.peak.shape[0])


def _normalize(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(n, 1e-12)


@lru_cache(maxsize=16)
def _cell_of_pixel(height: int, width: int, gh: int, gw: int) -> np.ndarray:
    """Flat cell index of each pixel of a (height, width) map on a (gh, gw) grid."""
    cy = np.minimum(np.arange(height) * gh // height, gh - 1)
    cx = np.minimum(np.arange(width) * gw // width, gw - 1)
    return (cy[:, None] * gw + cx[None, :]).ravel()


@lru_cache(maxsize=16)
def _cell_counts(height: int, width: int, gh: int, gw: int) -> np.ndarray:
    """Pixels per cell."""
    return np.bincount(_cell_of_pixel(height, width, gh, gw), minlength=gh * gw).astype(np.float64)


def _pool(weights: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """(K, cells) weights times a (C, gh, gw) grid: (K, C), rows normalised."""
    return _normalize(weights @ grid.reshape(grid.shape[0], -1).T)


def _per_layer(v: np.ndarray, layers: tuple[int, ...]) -> np.ndarray:
    """Each layer's block of channels L2-normalised, then the whole row."""
    if sum(layers) != v.shape[1]:
        raise ValueError(f"layer channel counts {layers} do not add up to the grid's {v.shape[1]} channels")
    blocks, start = [], 0
    for c in layers:
        blocks.append(_normalize(v[:, start : start + c]))
        start += c
    return _normalize(np.concatenate(blocks, axis=1))


def extent_code(area_fraction: np.ndarray) -> np.ndarray:
    """(K, len(EXTENT_CENTRES)) unit rows: Gaussian bumps over log10 of each region's share of the image, so the
    inner product of two codes falls off with the ratio of their areas."""
    z = np.log10(np.clip(np.asarray(area_fraction, dtype=np.float64), 1e-9, 1.0))
    return _normalize(np.exp(-0.5 * ((z[:, None] - EXTENT_CENTRES[None]) / EXTENT_WIDTH) ** 2))


def region_vectors(
    weights: np.ndarray,
    features: np.ndarray,
    residuals: np.ndarray,
    layers: tuple[int, ...],
    area_fraction: np.ndarray,
    mode: str = DEFAULT_REGION_MODE,
) -> np.ndarray:
    """Region vectors from (K, cells) pooling weights: see REGION_MODES."""
    if mode == "features":
        return _pool(weights, features)
    if mode == "residuals":
        return _pool(weights, residuals)
    pooled = weights @ residuals.reshape(residuals.shape[0], -1).T
    if mode == "residuals-layers":
        return _per_layer(pooled, layers)
    if mode == "residuals-layers-extent":
        code = EXTENT_WEIGHT * extent_code(area_fraction)
        return _normalize(np.concatenate([_per_layer(pooled, layers), code], axis=1))
    raise ValueError(f"unknown region embedding mode {mode!r}: one of {', '.join(REGION_MODES)}")


def region_dim(
    features_dim: int, residuals_dim: int, mode: str = DEFAULT_REGION_MODE, search_vectors: str = "regions"
) -> int:
    """The dimension of a region (and peak) vector; ``search_vectors="crop"`` appends the crop and image vectors,
    ``features_dim`` each (the crop is pooled from the same layers as the features)."""
    base = (
        features_dim if mode == "features" else residuals_dim + (len(EXTENT_CENTRES) if mode.endswith("-extent") else 0)
    )
    return base + (2 * features_dim if search_vectors == "crop" else 0)


def crop_box(boxes: list[tuple[int, int, int, int, float]], input_map: np.ndarray) -> tuple[int, int, int, int]:
    """The crop of the model input the crop vector is made from, as x0, y0, x1, y1 (input pixels, inside the
    input): around the highest-scoring of ``boxes`` (x, y, width, height, max score) or, with none, the map's
    highest pixel, grown by ``CROP_GROW`` of its longer side on every side and at least ``CROP_LEAST`` a side."""
    height, width = input_map.shape
    if boxes:
        x, y, w, h, _ = max(boxes, key=lambda b: b[4])
        x0, y0, x1, y1 = x, y, x + w, y + h
    else:
        py, px = np.unravel_index(int(np.argmax(input_map)), input_map.shape)
        x0, y0, x1, y1 = int(px), int(py), int(px) + 1, int(py) + 1
    half = max(max(x1 - x0, y1 - y0) * (0.5 + CROP_GROW), CROP_LEAST / 2)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    box = (int(max(0, cx - half)), int(max(0, cy - half)), int(min(width, cx + half)), int(min(height, cy + half)))
    if box[2] - box[0] < 2 or box[3] - box[1] < 2:  # an input smaller than a crop: all of it
        return 0, 0, width, height
    return box


def with_context(vecs: np.ndarray, crop: np.ndarray, image: np.ndarray) -> np.ndarray:
    """(K, E) unit region vectors with their unit crop vectors (one per row, or one ``(C,)`` for all) and the
    image's unit vector appended, weighted so that inner products blend the three cosines by ``CONTEXT_WEIGHTS``;
    rows stay unit."""
    a, b, c = (float(np.sqrt(w)) for w in CONTEXT_WEIGHTS)
    k = len(vecs)
    crop = np.broadcast_to(_normalize(crop).reshape(-1, crop.shape[-1]), (k, crop.shape[-1]))
    image = np.broadcast_to(_normalize(image)[None], (k, image.shape[-1]))
    return _normalize(np.concatenate([a * vecs, b * crop, c * image], axis=1))


def embed(
    features: np.ndarray,
    residuals: np.ndarray,
    input_map: np.ndarray,
    labels: np.ndarray,
    components: list[int],
    threshold: float | None,
    layers: tuple[int, ...] | None = None,
    mode: str = DEFAULT_REGION_MODE,
    crop: np.ndarray | None = None,
) -> Embeddings:
    """Embeddings of one image from its grids, its anomaly map at model input resolution, and the component
    labels of its regions (``regions.find_components``; ``components[i]`` is region i's label). ``layers``: the
    residual grid's channel count per backbone layer (``Detector.residual_layers``); None treats it as one.
    ``crop``: crop vectors (``crop_box``), appended with the image vector to the region and peak vectors
    (``with_context``): one ``(C,)`` for all, or ``(1 + len(components), C)``, the peak's first, then each
    region's; None leaves them as they are (``search_vectors="regions"``)."""
    features = np.asarray(features, dtype=np.float32)
    residuals = np.asarray(residuals, dtype=np.float32)
    layers = tuple(layers) if layers else (residuals.shape[0],)
    gh, gw = features.shape[-2:]
    height, width = input_map.shape
    cells = _cell_of_pixel(height, width, gh, gw)
    amap = np.asarray(input_map, dtype=np.float32).ravel()
    n_cells = gh * gw
    image = _normalize(features.reshape(features.shape[0], -1).mean(1))

    # the peak, on the grid (cheap: 16 x 16 cells): the component of cells whose mean anomaly is at least
    # (highest + median) / 2 that holds the highest cell, each cell weighted by its height above that level
    counts = _cell_counts(height, width, gh, gw)
    if height % gh == 0 and width % gw == 0:  # the usual case: equal cells, a reshape
        cell_mean = input_map.reshape(gh, height // gh, gw, width // gw).mean(axis=(1, 3), dtype=np.float64).ravel()
    else:
        cell_mean = np.bincount(cells, weights=amap, minlength=n_cells) / counts
    top = int(np.argmax(cell_mean))
    lo = 0.5 * (float(cell_mean[top]) + float(np.median(cell_mean)))
    peak_labels, _ = label((cell_mean >= lo).reshape(gh, gw))
    in_peak = peak_labels.ravel() == peak_labels.ravel()[top]
    weights = np.zeros((1 + len(components), n_cells), dtype=np.float64)
    weights[0] = np.where(in_peak, (cell_mean - lo + 1e-6) * counts, 0.0)
    area = [float(counts[in_peak].sum())]
    if components:
        lab = labels.ravel()
        fg = np.flatnonzero(lab)
        order = np.argsort(lab[fg], kind="stable")
        fg = fg[order]
        bounds = np.searchsorted(lab[fg], np.arange(int(lab.max()) + 2))
        thr = float(threshold) if threshold is not None else float(amap.min())
        for i, k in enumerate(components, 1):
            pixels = fg[bounds[k] : bounds[k + 1]]
            w = np.maximum(amap[pixels] - thr, 0.0) + 1e-6  # anomaly-weighted, never zero inside the region
            weights[i] = np.bincount(cells[pixels], weights=w, minlength=n_cells)
            area.append(float(len(pixels)))
    weights /= weights.sum(1, keepdims=True)
    area = np.asarray(area) / float(height * width)
    vecs = region_vectors(weights.astype(np.float32), features, residuals, layers, area, mode)
    if crop is not None:
        vecs = with_context(vecs, np.asarray(crop, dtype=np.float32), image)
    return Embeddings(image=image, regions=vecs[1:], peak=vecs[0])
