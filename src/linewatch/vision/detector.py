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

from linewatch.errors import DatasetError, LinewatchError
from linewatch.vision.backbones import DEFAULT_BACKBONE, FeatureExtractor, build_extractor
from linewatch.vision.batches import Source, iter_batches
from linewatch.vision.datasets import fingerprint as dataset_fingerprint
from linewatch.vision.images import Preprocess
from linewatch.vision.scoring import Prediction, postprocess
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


class Detector(ABC):
    method: ClassVar[str] = ""
    default_strides: ClassVar[tuple[int, ...]] = (8, 16)

    def __init__(
        self,
        backbone: str = DEFAULT_BACKBONE,
        layers: list[str] | None = None,
        image_size: int = 256,
        center_crop: int | None = None,
        weights: str | Path | None = None,
        holdout: float = 0.1,
        false_alarm_rate: float = 0.01,
        min_region_area: int = 16,
        sigma: float = 4.0,
        batch_size: int = 8,
        seed: int = 0,
    ):
        if image_size < 32 or image_size > 2048:
            raise LinewatchError(f"image size {image_size} is outside 32..2048")
        if center_crop is not None and not (32 <= center_crop <= image_size):
            raise LinewatchError(f"center crop {center_crop} must be between 32 and the image size")
        if not 0 <= holdout < 0.9:
            raise LinewatchError("holdout must be a fraction in [0, 0.9)")
        if not 0 < false_alarm_rate < 1:
            raise LinewatchError("false-alarm rate must be a fraction in (0, 1)")
        self.backbone = backbone
        self.layers = list(layers) if layers else None
        self.image_size = int(image_size)
        self.center_crop = center_crop
        self.weights = weights
        self.holdout = float(holdout)
        self.false_alarm_rate = float(false_alarm_rate)
        self.min_region_area = int(min_region_area)
        self.sigma = float(sigma)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.extractor_: FeatureExtractor | None = None
        self.calibration_: Calibration | None = None
        self.train_info_: dict = {}
        self.skipped_: list[str] = []

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

    def hyperparameters(self) -> dict:
        return {}

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

    @abstractmethod
    def tensors(self) -> dict[str, torch.Tensor]:
        """Learned state to store, besides the backbone."""
        ...

    @abstractmethod
    def _restore(self, tensors: dict[str, torch.Tensor]) -> None: ...

    # -- the contract ----------------------------------------------------------------------------
    @property
    def preprocess(self) -> Preprocess:
        return Preprocess(self.image_size, self.center_crop)

    def config(self) -> dict:
        return {
            "backbone": self.backbone,
            "layers": self.extractor_.layers if self.extractor_ is not None else self.layers,
            "image_size": self.image_size,
            "center_crop": self.center_crop,
            "holdout": self.holdout,
            "false_alarm_rate": self.false_alarm_rate,
            "min_region_area": self.min_region_area,
            "sigma": self.sigma,
            "seed": self.seed,
            **self.hyperparameters(),
        }

    def _check_fitted(self) -> None:
        if self.extractor_ is None:
            raise LinewatchError(f"this {self.method} detector is not trained yet: call fit() first")

    def split(self, images: Sequence[Source]) -> tuple[list[Source], list[Source]]:
        """(train, held-out) with a fixed seed; held-out good images set the thresholds."""
        images = list(images)
        n_hold = int(round(self.holdout * len(images)))
        if self.holdout > 0:  # at least a few images, or the threshold is guesswork
            n_hold = max(n_hold, min(10, len(images) // 4), 1)
        order = np.random.default_rng(self.seed).permutation(len(images))
        hold = sorted(order[:n_hold].tolist())
        held = set(hold)
        return [images[i] for i in range(len(images)) if i not in held], [images[i] for i in hold]

    def fit(self, images: Sequence[Source], progress: Progress | None = None, fingerprint: str | None = None):
        use_all_cores()
        images = list(images)
        if len(images) < MIN_TRAIN_IMAGES:
            raise DatasetError(f"need at least {MIN_TRAIN_IMAGES} good images to train, got {len(images)}")
        started = time.perf_counter()
        train, held = self.split(images)
        self.skipped_ = []
        self.extractor_ = build_extractor(self.backbone, self.layers, self.default_strides, self.weights)
        self.layers = self.extractor_.layers
        self._start(len(train))
        done = 0
        with torch.inference_mode():
            for batch in iter_batches(train, self.preprocess, self.batch_size, skip_bad=True):
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
        self.calibration_ = None
        if held:
            scores, peaks = [], []
            for batch_scores, maps, _sizes, _names, _grids in self._raw_batches(held, progress, "calibrate", True):
                scores.extend(batch_scores.tolist())
                peaks.extend(maps.reshape(len(maps), -1).max(1).tolist())
            if scores:
                self.calibration_ = calibrate(np.array(scores), np.array(peaks), self.false_alarm_rate)
        self.train_info_ = {
            "images": len(images),
            "train_images": used,
            "holdout_images": len(held),
            "skipped": self.skipped_[:20],
            "seconds": round(time.perf_counter() - started, 2),
            "fingerprint": fingerprint,
        }
        return self

    def _raw_batches(
        self,
        images: Sequence[Source],
        progress: Progress | None,
        stage: str,
        skip_bad: bool = False,
        grids: bool = False,
    ) -> Iterator[tuple[np.ndarray, np.ndarray, list, list, list]]:
        """(scores, maps, sizes, names, per image (features, residuals) or None) per batch."""
        use_all_cores()
        done = 0
        with torch.inference_mode():
            for batch in iter_batches(list(images), self.preprocess, self.batch_size, skip_bad=skip_bad):
                if len(batch.sizes):
                    out = [t.numpy() for t in self._score(torch.from_numpy(batch.inputs), grids)]
                    per_image = list(zip(out[2], out[3], strict=True)) if grids else [None] * len(batch.sizes)
                    yield out[0], out[1], batch.sizes, batch.names, per_image
                done += len(batch.sizes) + len(batch.skipped)
                if progress:
                    progress(stage, done, len(images))

    def raw_scores(
        self, images: Sequence[Source], progress: Progress | None = None
    ) -> Iterator[tuple[float, np.ndarray, tuple[int, int], str | None]]:
        """(raw score, map at input resolution, original size, name) per image, in order."""
        self._check_fitted()
        for scores, maps, sizes, names, _grids in self._raw_batches(images, progress, "score"):
            yield from zip(scores.tolist(), maps, sizes, names, strict=True)

    #: torch models always have the search embeddings (the graph is rebuilt from the stored tensors)
    has_embeddings: ClassVar[bool] = True

    def predict(
        self, images: Sequence[Source], progress: Progress | None = None, embeddings: bool = True
    ) -> list[Prediction]:
        return list(self.iter_predict(images, progress, embeddings))

    def iter_predict(
        self, images: Sequence[Source], progress: Progress | None = None, embeddings: bool = True
    ) -> Iterator[Prediction]:
        """Predictions in order; each carries ``embeddings`` (image, regions, peak) from the same pass unless
        ``embeddings=False``."""
        self._check_fitted()
        pre = self.preprocess
        layers = self.residual_layers if embeddings else None
        for scores, maps, sizes, names, grids in self._raw_batches(images, progress, "score", grids=embeddings):
            for score, amap, (w, h), name, g in zip(scores.tolist(), maps, sizes, names, grids, strict=True):
                yield postprocess(score, amap, self.calibration_, pre, w, h, self.min_region_area, name, g, layers)
