"""Saving and loading maintenance models: a directory with ``manifest.json`` (engine, method, format version,
parameters, column names) and one ``arrays.safetensors`` holding every learned array and network weight. No
pickle: the networks are rebuilt from the parameters and their weights loaded; the trees are node arrays."""

from __future__ import annotations

import math
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
    try:
        model = cls(**m["config"])
        _restore(model, arrays, m["learned"])
    except (KeyError, ValueError, RuntimeError, TypeError, AttributeError) as e:
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
        for i in range(_typed(meta["members"], int, "members")):
            net = _net(meta["n_features"], model.window, model.channels)
            net.load_state_dict({k: torch.from_numpy(v) for k, v in _prefixed(arrays, f"member{i}.").items()})
            net.eval()
            for q in net.parameters():
                q.requires_grad_(False)
            members.append(net)
        model.members_ = members
        model.trees_ = [_prefixed(arrays, f"trees{i}.") for i in range(meta["members"])]
        model.blend_ = _numbers([meta["blend"]], 1, "blend")[0]
        model.sensor_names_ = _texts(meta["sensor_names"], "sensor_names")
        model.setting_names_ = _texts(meta["setting_names"], "setting_names")
    else:
        members, scaling = _typed(meta["members"], dict, "members"), _typed(meta["scaling"], dict, "scaling")
        model.forests_ = {
            n: [_prefixed(arrays, f"forest.{n}.{i}.") for i in range(_typed(k, int, "members"))]
            for n, k in members.items()
        }
        model.scaling_ = {n: _numbers(s, 2, "scaling") for n, s in scaling.items()}
        if set(model.scaling_) != set(model.forests_):
            raise ValueError("its scalings are not its forests'")
        model.numeric_ = _texts(meta["numeric"], "numeric")
        categories = _typed(meta["categories"], dict, "categories")
        model.categories_ = {k: _texts(v, "categories") for k, v in categories.items()}
        model.target_, model.modes_ = _typed(meta["target"], str, "target"), _texts(meta["modes"], "modes")


def _typed(value: Any, kind: type, what: str) -> Any:
    """``value`` when it is a ``kind`` (a manifest edited by hand may hold anything): else ValueError naming it."""
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValueError(f"learned.{what} is not of type {kind.__name__}")
    return value


def _texts(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise ValueError(f"learned.{what} is not a list of names")
    return list(value)


def _numbers(value: Any, n: int, what: str) -> tuple[float, ...]:
    if (
        not isinstance(value, list)
        or len(value) != n
        or not all(isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) for x in value)
    ):
        raise ValueError(f"learned.{what} is not {n} finite number(s)")
    return tuple(float(x) for x in value)
