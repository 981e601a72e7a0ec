"""From a model's raw output to what a user reads: normalised score (in [0, 1]), verdict, map at the original size,
defect regions. Shared by the PyTorch and the ONNX Runtime paths, so both report the same; numpy only."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from linewatch.vision.embeddings import CROP_REGIONS, Embeddings, crop_box, embed
from linewatch.vision.images import Preprocess
from linewatch.vision.regions import Region, find_components
from linewatch.vision.thresholds import Calibration

ANOMALOUS = "anomalous"
GOOD = "good"


@dataclass
class Prediction:
    score: float  # raw anomaly score of the method
    normalized_score: float  # in (0, 1); 0.5 is the decision threshold
    verdict: str  # "anomalous" or "good"
    # raw scores per pixel of the original image (float32, H x W); None with ``map_at`` and ``size``: made on first use
    # (scoring a stream for verdicts and regions never pays for the full-size map)
    anomaly_map: np.ndarray | None
    regions: list[Region] = field(default_factory=list)
    path: str | None = None
    # search vectors from the same pass (see linewatch.vision.embeddings); None for a model exported to ONNX
    # before embeddings existed (re-export it)
    embeddings: Embeddings | None = None
    # the original image's (width, height) and the map at any size (from the model-resolution map, so a small
    # picture of it never goes through the full-size one); None where a prediction was built otherwise
    size: tuple[int, int] | None = field(default=None, repr=False, compare=False)
    map_at: Callable[[int, int], np.ndarray] | None = field(default=None, repr=False, compare=False)
    # the mean luminance (0 to 1) of the model's input (``appearance.brightness``): what the drift watch compares
    brightness: float | None = field(default=None, compare=False)

    def __post_init__(self):
        if self.anomaly_map is None and self.map_at is not None and self.size is not None:
            del self.anomaly_map  # looked up through __getattr__ until it is made

    def __getattr__(self, name):  # only for attributes not set: the full-size map before its first use
        if name == "anomaly_map" and "map_at" in self.__dict__ and self.map_at is not None:
            self.anomaly_map = self.map_at(*self.size)
            return self.anomaly_map
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def is_anomalous(self) -> bool:
        return self.verdict == ANOMALOUS

    def to_dict(self) -> dict:
        d = {
            "score": self.score,
            # a model without a threshold (trained with holdout 0) has no normalised score: null, not NaN (no JSON)
            "normalized_score": None if math.isnan(self.normalized_score) else self.normalized_score,
            "verdict": self.verdict,
            "regions": [r.to_dict() for r in self.regions],
        }
        if self.path is not None:
            d = {"path": self.path, **d}
        return d


Box = tuple[int, int, int, int]  # x0, y0, x1, y1 of the model input


def crop_boxes(found: list[Region], input_map: np.ndarray) -> list[Box]:
    """The boxes ``region_crops`` embeds, in order: each of the first ``CROP_REGIONS`` regions' (by peak score), or
    with no region the map's peak's."""
    if not found:
        return [crop_box([], input_map)]
    return [crop_box([(r.x, r.y, r.width, r.height, r.max_score)], input_map) for r in found[:CROP_REGIONS]]


Components = tuple[list[Region], np.ndarray, list[int]]  # ``find_components``: regions, label image, their labels


def map_components(input_map: np.ndarray, calibration: Calibration | None, min_region_area: int) -> Components | None:
    """The regions of a map at model resolution above the pixel threshold (None before there is a threshold)."""
    if calibration is None:
        return None
    return find_components(input_map, calibration.pixel_threshold, min_region_area)


def planned_crop_boxes(components: Components | None, input_map: np.ndarray) -> list[Box]:
    """The crop boxes ``postprocess`` will ask for, given the map's ``map_components``, so that a batch's crops can be
    embedded ahead in one backbone pass (the PyTorch path)."""
    return crop_boxes(components[0] if components is not None else [], input_map)


def region_crops(found: list[Region], input_map: np.ndarray, crop: Callable[[Box], np.ndarray]) -> np.ndarray:
    """(1 + len(found), C) crop vectors: the peak's (the top region's crop, or the map's peak's when there is no
    region), then each region's own crop; regions after the first ``CROP_REGIONS`` (by peak score) share the top
    region's, which bounds the backbone passes per image."""
    own = [crop(box) for box in crop_boxes(found, input_map)]
    if not found:
        return own[0][None]
    top = own[0]
    return np.stack([top, *own, *([top] * (len(found) - len(own)))])


def postprocess(
    raw_score: float,
    input_map: np.ndarray,
    calibration: Calibration | None,
    preprocess: Preprocess,
    width: int,
    height: int,
    min_region_area: int = 0,
    path: str | None = None,
    grids: tuple[np.ndarray, np.ndarray] | None = None,
    layers: tuple[int, ...] | None = None,
    crop: Callable[[tuple[int, int, int, int]], np.ndarray] | None = None,
    found_components: Components | None = None,
    brightness: float | None = None,
) -> Prediction:
    """``grids``: the image's (features, residuals) outputs of the scoring graph, for its embeddings; ``layers``:
    the residuals' channels per backbone layer; ``crop``: the crop vector of a box of this image's model input
    (x0, y0, x1, y1), for models whose search vectors carry one (``embeddings.crop_box``); ``found_components``:
    this map's ``map_components`` when the caller has them already; ``brightness``: the input's
    (``appearance.brightness``)."""

    def map_at(w: int, h: int) -> np.ndarray:
        return preprocess.map_to_original(input_map, w, h)

    if calibration is None:  # fitted without held-out images: no threshold yet
        emb = None
        if grids is not None:
            vec = crop(planned_crop_boxes(None, input_map)[0]) if crop is not None else None
            emb = embed(*grids, input_map, np.zeros(input_map.shape, np.int32), [], None, layers, crop=vec)
        return Prediction(
            float(raw_score), float("nan"), GOOD, None, [], path, emb, (width, height), map_at, brightness
        )
    norm = float(calibration.normalize(raw_score))
    verdict = ANOMALOUS if raw_score >= calibration.image_threshold else GOOD
    # components of the map at model resolution (the map holds no finer detail), placed on the original
    area_scale = preprocess.area_scale(width, height)
    found, labels, components = found_components or map_components(input_map, calibration, min_region_area)
    regions = [
        Region(
            *preprocess.box_to_original(r.x, r.y, r.width, r.height, width, height),
            area=int(round(r.area * area_scale)),
            max_score=r.max_score,
            mean_score=r.mean_score,
        )
        for r in found
    ]
    emb = None
    if grids is not None:
        vec = None
        if crop is not None:
            vec = region_crops(found, input_map, crop)
        emb = embed(*grids, input_map, labels, components, calibration.pixel_threshold, layers, crop=vec)
    return Prediction(float(raw_score), norm, verdict, None, regions, path, emb, (width, height), map_at, brightness)
