"""Evaluating a trained model on labelled test images (MVTec layout or good/ + defect folders)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

import numpy as np

from linewatch.errors import DatasetError
from linewatch.vision.datasets import Dataset
from linewatch.vision.images import Preprocess, load_mask
from linewatch.vision.metrics import aupro, auroc, image_metrics, rank_auroc
from linewatch.vision.thresholds import Calibration


class Scorer(Protocol):
    calibration_: Calibration | None

    @property
    def preprocess(self) -> Preprocess: ...

    def raw_scores(self, images, progress=None): ...


def _clean(v):
    if isinstance(v, float):
        return None if np.isnan(v) else round(v, 6)
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    return v


def evaluate(
    model: Scorer,
    dataset: Dataset,
    progress: Callable[[str, int, int], None] | None = None,
    scored: list | None = None,
) -> dict:
    """Image AUROC, pixel AUROC and AUPRO (maps and masks at model input resolution), F1-max,
    false-alarm and miss rates at the stored threshold, and the same per defect type. With ``scored``, each test
    image's ``report.Scored`` (path, label, raw score) is appended to it, in the test set's order."""
    samples = dataset.test
    if not samples:
        raise DatasetError(
            f"no labelled test images under {dataset.root}: expected test/<good|defect>/ (MVTec layout) "
            "or good/ beside one folder per defect type"
        )
    pre = model.preprocess
    hw = pre.input_hw
    n = len(samples)
    scores = np.zeros(n)
    maps = np.zeros((n, *hw), dtype=np.float32)
    masks = np.zeros((n, *hw), dtype=bool)
    have_masks = any(x.mask_path for x in samples)
    started = time.perf_counter()
    for i, (score, amap, (w, h), _name) in enumerate(model.raw_scores([x.path for x in samples], progress)):
        scores[i] = score
        maps[i] = amap
        if have_masks and samples[i].is_anomalous:
            masks[i] = pre.mask_to_input(load_mask(samples[i].mask_path, w, h))
    elapsed = time.perf_counter() - started
    labels = np.array([x.is_anomalous for x in samples])
    if scored is not None:
        from linewatch.vision.report import Scored

        scored.extend(Scored(x.path, x.label, float(v)) for x, v in zip(samples, scores, strict=True))
    cal = model.calibration_
    threshold = cal.image_threshold if cal else None
    out = {"images": n, "defective": int(labels.sum()), **image_metrics(labels, scores, threshold)}
    # a defective image without a mask has no known defect pixels: counted as all good it would turn its defect's
    # high scores into false positives, so it is left out of the pixel metrics (and counted) when others have masks
    unmasked = labels & np.array([x.mask_path is None for x in samples]) if have_masks else np.zeros(n, bool)
    pixels = ~unmasked
    no_masks = {"pixel_auroc": float("nan"), "aupro": float("nan")}
    out.update(_pixel_metrics(masks, maps, pixels) if have_masks else no_masks)
    if unmasked.any():
        out["unmasked"] = int(unmasked.sum())
    out["ms_per_image"] = round(1000 * elapsed / n, 2)
    out["threshold"] = threshold
    per_type = {}
    good = ~labels
    for kind in sorted({x.label for x in samples if x.is_anomalous}):
        sel = np.array([x.label == kind for x in samples])
        both = sel | good
        row = {"images": int(sel.sum()), "image_auroc": auroc(labels[both], scores[both])}
        if threshold is not None:
            row["miss_rate"] = float((scores[sel] < threshold).mean())
        if have_masks:
            # both over the good images too, as the whole set's figures are: the same scale
            row.update(_pixel_metrics(masks, maps, both & pixels))
            if (sel & unmasked).any():
                row["unmasked"] = int((sel & unmasked).sum())
        per_type[kind] = row
    out["per_type"] = per_type
    return _clean(out)


def _pixel_metrics(masks: np.ndarray, maps: np.ndarray, rows: np.ndarray) -> dict:
    """Pixel AUROC and AUPRO of the images ``rows`` selects, selected once (no copy when it selects all)."""
    if not rows.all():
        masks, maps = masks[rows], maps[rows]
    # the pixel AUROC by ranks: scikit-learn's value, without its float64 copies and argsort of every pixel
    return {"pixel_auroc": rank_auroc(masks, maps), "aupro": aupro(masks, maps)}
