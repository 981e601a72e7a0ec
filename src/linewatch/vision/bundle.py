"""An exported model as one zip file: what scoring with ONNX Runtime alone needs, and nothing else.

A model directory holds the PyTorch tensors (``model.safetensors``) beside its export: ``model.onnx`` (score, map and
the search grids) and, for models whose search vectors carry a crop, ``crops.onnx``. Someone who scores outside
linewatch's service needs the export's graphs *and* its manifest (thresholds, input size and shape, the residual
layers of the search vectors); ``model.onnx`` alone gives raw scores without verdicts and search vectors without the
crop. The bundle holds the manifest, its ``files`` cut to the entries the zip holds, and those files; unzipped, it is
a model directory that ``OnnxModel``, ``linewatch predict`` and ``linewatch evaluate`` use as it is. Standard library
only (no torch, no onnxruntime).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from linewatch.core.modelfiles import atomic_file
from linewatch.errors import ModelFileError
from linewatch.vision.manifest import MANIFEST, checked_file, read_manifest

ONNX_KEYS = ("onnx", "onnx_crops")  # the manifest's file entries of an export
# bundled beside them where the model has one: the inspection area (a constant of the graph already; kept so that
# whoever unzips the bundle sees which part of the photo the model inspects)
BUNDLED_KEYS = (*ONNX_KEYS, "inspect_area")


def export_entries(model_dir: Path, manifest: dict) -> dict[str, Path]:
    """The export's files by manifest key, each checked against its sha256; ModelFileError when there is no export
    or the crop graph that the model's search vectors need is missing (re-export it)."""
    files = manifest.get("files") or {}
    if "onnx" not in files:
        raise ModelFileError(f"{model_dir} has no ONNX export: run linewatch export {model_dir}")
    hp = manifest.get("hyperparameters") or {}
    if hp.get("search_vectors", "regions") == "crop" and "onnx_crops" not in files:
        raise ModelFileError(
            f"{model_dir}: the export predates the crop search vectors (no crops.onnx): run linewatch export "
            f"{model_dir} again"
        )
    return {k: checked_file(model_dir, manifest, k) for k in BUNDLED_KEYS if k in files}


def write_bundle(model_dir: str | Path, out_file: str | Path) -> Path:
    """Write the zip of ``model_dir``'s ONNX export to ``out_file`` (written beside it, then renamed: a failure leaves
    no partial file). The graphs are stored as they are (float weights hardly compress)."""
    d, out = Path(model_dir), Path(out_file)
    manifest = read_manifest(d)
    entries = export_entries(d, manifest)
    bundled = {**manifest, "files": {k: manifest["files"][k] for k in entries}}
    with atomic_file(out) as f, zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as z:
        z.writestr(MANIFEST, json.dumps(bundled, indent=2) + "\n", compress_type=zipfile.ZIP_DEFLATED)
        for path in entries.values():
            z.write(path, path.name)
    return out
