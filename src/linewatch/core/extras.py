"""Optional parts of linewatch and the modules each needs. A command or engine calls :func:`require` when it
starts, so a missing extra is one clear line naming what to install, not a ModuleNotFoundError later."""

from __future__ import annotations

import importlib.util

from linewatch.errors import LinewatchError

EXTRAS: dict[str, tuple[str, ...]] = {
    "runtime": ("onnxruntime",),
    "client": ("httpx",),
    "vision": (
        "torch",
        "torchvision",
        "timm",
        "faiss",
        "sklearn",
        "scipy",
        "safetensors",
        "onnx",
        "onnxruntime",
        "matplotlib",
    ),
    "service": (
        "fastapi",
        "uvicorn",
        "sqlalchemy",
        "alembic",
        "pydantic_settings",
        "argon2",
        "multipart",
        "httpx",
        "paho",
        "nats",
        "yaml",
        "scipy",
    ),
    "sensors": ("pyod", "sklearn", "scipy", "pandas", "pyarrow"),
    "maintenance": ("torch", "sklearn", "scipy", "pandas", "pyarrow", "safetensors"),
    "search": ("qdrant_client",),
    "clip": ("open_clip",),
    "scheduling": ("ortools",),
    "twin": ("simpy", "pydantic", "yaml", "scipy", "basyx"),
    "registry": ("mlflow",),
    "batch": ("ray", "onnxruntime"),
}


class MissingExtra(LinewatchError):
    """An optional part of linewatch that is not installed."""


def missing(extra: str) -> list[str]:
    return [m for m in EXTRAS[extra] if importlib.util.find_spec(m) is None]


def require(extra: str, what: str) -> None:
    gone = missing(extra)
    if gone:
        raise MissingExtra(
            f"{what} needs the {extra} extra, which is not installed (missing: {', '.join(gone)}): "
            f'pip install "linewatch[{extra}]"'
        )
