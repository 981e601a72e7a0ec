"""A saved model is a directory: ``manifest.json`` (what the model is) beside ``model.safetensors``
(backbone weights and learned tensors) and, once exported, ``model.onnx``. No pickle anywhere.
This module reads and writes manifests and needs neither torch nor onnxruntime."""

from __future__ import annotations

from pathlib import Path

from linewatch.core.modelfiles import (  # noqa: F401  (re-exported for the vision modules)
    MANIFEST,
    add_file_entry,
    checked_file,
    replace_dir,
    sha256_file,
    staging_dir,
    write_json_atomic,
)
from linewatch.core.modelfiles import read_manifest as read_model_manifest
from linewatch.errors import ModelFileError
from linewatch.vision.methods import METHODS

FORMAT_VERSION = 1
TENSORS = "model.safetensors"
ONNX_FILE = "model.onnx"


def read_manifest(model_dir: str | Path) -> dict:
    """The validated manifest of a vision model directory; ModelFileError says what is wrong."""
    d = Path(model_dir)
    m = read_model_manifest(
        d,
        engine="vision",
        format_version=FORMAT_VERSION,
        required=("method", "backbone", "layers", "image_size", "files"),
    )
    if m["method"] not in METHODS:
        raise ModelFileError(f"{d}: unknown method {m['method']!r} (known: {', '.join(METHODS.names())})")
    shape = m.get("input_shape")
    if shape is not None and not (
        isinstance(shape, list) and len(shape) == 2 and all(type(v) is int and 32 <= v <= 4096 for v in shape)
    ):
        raise ModelFileError(f"{d}: input_shape {shape!r} is not a height and a width of 32 to 4096 pixels")
    return m
