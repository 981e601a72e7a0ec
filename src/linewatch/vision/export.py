"""ONNX export of the whole scoring path (backbone, patch scoring, anomaly map) into the model directory."""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from linewatch.errors import LinewatchError
from linewatch.vision.manifest import ONNX_FILE, add_file_entry, read_manifest, write_json_atomic
from linewatch.vision.saving import load

OPSET = 17
# the graph's outputs; features and residuals are the search embeddings' grids (models exported before they
# existed have only the first two)
OUTPUTS = ("score", "anomaly_map", "features", "residuals")


def export_onnx(model_dir: str | Path, out: str | Path | None = None, check: bool = True) -> Path:
    """Write ``model.onnx`` (or ``out``) and, when it lies in the model directory, list it in the manifest
    so that predict uses it. With ``check``, ONNX Runtime must reproduce the PyTorch graph on an input."""
    model_dir = Path(model_dir)
    det = load(model_dir)
    target = Path(out) if out else model_dir / ONNX_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    graph = det.graph().eval()
    h, w = det.preprocess.input_hw
    example = torch.from_numpy(np.random.default_rng(0).standard_normal((1, 3, h, w)).astype(np.float32))
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                graph,
                (example,),
                tmp,
                input_names=["image"],
                output_names=list(OUTPUTS),
                dynamic_axes={name: {0: "batch"} for name in ("image", *OUTPUTS)},
                opset_version=OPSET,
                custom_opsets={"com.microsoft": 1},
                dynamo=False,
            )
        if check:
            _check(graph, tmp, example)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if target.parent.resolve() == model_dir.resolve():
        manifest = read_manifest(model_dir)
        add_file_entry(manifest, "onnx", target, opset=OPSET, residual_layers=list(det.residual_layers))
        write_json_atomic(model_dir / "manifest.json", manifest)
    return target


def _check(graph: torch.nn.Module, path: str, example: torch.Tensor) -> None:
    import onnxruntime as ort

    with torch.inference_mode():
        want = [t.numpy() for t in graph(example)]
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    got = sess.run(None, {"image": example.numpy()})
    for name, a, b in zip(OUTPUTS, got, want, strict=True):
        scale = max(1.0, float(np.abs(b).max()))
        off = np.abs(a - b) > 1e-3 * scale
        if name == "residuals" and off.any():
            # a patch with two equally near bank entries may pick either one under float rounding (the noise input
            # is far from every entry, so such ties happen); that moves its one cell, while a wrongly exported
            # graph moves them all: a few cells (at most 1 in 50) may differ
            cells = off.any(axis=1)  # (B, h, w)
            if cells.sum() <= max(1, cells.size // 50):
                continue
        if off.any():
            diff = float(np.abs(a - b).max())
            raise LinewatchError(f"exported ONNX model's {name} differs from PyTorch by {diff:.2e}; not written")
