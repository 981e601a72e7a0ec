"""What PatchCore and PaDiM share: the scikit-learn style contract, data flow, calibration and files.

``fit(good_images)`` learns (state ends in ``_``), ``predict(images)`` never mutates.
"""

from __future__ import annotations

import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from linewatch.core.estimator import Estimator
from linewatch.errors import DatasetError
from linewatch.vision.appearance import brightness, image_vector, kept_looks
from linewatch.vision.area import area_of, check_aspect, inspected_share
from linewatch.vision.backbones import CropEmbedder, FeatureExtractor, build_extractor
from linewatch.vision.batches import Source, Unreadable, iter_batches
from linewatch.vision.cpu import resolve_search
from linewatch.vision.datasets import fingerprint as dataset_fingerprint
from linewatch.vision.embeddings import CROP_SIZE
from linewatch.vision.images import Preprocess, input_shape_for, median_aspect
from linewatch.vision.methods import DetectorParams, check_across
from linewatch.vision.scoring import Prediction, map_components, planned_crop_boxes, postprocess
from linewatch.vision.thresholds import Calibration, calibrate

Progress = Callable[[str, int, int], None]  # (stage, done, total)
MIN_TRAIN_IMAGES = 5


def use_all_cores() -> int:
    """Torch threads follow the cores this process may use."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:
        n = os.cpu_count() or 1
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def score_on_one_pass(dets: Sequence, x: torch.Tensor, grids: bool = False) -> list[tuple[torch.Tensor, ...]]:
    """The raw outputs of each of ``dets`` (fitted PatchCore or PaDiM models on one backbone, layers and input) for
    the batch ``x``, from one backbone pass: ``_score``'s outputs, the search grids for the first model only when
    ``grids``."""
    maps = dets[0].graph().features.maps(x)
    return [d._score_features(d.graph().features.combine(maps), grids and i == 0) for i, d in enumerate(dets)]


class Detector(Estimator, ABC):
    """Parameters are declared in ``linewatch.vision.methods`` (the constructor is generated from them);
    ``fit`` validates them and keeps the resolved values (e.g. the backbone's default layers) in ``params_``."""

    engine = "vision"
    Params = DetectorParams
    default_strides: ClassVar[tuple[int, ...]] = (8, 16)
    score_floor: ClassVar[float] = 0.0  # no threshold is set below this score (``thresholds.calibrate``)
    _calibrate_on_fit = True  # False: the caller sets the thresholds after fit (the automatic choice, once chosen)

    def __init__(self, **params):
        super().__init__(**params)
        self.params_: dict | None = None
        self.extractor_: FeatureExtractor | None = None
        self.calibration_: Calibration | None = None
        # the held-out good images' raw scores and map peaks the thresholds came from, and the least threshold the
        # method allows: kept in the manifest so that another false-alarm rate needs no images (``recalibration``)
        self.calibration_scores_: dict | None = None
        self.input_shape_: tuple[int, int] | None = None  # (height, width) when not square
        self.train_info_: dict = {}
        self.skipped_: list[str] = []

    def _check_params(self, values: dict) -> None:
        check_across(values)
        if "search" in values:  # PatchCore's search: ``auto`` follows this CPU, and the model keeps what it chose
            values["search"], self._search_why = resolve_search(values["search"])

    def _noted(self, info: dict) -> dict:
        """``info`` (a fit's ``train_info_``) with how ``search="auto"`` was resolved, when it was."""
        why = getattr(self, "_search_why", None)
        if why and self.params_ is not None:
            info["search"] = {"asked": "auto", "chosen": self.params_["search"], "reason": why}
        return info

    @property
    def is_fitted(self) -> bool:
        return self.extractor_ is not None and self.params_ is not None

    # -- what subclasses provide -------------------------------------------------------------
    @abstractmethod
    def _start(self, n_images: int) -> None: ...

    @abstractmethod
    def _accumulate(self, x: torch.Tensor, progress: Progress | None) -> None: ...

    @abstractmethod
    def _finish(self, progress: Progress | None) -> None: ...

    @abstractmethod
    def _score(self, x: torch.Tensor, grids: bool = False) -> tuple[torch.Tensor, ...]:
        """(raw image scores (B,), anomaly maps (B, S, S)) for a preprocessed batch; with ``grids``, also the
        (features, residuals) grids of the search embeddings, (B, C, g, g) each, from the same pass."""
        ...

    @abstractmethod
    def graph(self) -> nn.Module:
        """The whole scoring path as one torch module, input (B, 3, S, S) -> (scores, maps, features, residuals),
        for export."""
        ...

    def layer_channels(self) -> tuple[int, ...]:
        """Channels of each tapped backbone layer, in the order the patch features concatenate them."""
        self._check_fitted()
        cached = getattr(self, "_layer_channels", None)
        if cached is None:
            with torch.inference_mode():
                outs = self.extractor_(torch.zeros(1, 3, 64, 64))
            cached = self._layer_channels = tuple(int(o.shape[1]) for o in outs)
        return cached

    @property
    def residual_layers(self) -> tuple[int, ...]:
        """Channels per backbone layer of the residuals grid (the region embeddings normalise each layer)."""
        return self.layer_channels()

    def crop_graph(self) -> CropEmbedder:
        """The crop vectors' module (``search_vectors="crop"``), on this model's backbone and layers."""
        self._check_fitted()
        cached = getattr(self, "_crop_graph", None)
        if cached is None or cached.extractor is not self.extractor_:
            cached = self._crop_graph = CropEmbedder(self.extractor_, CROP_SIZE).eval()
        return cached

    @abstractmethod
    def tensors(self) -> dict[str, torch.Tensor]:
        """Learned state to store, besides the backbone."""
        ...

    @abstractmethod
    def _restore(self, tensors: dict[str, torch.Tensor]) -> None: ...

    # -- the contract ----------------------------------------------------------------------------
    def inspection_area(self) -> np.ndarray | None:
        """The inspection area (``linewatch.vision.area``): a boolean mask in the photos' frame, True where inspected;
        None for the whole photo. Read once from the file ``inspect_area`` names, then kept with the model."""
        p = self.params_ if self.params_ is not None else self.get_params()
        path = p.get("inspect_area")
        cached = self.__dict__.get("_area")
        if cached is None or cached[0] != path:
            cached = self._area = (path, area_of(p))
        return cached[1]

    def keep_area(self) -> np.ndarray | None:
        """Read the inspection area's file again, now, and keep it with the model (a fit starts with it: the model
        saved afterwards keeps the mask it was fitted with, even if the file has gone by then)."""
        self.__dict__.pop("_area", None)
        return self.inspection_area()

    def area_input(self) -> np.ndarray | None:
        """The inspection area at the model input's size (float32, 1 inside, 0 outside), or None."""
        area = self.inspection_area()
        return None if area is None else self.preprocess.mask_to_input(area).astype(np.float32)

    @property
    def preprocess(self) -> Preprocess:
        p = self.params_ if self.params_ is not None else self.get_params()
        return Preprocess(p["image_size"], p["center_crop"], self.input_shape_, p["reducing_gap"] or None)

    def split(self, images: Sequence[Source]) -> tuple[list[Source], list[Source]]:
        """(train, held-out) with a fixed seed; held-out good images set the thresholds."""
        images = list(images)
        holdout, seed = self.params_["holdout"], self.params_["seed"]
        n_hold = int(round(holdout * len(images)))
        if holdout > 0:  # at least a few images, or the threshold is guesswork
            n_hold = max(n_hold, min(10, len(images) // 4), 1)
        order = np.random.default_rng(seed).permutation(len(images))
        hold = sorted(order[:n_hold].tolist())
        held = set(hold)
        return [images[i] for i in range(len(images)) if i not in held], [images[i] for i in hold]

    def fit(self, images: Sequence[Source], progress: Progress | None = None, fingerprint: str | None = None):
        p = self.params_ = self._validate_params()
        self.extractor_ = None
        self._layer_channels = None  # of the previous fit's backbone
        use_all_cores()
        images = list(images)
        if len(images) < MIN_TRAIN_IMAGES:
            raise DatasetError(f"need at least {MIN_TRAIN_IMAGES} good images to train, got {len(images)}")
        started = time.perf_counter()
        train, held = self.split(images)
        self.skipped_ = []
        self.input_shape_, aspect = None, None
        if p["keep_aspect"] and not p["center_crop"]:
            aspect = median_aspect(train)
            shape = input_shape_for(aspect or 1.0, p["image_size"])
            self.input_shape_ = shape if shape[0] != shape[1] else None
        area = self.keep_area()  # a wrong mask fails before the training, not after it
        if area is not None:
            check_aspect(area, aspect if aspect is not None else median_aspect(train), p["inspect_area"])
        extractor = build_extractor(p["backbone"], p["layers"], self.default_strides, p["weights"])
        p["layers"] = extractor.layers
        self.extractor_ = extractor  # the subclasses' feature hooks read it during fit
        self._start(len(train))
        done = 0
        with torch.inference_mode():
            for batch in iter_batches(train, self.preprocess, p["batch_size"], skip_bad=True):
                self.skipped_ += batch.skipped
                if len(batch.sizes):
                    self._accumulate(torch.from_numpy(batch.inputs), progress)
                done += len(batch.sizes) + len(batch.skipped)
                if progress:
                    progress("features", done, len(train))
        if fingerprint is None and all(isinstance(x, str | Path) for x in images):
            fingerprint = dataset_fingerprint([Path(x) for x in images])
        used = len(train) - len(self.skipped_)
        if used < MIN_TRAIN_IMAGES - 1:
            self.extractor_ = None
            why = f" ({self.skipped_[0]})" if self.skipped_ else ""
            raise DatasetError(f"only {used} readable training images; need at least {MIN_TRAIN_IMAGES}{why}")
        with torch.inference_mode():
            self._finish(progress)
        if self._calibrate_on_fit:
            self._calibrate(held, progress)
        check = self._self_check(held, progress) if held and p["self_check"] else None
        self.train_info_ = {
            "images": len(images),
            "train_images": used,
            "holdout_images": len(held),
            "skipped": self.skipped_[:20],
            "seconds": round(time.perf_counter() - started, 2),
            "fingerprint": fingerprint,
            "input_shape": list(self.preprocess.input_hw),
            "median_aspect": round(aspect, 4) if aspect else None,
        }
        if area is not None:
            self.train_info_["inspect_area"] = {"inspected": inspected_share(area)}
        if check is not None:
            self.train_info_["self_check"] = check.to_dict()
            self.train_info_["self_check_seconds"] = round(check.seconds, 2)
        self._noted(self.train_info_)
        return self

    def _calibrate(self, held: Sequence[Source], progress: Progress | None = None) -> None:
        """Set the thresholds from the scores and map peaks of held-out good images (none: no calibration)."""
        self.calibration_ = None
        if not held:
            return
        scores, peaks, vectors, lit = [], [], [], []
        batches = self._raw_batches(held, progress, "calibrate", True, grids=True)
        for batch_scores, maps, _sizes, _names, grids, batch_lit in batches:
            scores.extend(batch_scores.tolist())
            peaks.extend(maps.reshape(len(maps), -1).max(1).tolist())
            vectors.extend(image_vector(g[0]) for g in grids)
            lit.extend(batch_lit.tolist())
        if scores:
            self._set_calibration(scores, peaks, self.score_floor, np.stack(vectors), lit)

    def _set_calibration(
        self, scores: Sequence[float], peaks: Sequence[float], floor: float, vectors=None, lit=None
    ) -> None:
        """The thresholds at ``params_["false_alarm_rate"]`` from held-out good images' raw scores and map peaks, which
        are kept (``calibration_scores_``) with the floor and, when given, the images' looks (``appearance``: whole
        image vectors and brightness, for the drift watch)."""
        scores, peaks = np.asarray(scores, np.float64), np.asarray(peaks, np.float64)
        self.calibration_ = calibrate(scores, peaks, self.params_["false_alarm_rate"], floor)
        self.calibration_scores_ = {
            "image": scores.tolist(),
            "peak": peaks.tolist(),
            "floor": float(floor),
            **kept_looks(vectors, lit),
        }

    def _self_check(self, held: Sequence[Source], progress: Progress | None = None, per_image: int = 1, prepared=None):
        from linewatch.vision.selfcheck import self_check

        relabel = (lambda _stage, d, t: progress("self-check", d, t)) if progress else None
        return self_check(
            self, held, per_image=per_image, seed=self.params_["seed"], progress=relabel, prepared=prepared
        )

    def _raw_batches(
        self,
        images: Sequence[Source],
        progress: Progress | None,
        stage: str,
        skip_bad: bool = False,
        grids: bool = False,
        unreadable: Unreadable | None = None,
    ) -> Iterator[tuple[np.ndarray, np.ndarray, list, list, list, np.ndarray]]:
        """(scores, maps, sizes, names, per image (features, residuals, preprocessed input) or None, brightness) per
        batch; with ``unreadable``, an image that cannot be read is told to it and left out."""
        use_all_cores()
        done = 0
        skip_bad = skip_bad or unreadable is not None
        with torch.inference_mode():
            for batch in iter_batches(list(images), self.preprocess, self.params_["batch_size"], skip_bad=skip_bad):
                batch.report_skipped(unreadable)
                if len(batch.sizes):
                    out = [t.numpy() for t in self._score(torch.from_numpy(batch.inputs), grids)]
                    per_image = (
                        list(zip(out[2], out[3], batch.inputs, strict=True)) if grids else [None] * len(batch.sizes)
                    )
                    yield out[0], out[1], batch.sizes, batch.names, per_image, brightness(batch.inputs)
                done += len(batch.sizes) + len(batch.skipped)
                if progress:
                    progress(stage, done, len(images))

    def raw_scores(
        self, images: Sequence[Source], progress: Progress | None = None, unreadable: Unreadable | None = None
    ) -> Iterator[tuple[float, np.ndarray, tuple[int, int], str | None]]:
        """(raw score, map at input resolution, original size, name) per image, in order; with ``unreadable``, an
        image that cannot be read is told to it and left out (else it raises)."""
        self._check_fitted()
        for scores, maps, sizes, names, _grids, _lit in self._raw_batches(
            images, progress, "score", unreadable=unreadable
        ):
            yield from zip(scores.tolist(), maps, sizes, names, strict=True)

    def raw_looks(
        self, images: Sequence[Source], progress: Progress | None = None, unreadable: Unreadable | None = None
    ) -> Iterator[tuple[float, float, np.ndarray, float, str | None]]:
        """(raw score, map peak, look, brightness, name) per image, in order (``appearance``: what the drift watch and
        a recalibration keep of good images); unreadable images as ``raw_scores``."""
        self._check_fitted()
        batches = self._raw_batches(images, progress, "score", grids=True, unreadable=unreadable)
        for scores, maps, _sizes, names, grids, lit in batches:
            for score, amap, g, b, name in zip(scores.tolist(), maps, grids, lit.tolist(), names, strict=True):
                yield score, float(np.max(amap)), image_vector(g[0]), b, name

    #: torch models always have the search embeddings (the graph is rebuilt from the stored tensors)
    has_embeddings: ClassVar[bool] = True

    def predict(
        self, images: Sequence[Source], progress: Progress | None = None, embeddings: bool = True
    ) -> list[Prediction]:
        return list(self.iter_predict(images, progress, embeddings))

    def iter_predict(
        self,
        images: Sequence[Source],
        progress: Progress | None = None,
        embeddings: bool = True,
        unreadable: Unreadable | None = None,
    ) -> Iterator[Prediction]:
        """Predictions in order; each carries ``embeddings`` (image, regions, peak) from the same pass unless
        ``embeddings=False``. An image that cannot be read raises ImageError, or with ``unreadable`` is told to it
        as (path, why), at most a batch ahead of the predictions around it, and left out."""
        self._check_fitted()
        pre = self.preprocess
        min_area = self.params_["min_region_area"]
        layers = self.residual_layers if embeddings else None
        crops = embeddings and self.params_.get("search_vectors") == "crop"
        batches = self._raw_batches(images, progress, "score", grids=embeddings, unreadable=unreadable)
        for scores, maps, sizes, names, grids, lit in batches:
            found = [map_components(amap, self.calibration_, min_area) for amap in maps]
            planned = self._batch_crops(maps, grids, found) if crops else [None] * len(maps)
            for score, amap, (w, h), name, g, crop, comps, b in zip(
                scores.tolist(), maps, sizes, names, grids, planned, found, lit.tolist(), strict=True
            ):
                g = g[:2] if g is not None else None
                yield postprocess(
                    score, amap, self.calibration_, pre, w, h, min_area, name, g, layers, crop, comps, brightness=b
                )

    def _batch_crops(
        self, maps: np.ndarray, grids: list, found: list
    ) -> list[Callable[[tuple[int, int, int, int]], np.ndarray]]:
        """Per image of a batch, its crop vectors by box: every crop ``postprocess`` will ask for, given the maps'
        components (``planned_crop_boxes``), embedded in one backbone pass for the whole batch."""
        plans = [planned_crop_boxes(comps, amap) for comps, amap in zip(found, maps, strict=True)]
        crops = [
            torch.from_numpy(np.ascontiguousarray(g[2][:, y0:y1, x0:x1]))[None]
            for g, boxes in zip(grids, plans, strict=True)
            for x0, y0, x1, y1 in boxes
        ]
        with torch.inference_mode():
            vectors = self.crop_graph().many(crops).numpy()
        tables, i = [], 0
        for boxes in plans:
            tables.append(dict(zip(boxes, vectors[i : i + len(boxes)], strict=True)).__getitem__)
            i += len(boxes)
        return tables
