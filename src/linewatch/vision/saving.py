"""Saving and loading trained detectors (safetensors + JSON manifest)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from linewatch import __version__
from linewatch.errors import LinewatchError, ModelFileError
from linewatch.vision.area import AREA_FILE, inspected_share, write_area
from linewatch.vision.backbones import extractor_from_state
from linewatch.vision.detector import Detector
from linewatch.vision.manifest import (
    FORMAT_VERSION,
    MANIFEST,
    TENSORS,
    add_file_entry,
    checked_file,
    read_manifest,
    replace_dir,
    staging_dir,
    write_json_atomic,
)
from linewatch.vision.methods import METHODS
from linewatch.vision.recalibration import kept_scores
from linewatch.vision.thresholds import Calibration


def create_detector(method: str, **params) -> Detector:
    """A new detector of a registered method (``linewatch.vision.methods.METHODS``); unknown names and
    parameters are the product's error, listing the valid ones."""
    return METHODS.create(method, **params)


def save(detector: Detector, out: str | Path, metrics: dict | None = None) -> Path:
    """Write a trained detector to a model directory; nothing appears under ``out`` until it is whole."""
    detector._check_fitted()
    staging = staging_dir(out)
    tensors = {f"backbone.{k}": v.contiguous() for k, v in detector.extractor_.state_dict().items()}
    tensors.update({f"model.{k}": v.contiguous() for k, v in detector.tensors().items()})
    save_file(tensors, str(staging / TENSORS))
    cfg = detector.config()
    area = detector.inspection_area()
    if area is not None:  # the model keeps its own copy: the user's file may move or change
        write_area(area, staging / AREA_FILE)
        cfg["inspect_area"] = AREA_FILE
    manifest = {
        "engine": "vision",
        "format_version": FORMAT_VERSION,
        "linewatch_version": __version__,
        "method": detector.method,
        "backbone": cfg.pop("backbone"),
        "layers": cfg.pop("layers"),
        "image_size": cfg.pop("image_size"),
        "center_crop": cfg.pop("center_crop"),
        "input_shape": list(detector.input_shape_) if detector.input_shape_ else None,
        "hyperparameters": cfg,
        "calibration": detector.calibration_.to_dict() if detector.calibration_ else None,
        "calibration_scores": kept_scores(detector.calibration_scores_, "training"),
        "training": detector.train_info_,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "metrics": metrics,
        "files": {},
    }
    add_file_entry(manifest, "tensors", staging / TENSORS)
    if area is not None:
        add_file_entry(manifest, "inspect_area", staging / AREA_FILE, inspected=inspected_share(area))
    write_json_atomic(staging / MANIFEST, manifest)
    replace_dir(staging, out)
    return out


def load(model_dir: str | Path) -> Detector:
    """A trained detector from a model directory (PyTorch path)."""
    d = Path(model_dir)
    m = read_manifest(d)
    path = checked_file(d, m, "tensors")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise ModelFileError(f"{path} is corrupt: {e}") from None
    hp = dict(m.get("hyperparameters") or {})
    hp.setdefault("search_vectors", "regions")  # saved before the crop vectors: its search vectors stay as they were
    hp.setdefault("reducing_gap", 0.0)  # saved before the two-step resize: one antialiased resize, as then
    if hp.get("inspect_area"):  # the model's own copy, checked against the manifest
        hp["inspect_area"] = str(checked_file(d, m, "inspect_area"))
    if m.get("method") == "patchcore":
        hp.setdefault("search", "exact")  # saved before the int8 search existed: keep scoring exactly as then
        hp.setdefault("search_step", 1)  # saved before the coarse-to-fine search: every patch searched, as then
    if m.get("method") in ("padim", "auto", "combined"):
        hp.setdefault("cov_block", 1)  # saved before shared covariances: one per position, as then
    try:
        det = create_detector(
            m["method"],
            backbone=m["backbone"],
            layers=m["layers"],
            image_size=m["image_size"],
            center_crop=m.get("center_crop"),
            **hp,
        )
        det.params_ = det._validate_params()
        shape = m.get("input_shape")  # checked by read_manifest
        det.input_shape_ = tuple(shape) if shape else None
        backbone = {k[len("backbone.") :]: v for k, v in tensors.items() if k.startswith("backbone.")}
        learned = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
        det.extractor_ = extractor_from_state(m["backbone"], m["layers"], backbone)
        det._restore(learned)
    except (TypeError, KeyError, ValueError, LinewatchError) as e:
        raise ModelFileError(f"{d}: the model's contents do not match its manifest ({e})") from None
    try:
        det.calibration_ = Calibration.from_dict(m["calibration"]) if m.get("calibration") else None
    except ModelFileError as e:
        raise ModelFileError(f"{d}: {e}") from None
    kept = m.get("calibration_scores")
    det.calibration_scores_ = kept if isinstance(kept, dict) else None  # saved again, the model keeps them
    det.train_info_ = m.get("training") or {}
    return det
