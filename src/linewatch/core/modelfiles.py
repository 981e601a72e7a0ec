"""A saved model of any engine is a directory: ``manifest.json`` (what the model is, which files it holds with
their sha256) beside its data files (safetensors, NumPy ``.npy``, JSON, ONNX). No pickle anywhere. This module
writes such directories atomically and reads their manifests; it needs no engine's libraries."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from linewatch import __version__
from linewatch.errors import ModelFileError

MANIFEST = "manifest.json"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_manifest(
    model_dir: str | Path, *, engine: str, format_version: int, required: Iterable[str] = ("files",)
) -> dict:
    """The manifest of a model directory of ``engine``; ModelFileError says what is wrong (missing, not a
    model, corrupt, another engine's, written by a newer linewatch, incomplete). Manifests without an
    ``engine`` key are vision models (the first format)."""
    d = Path(model_dir)
    if not d.exists():
        raise ModelFileError(f"model not found: {d}")
    if not d.is_dir():
        raise ModelFileError(f"a model is a directory with {MANIFEST}; {d} is a file")
    path = d / MANIFEST
    if not path.is_file():
        raise ModelFileError(f"{d} is not a linewatch model: it has no {MANIFEST}")
    try:
        m = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelFileError(f"{path} is corrupt (not valid JSON: {e})") from None
    if not isinstance(m, dict) or "format_version" not in m:
        raise ModelFileError(f"{path} is not a linewatch manifest (no format_version)")
    found = m.get("engine", "vision")
    if found != engine:
        raise ModelFileError(f"{d} is a {found} model; a {engine} model is needed here")
    version = m["format_version"]
    if not isinstance(version, int) or version > format_version:
        raise ModelFileError(
            f"{d} was written by linewatch {m.get('linewatch_version', '?')} in {engine} model format {version}; "
            f"this linewatch {__version__} reads format {format_version} or older: upgrade linewatch"
        )
    missing = [k for k in required if k not in m]
    if missing:
        raise ModelFileError(f"{path} lacks {', '.join(missing)}: the model is incomplete")
    return m


def checked_file(model_dir: Path, manifest: dict, key: str) -> Path:
    """The path of a file listed in the manifest, after checking its sha256."""
    entry = (manifest.get("files") or {}).get(key)
    if not entry:
        raise ModelFileError(f"{model_dir}: the manifest lists no {key} file")
    path = Path(model_dir) / entry["name"]
    if not path.is_file():
        raise ModelFileError(f"{model_dir}: {entry['name']} is missing")
    if sha256_file(path) != entry["sha256"]:
        raise ModelFileError(f"{path} is corrupt: its sha256 differs from the manifest's")
    return path


@contextmanager
def atomic_file(path: Path, mode: str = "wb") -> Iterator[IO]:
    """A file opened in ``mode`` beside ``path``: once the block ends it is flushed, fsynced and renamed over
    ``path``; if the block fails it is removed, and ``path`` is as it was."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, data: dict) -> None:
    """Write to a temporary file beside the target, fsync, then rename over it."""
    with atomic_file(path, "w") as f:
        json.dump(data, f, indent=2, sort_keys=False)
        f.write("\n")


def replace_dir(staging: Path, final: Path) -> None:
    """Move a fully written staging directory into place; an existing model there is replaced only
    after the new one is complete."""
    final = Path(final)
    if final.exists() and not final.is_dir():
        raise ModelFileError(f"cannot write a model to {final}: a file is in the way")
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
        os.replace(staging, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, final)


def staging_dir(out: Path) -> Path:
    """A fresh directory beside ``out`` to write a model into before :func:`replace_dir` moves it in place."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))


def add_file_entry(manifest: dict, key: str, path: Path, **extra) -> None:
    manifest.setdefault("files", {})[key] = {"name": path.name, "sha256": sha256_file(path), **extra}
