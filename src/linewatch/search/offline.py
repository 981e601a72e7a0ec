"""Defect search over folders of images, without the service: ``linewatch search index`` and ``query``.

An offline index is a ``FaissIndex`` directory whose ``info`` names the model that embedded it (queries are
embedded by the same model) and the level: ``region`` (default: each image adds one point per defect region, or
its anomaly peak when it has none; neighbours are images ranked by their best region) or ``image`` (one point per
image, the whole-image embedding).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from linewatch.errors import DatasetError, LinewatchError
from linewatch.search.faiss_index import FaissIndex
from linewatch.search.index import SearchIndexError
from linewatch.search.service import search_grouped

if TYPE_CHECKING:
    from linewatch.vision.batches import Unreadable

LEVELS = ("region", "image")
SKIP_DIRS = {"ground_truth"}  # MVTec masks are not images of parts
Progress = Callable[[str, int, int], None]


def labelled_images(data: str | Path) -> list[tuple[Path, str]]:
    """Every image under ``data`` with its label, the name of the folder it is in (MVTec: train/good -> good,
    test/<defect> -> <defect>; ground_truth/ is skipped). Paths are kept as found (symlinks are not resolved)."""
    from linewatch.vision.images import is_hidden, is_image_file

    root = Path(data)
    if not root.exists():
        raise DatasetError(f"data path not found: {root}")
    if not root.is_dir():
        raise DatasetError(f"expected a folder of images, got a file: {root}")
    found = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).parts
        if any(part in SKIP_DIRS for part in rel) or is_hidden(rel):
            continue
        if is_image_file(p):
            found.append((p, p.parent.name))
    if not found:
        raise DatasetError(f"no images (png, jpg, bmp, tif) found under {root}")
    return found


def open_embedder(model: str | Path, engine: str = "auto"):
    """A scorer that yields embeddings: the ONNX export when it has them (``auto``/``onnx``), else PyTorch.
    ``onnx`` on an export older than the embeddings is an error saying to re-export."""
    from linewatch.vision.manifest import read_manifest

    manifest = read_manifest(model)
    if engine in ("auto", "onnx") and "onnx" in manifest["files"]:
        try:
            from linewatch.vision.runtime import OnnxModel

            onnx = OnnxModel(model)
        except LinewatchError:
            if engine == "onnx":
                raise
            onnx = None
        if onnx is not None:
            if onnx.has_embeddings:
                return onnx
            if engine == "onnx":
                onnx.require_embeddings()
    elif engine == "onnx":
        raise LinewatchError(f"{model} has no ONNX export: run `linewatch export {model}` first")
    try:
        from linewatch.vision.saving import load
    except ImportError:
        raise LinewatchError(
            f"{model}: its ONNX export has no search embeddings and PyTorch is not installed here: re-export the "
            f"model (linewatch export {model}) where linewatch[vision] is installed"
        ) from None
    return load(model)


def _box(region) -> list[int]:
    return [region.x, region.y, region.x + region.width, region.y + region.height]


def _vectors(pred, level: str) -> tuple[np.ndarray, list[list[int] | None]]:
    emb = pred.embeddings
    if emb is None:
        raise LinewatchError("the model gave no embeddings: re-export it (linewatch export MODEL)")
    if level == "image":
        return emb.image[None], [None]
    if len(emb.regions):
        return emb.regions, [_box(r) for r in pred.regions]
    return emb.peak[None], [None]


def index_folder(
    data: str | Path,
    model: str | Path,
    out: str | Path,
    level: str = "region",
    engine: str = "auto",
    progress: Progress | None = None,
) -> FaissIndex:
    """Embed every image under ``data`` (label = its folder's name) with ``model`` into a new index at ``out``
    (replacing one there), and save it."""
    if level not in LEVELS:
        raise LinewatchError(f"unknown level {level!r}: one of {', '.join(LEVELS)}")
    images = labelled_images(data)
    scorer = open_embedder(model, engine)
    index: FaissIndex | None = None
    next_id = 0
    skipped: list[str] = []
    where = {str(path): (n, lab) for n, (path, lab) in enumerate(images)}
    # one stream (decoding overlapped with scoring); an unreadable file is skipped and reported, not the end of a
    # long run
    preds = scorer.iter_predict(
        [path for path, _ in images],
        (lambda _stage, done, total: progress("embed", done, total)) if progress else None,
        unreadable=lambda _name, why: skipped.append(why),
    )
    for pred in preds:
        n, lab = where[pred.path]
        vecs, boxes = _vectors(pred, level)
        if index is None:
            index = _fresh(out, vecs.shape[1])
        payloads = [
            {
                "path": pred.path,
                "label": lab,
                "image": n,
                "region": box,
                "verdict": pred.verdict,
                "score": pred.score,
            }
            for box in boxes
        ]
        index.add(np.arange(next_id, next_id + len(vecs)), vecs, payloads)
        next_id += len(vecs)
    if index is None:
        raise LinewatchError(f"no readable image under {data} ({len(skipped)} unreadable: {skipped[0]})")
    index.info = {
        "model": str(Path(model).resolve()),
        "level": level,
        "data": str(Path(data).resolve()),
        "images": len(images) - len(skipped),
        "skipped": skipped,
    }
    index.save()
    return index


def _fresh(out: str | Path, dim: int) -> FaissIndex:
    """An empty index that replaces whatever index is at ``out`` once saved."""
    try:
        return FaissIndex(out, dim, replace=True)
    except SearchIndexError as e:
        raise LinewatchError(f"{e}: choose another --out") from None


@dataclass
class Neighbour:
    path: str
    label: str | None
    similarity: float
    region: list[int] | None  # the neighbour's matching region box (original pixels), None: whole image or peak
    query_region: list[int] | None  # the query's region that matched it
    verdict: str | None

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "label": self.label,
            "similarity": round(self.similarity, 6),
            "region": self.region,
            "query_region": self.query_region,
            "verdict": self.verdict,
        }


def open_offline_index(path: str | Path) -> FaissIndex:
    path = Path(path)
    if not (path / "meta.json").is_file():
        raise LinewatchError(f"no search index at {path} (make one with `linewatch search index`)")
    return FaissIndex(path)


def query_images(
    index: FaissIndex,
    images: Sequence[str | Path],
    k: int = 5,
    model: str | Path | None = None,
    engine: str = "auto",
    progress: Progress | None = None,
    unreadable: Unreadable | None = None,
):
    """Per query image, in order: (path, its k nearest indexed images as ``Neighbour``s, best first). An image
    that cannot be read raises ImageError, or with ``unreadable`` is told to it as (path, why) and left out."""
    if k < 1:
        raise LinewatchError("--k must be at least 1")
    model = model or index.info.get("model")
    if not model:
        raise LinewatchError(f"{index.path} does not name its model: pass --model")
    level = index.info.get("level", "region")
    scorer = open_embedder(model, engine)
    for pred in scorer.iter_predict(list(images), progress, unreadable=unreadable):
        path = pred.path
        vecs, boxes = _vectors(pred, level)
        if vecs.shape[1] != index.dim:
            raise LinewatchError(f"{model} embeds into {vecs.shape[1]} dimensions, the index holds {index.dim}")
        found = []
        for gh in search_grouped(index, vecs, k, group_key="path"):
            # which query vector matched best: the one nearest to the neighbour's best point
            q = int(np.argmax(vecs @ index.vectors([gh.hit.id])[0]))
            p = gh.hit.payload
            found.append(
                Neighbour(p.get("path"), p.get("label"), gh.similarity, p.get("region"), boxes[q], p.get("verdict"))
            )
        yield str(path), found
