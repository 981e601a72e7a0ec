"""Saving and loading maintenance models: a directory with ``manifest.json`` (engine, method, format version,
parameters, column names) and one ``arrays.safetensors`` holding every learned array and network weight. No
pickle: the networks are rebuilt from the parameters and their weights loaded; the trees are node arrays."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from linewatch import __version__
from linewatch.core.modelfiles import (
    add_file_entry,
    checked_file,
    read_manifest,
    replace_dir,
    staging_dir,
    write_json_atomic,
)
from linewatch.errors import ModelFileError
from linewatch.maintenance.methods import METHODS

ENGINE = "maintenance"
FORMAT_VERSION = 1
ARRAYS = "arrays.safetensors"


def _flatten(model) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Every learned array under a dotted name, and the JSON-able learned state."""
    arrays: dict[str, np.ndarray] = {}
    if model.method == "cnn":
        arrays.update({f"regimes.{k}": np.asarray(v) for k, v in model.regimes_.items()})
        arrays.update({f"intervals.{k}": np.asarray(v) for k, v in model.intervals_.items()})
        for i, net in enumerate(model.members_):
            arrays.update({f"member{i}.{k}": v.detach().numpy() for k, v in net.state_dict().items()})
        for i, forest in enumerate(model.trees_):
            arrays.update({f"trees{i}.{k}": v for k, v in forest.items()})
        inputs = int(model.regimes_["keep"].sum()) + int(model.params_["age"])
        meta = {
            "sensor_names": model.sensor_names_,
            "setting_names": model.setting_names_,
            "members": len(model.members_),
            "n_features": inputs,
            "blend": model.blend_,
        }
    else:
        for name, members in model.forests_.items():
            for i, forest in enumerate(members):
                arrays.update({f"forest.{name}.{i}.{k}": v for k, v in forest.items()})
        meta = {
            "numeric": model.numeric_,
            "categories": model.categories_,
            "target": model.target_,
            "modes": model.modes_,
            "members": {n: len(m) for n, m in model.forests_.items()},
            "scaling": {n: list(s) for n, s in model.scaling_.items()},
        }
    return {k: np.ascontiguousarray(v) for k, v in arrays.items()}, meta


def save(model, out: str | Path) -> Path:
    """Write a fitted model to the directory ``out`` (replacing one already there only once complete)."""
    from safetensors.numpy import save_file

    model._check_fitted()
    out = Path(out)
    arrays, meta = _flatten(model)
    tmp = staging_dir(out)
    save_file(arrays, str(tmp / ARRAYS))
    manifest = {
        "engine": ENGINE,
        "format_version": FORMAT_VERSION,
        "linewatch_version": __version__,
        "method": model.method,
        "config": model.config(),
        "learned": meta,
        "train_info": model.train_info_,
    }
    add_file_entry(manifest, "arrays", tmp / ARRAYS)
    write_json_atomic(tmp / "manifest.json", manifest)
    replace_dir(tmp, out)
    return out


def load(path: str | Path):
    """A fitted model from a directory written by :func:`save`; ModelFileError when it is not one."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    path = Path(path)
    m = read_manifest(
        path, engine=ENGINE, format_version=FORMAT_VERSION, required=("files", "method", "config", "learned")
    )
    if m["method"] not in METHODS:
        raise ModelFileError(f"{path}: unknown maintenance method {m['method']!r}")
    try:
        arrays = load_file(str(checked_file(path, m, "arrays")))
    except SafetensorError as e:
        raise ModelFileError(f"{path}/{ARRAYS} is corrupt: {e}") from None
    cls = METHODS[m["method"]].load()
    model = cls(**m["config"])
    try:
        _restore(model, arrays, m["learned"])
    except (KeyError, ValueError, RuntimeError, TypeError) as e:
        raise ModelFileError(f"{path} is incomplete or inconsistent: {type(e).__name__}: {e}") from None
    model.train_info_ = m.get("train_info", {})
    model.params_ = model.Params.validate(m["config"])
    return model


def _prefixed(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    return {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}


def _restore(model, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    if model.method == "cnn":
        import torch

        from linewatch.maintenance.rul import _net

        model.regimes_ = _prefixed(arrays, "regimes.")
        model.intervals_ = _prefixed(arrays, "intervals.")
        members = []
        for i in range(meta["members"]):
            net = _net(meta["n_features"], model.window, model.channels)
            net.load_state_dict({k: torch.from_numpy(v) for k, v in _prefixed(arrays, f"member{i}.").items()})
            net.eval()
            for q in net.parameters():
                q.requires_grad_(False)
            members.append(net)
        model.members_ = members
        model.trees_ = [_prefixed(arrays, f"trees{i}.") for i in range(meta["members"])]
        model.blend_ = float(meta["blend"])
        model.sensor_names_ = list(meta["sensor_names"])
        model.setting_names_ = list(meta["setting_names"])
    else:
        model.forests_ = {
            n: [_prefixed(arrays, f"forest.{n}.{i}.") for i in range(k)] for n, k in meta["members"].items()
        }
        model.scaling_ = {n: tuple(s) for n, s in meta["scaling"].items()}
        model.numeric_ = list(meta["numeric"])
        model.categories_ = {k: list(v) for k, v in meta["categories"].items()}
        model.target_, model.modes_ = meta["target"], list(meta["modes"])
