"""A saved model of any engine is a directory: ``manifest.json`` (what the model is, which files it holds with
their sha256) beside its data files (safetensors, NumPy ``.npy``, JSON, ONNX). No pickle anywhere. This module
writes such directories atomically and reads their manifests; it needs no engine's libraries."""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from linewatch import __version__
from linewatch.errors import LinewatchError, ModelFileError

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
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ModelFileError(f"{path}: format_version {version!r} is not a format number (1 or more): it is damaged")
    if version > format_version:
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
    files = manifest.get("files") or {}
    entry = files.get(key) if isinstance(files, dict) else None
    if not entry:
        raise ModelFileError(f"{model_dir}: the manifest lists no {key} file")
    name = entry.get("name") if isinstance(entry, dict) else None
    if not isinstance(name, str) or not isinstance(entry.get("sha256"), str):
        raise ModelFileError(f"{model_dir}: the manifest's {key} entry needs a file name and its sha256")
    if name in ("", ".", "..") or "/" in name or "\\" in name:  # a model's files are its own, beside the manifest
        raise ModelFileError(f"{model_dir}: the manifest's {key} file {name!r} is not a file of the model's folder")
    path = Path(model_dir) / name
    if not path.is_file():
        raise ModelFileError(f"{model_dir}: {name} is missing")
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


def is_model_dir(folder: Path) -> bool:
    """Whether ``folder`` holds a linewatch model (its manifest)."""
    return (Path(folder) / MANIFEST).is_file()


def check_target(final: str | Path, ours: Callable[[Path], bool] = is_model_dir, what: str = "model") -> Path:
    """``final`` as an absolute path when a ``what`` may be written there: a new path, an empty folder, or a folder
    ``ours`` recognises (an earlier model), which is then replaced. ModelFileError for anything else: a file in the way,
    a folder of other things (a user's photos or data must never be deleted to make room), the current folder or one
    holding it."""
    given = str(final)
    path = Path(os.path.abspath(final))  # "" and "." are the current folder
    if path.exists() and not path.is_dir():
        raise ModelFileError(f"cannot write a {what} to {given}: a file is in the way")
    if path.is_dir():
        here = Path.cwd().resolve()
        real = path.resolve()
        if real == here or real in here.parents:
            raise ModelFileError(
                f"cannot write a {what} to {given or '.'}: it is the current folder or holds it; name a new folder"
            )
        if any(path.iterdir()) and not ours(path):
            raise ModelFileError(
                f"{given} holds other files and is not a linewatch {what}: nothing was written there (name a new "
                f"folder, or an earlier {what}'s to replace it)"
            )
    return path


def replace_dir(staging: Path, final: Path, ours: Callable[[Path], bool] = is_model_dir, what: str = "model") -> None:
    """Move a fully written staging directory into place; an existing model there (``ours``) or an empty folder is
    replaced only after the new one is complete, anything else is refused (``check_target``)."""
    final = check_target(final, ours, what)
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
        os.replace(staging, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, final)


def staging_dir(out: Path, ours: Callable[[Path], bool] = is_model_dir, what: str = "model") -> Path:
    """A fresh directory beside ``out`` to write a model into before :func:`replace_dir` moves it in place; refused
    before anything is written where ``replace_dir`` would refuse (``check_target``)."""
    out = check_target(out, ours, what)
    out.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))


def add_file_entry(manifest: dict, key: str, path: Path, **extra) -> None:
    manifest.setdefault("files", {})[key] = {"name": path.name, "sha256": sha256_file(path), **extra}


def copy_target(model_dir: Path, out: str | Path | None) -> Path | None:
    """Where a changed copy of the model in ``model_dir`` may go: None when ``out`` is None or the model itself (it is
    then changed in place); refused inside the model, or over anything ``check_target`` refuses."""
    if out is None or Path(out).resolve() == Path(model_dir).resolve():
        return None
    if Path(model_dir).resolve() in Path(out).resolve().parents:
        raise LinewatchError(f"the copy cannot go inside the model it copies ({model_dir}): name another folder")
    check_target(out)
    return Path(out)


def rewrite_manifest(model_dir: Path, manifest: dict, out: Path | None = None) -> Path:
    """``manifest`` written whole over the model's (``out`` None), or into a complete copy of the model moved into
    place at ``out`` (``copy_target``); the folder written."""
    if out is None:
        write_json_atomic(Path(model_dir) / MANIFEST, manifest)
        return Path(model_dir)
    staging = staging_dir(out)
    try:
        shutil.copytree(model_dir, staging, dirs_exist_ok=True)
        write_json_atomic(staging / MANIFEST, manifest)
        replace_dir(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Path(out)


def calibration_history(manifest: dict) -> list[dict]:
    """The calibrations a model's manifest keeps as replaced (``calibration_history``, oldest first)."""
    return [h for h in (manifest.get("calibration_history") or []) if isinstance(h, dict)]


def previous_calibration(model_dir: Path, manifest: dict, command: str) -> tuple[dict, list[dict]]:
    """The calibration the last recalibration replaced (the history's newest entry) and the history without it; a
    LinewatchError naming ``command`` (the one that keeps them) when the model keeps none."""
    history = calibration_history(manifest)
    if not history:
        raise LinewatchError(
            f"{model_dir} keeps no earlier calibration to go back to: `{command}` keeps the thresholds it replaces, "
            "and this model's have not been replaced"
        )
    return history[-1], history[:-1]


def check_false_alarm_rate(rate) -> float:
    """A false-alarm rate a threshold can be set at: above 0 and below 0.5."""
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not math.isfinite(rate) or not 0 < rate < 0.5:
        raise LinewatchError(f"the false-alarm rate must be above 0 and below 0.5 (0.01 is 1 %), not {rate!r}")
    return float(rate)


def zip_dir(folder: Path) -> bytes:
    """A model folder as a zip in memory: its files at the top, sub-folders kept, hidden entries (staging) left out."""
    import io
    import zipfile

    folder = Path(folder)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for f in sorted(folder.rglob("*")):
            rel = f.relative_to(folder)
            if f.is_file() and not any(part.startswith(".") for part in rel.parts):
                z.write(f, rel.as_posix())
    return buf.getvalue()
