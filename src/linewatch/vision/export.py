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
CROPS_FILE = "crops.onnx"  # the crop vectors' graph, for models with search_vectors="crop"
# the graph's outputs; features and residuals are the search embeddings' grids (models exported before they
# existed have only the first two)
OUTPUTS = ("score", "anomaly_map", "features", "residuals")


def export_onnx(
    model_dir: str | Path, out: str | Path | None = None, check: bool = True, search: str | None = None
) -> Path:
    """Write ``model.onnx`` (or ``out``) and, for models whose search vectors carry a crop, ``crops.onnx`` beside it;
    when they lie in the model directory, list them in the manifest so that predict uses them. With ``check``, ONNX
    Runtime must reproduce the PyTorch graphs. Both files are written whole and checked before either replaces
    what was there.

    ``search`` (``auto``, ``int8``, ``pca``, ``exact``) changes the model's bank search for the CPU it will run on
    (``auto``: this one): the export and the model's own manifest both take it, so the PyTorch path scores the same;
    the bank and thresholds stay. Only for the model directory's own export."""
    model_dir = Path(model_dir)
    det = load(model_dir)
    target = Path(out) if out else model_dir / ONNX_FILE
    own = target.parent.resolve() == model_dir.resolve()
    if search is not None:
        if not own:
            raise LinewatchError("--search changes the model's own export and manifest: leave out --out")
        from linewatch.vision.methodchoice import set_search

        set_search(det, search=search)
    check_replaceable(target, ".onnx", "an ONNX file")
    crops = None
    if det.params_.get("search_vectors") == "crop":
        crops = target.with_name(CROPS_FILE if target.name == ONNX_FILE else f"{target.stem}.crops.onnx")
        check_replaceable(crops, ".onnx", "an ONNX file")
    target.parent.mkdir(parents=True, exist_ok=True)
    temps: list[str] = []
    try:
        graph = det.graph().eval()
        h, w = det.preprocess.input_hw
        example = torch.from_numpy(np.random.default_rng(0).standard_normal((1, 3, h, w)).astype(np.float32))
        temps.append(_temp_beside(target))
        _to_onnx(
            graph,
            example,
            temps[-1],
            input_names=["image"],
            output_names=list(OUTPUTS),
            dynamic_axes={name: {0: "batch"} for name in ("image", *OUTPUTS)},
            # the 8-bit search's product is ONNX Runtime's own operator; other graphs are plain ONNX
            custom_opsets={"com.microsoft": 1} if det.params_.get("search") == "int8" else None,
        )
        if check:
            _check(graph, temps[-1], example)
        if crops is not None:
            crop_graph = det.crop_graph().eval()
            temps.append(_temp_beside(crops))
            _to_onnx(
                crop_graph,
                torch.zeros(1, 3, 40, 56),
                temps[-1],
                input_names=["crop"],
                output_names=["vector"],
                dynamic_axes={"crop": {0: "batch", 2: "height", 3: "width"}, "vector": {0: "batch"}},
            )
            if check:
                _check_crops(crop_graph, temps[-1])
        for tmp, final in zip(temps, (target, crops), strict=False):
            os.replace(tmp, final)
    except BaseException:
        for tmp in temps:
            Path(tmp).unlink(missing_ok=True)
        raise
    if own:
        manifest = read_manifest(model_dir)
        add_file_entry(manifest, "onnx", target, opset=OPSET, residual_layers=list(det.residual_layers))
        if search is not None:
            manifest["hyperparameters"]["search"] = det.params_["search"]
        manifest["files"].pop("onnx_crops", None)
        if crops is not None:
            add_file_entry(manifest, "onnx_crops", crops, opset=OPSET)
        write_json_atomic(model_dir / "manifest.json", manifest)
    return target


def check_replaceable(path: Path, suffix: str, what: str, is_ours=None) -> None:
    """``path`` may be written: new, or an earlier file of this kind (its ``suffix``, and ``is_ours(path)`` when
    given), never a folder, the model's manifest or weights, or a user's other file (replaced without a word)."""
    path = Path(path)
    if path.is_dir() or not path.name:
        raise LinewatchError(f"cannot write {what} to {path}: it is a folder (name the file, e.g. model{suffix})")
    if path.exists() and (path.suffix.lower() != suffix or (is_ours is not None and not is_ours(path))):
        raise LinewatchError(
            f"{path} exists and is not {what}: nothing was written (name a new file, or an earlier export's)"
        )


def _temp_beside(target: Path) -> str:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    return tmp


def _to_onnx(graph: torch.nn.Module, example: torch.Tensor, path: str, **names) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(graph, (example,), path, opset_version=OPSET, dynamo=False, **names)


def _check_crops(graph: torch.nn.Module, path: str) -> None:
    """The crop graph must match PyTorch at crop sizes other than the one it was traced at."""
    import onnxruntime as ort

    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    for shape in ((1, 3, 40, 56), (1, 3, 130, 97)):
        x = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
        with torch.inference_mode():
            want = graph(torch.from_numpy(x)).numpy()
        diff = float(np.abs(sess.run(None, {"crop": x})[0] - want).max())
        if diff > 1e-3:
            raise LinewatchError(f"exported crop graph differs from PyTorch by {diff:.2e}; not written")


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
