"""Scoring with an exported model: ONNX Runtime, numpy and Pillow only (``pip install linewatch[runtime]``).
Same outputs as the PyTorch path, through the same post-processing."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from linewatch.core.extras import MissingExtra, missing
from linewatch.errors import LinewatchError, ModelFileError
from linewatch.vision.batches import Source, iter_batches
from linewatch.vision.images import Preprocess
from linewatch.vision.manifest import checked_file, read_manifest
from linewatch.vision.scoring import Prediction, postprocess
from linewatch.vision.thresholds import Calibration

# images per ONNX Runtime call over a stream (a folder, a job): two images per call share one read of the weights
# (PaDiM's per-position factors are 30 MB) and keep both threads busier, 24.7 -> 21.4 ms of CPU per image for the
# bottle graph, and the scores are the same bit for bit (docs/benchmarks.md, "Two images per call"); a single upload
# is still scored alone
STREAM_BATCH = 2


class OnnxModel:
    """A model directory holding ``model.onnx``; the interface of a fitted Detector for scoring."""

    def __init__(self, model_dir: str | Path, threads: int | None = None, batch_size: int = STREAM_BATCH):
        try:
            import onnxruntime as ort
        except ImportError:
            raise LinewatchError(
                "scoring an exported model needs onnxruntime: pip install linewatch[runtime]"
            ) from None
        self.model_dir = Path(model_dir)
        self.manifest = read_manifest(self.model_dir)
        self.method = self.manifest["method"]
        path = checked_file(self.model_dir, self.manifest, "onnx")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or len(os.sched_getaffinity(0))
        opts.inter_op_num_threads = 1
        # idle workers sleep instead of spinning: the spin costs ~0.5 ms of latency when off, but while on it holds the
        # core a decode thread (or another station's request) needs; 37 -> 28 ms per image over a stream of PNGs
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:
            raise ModelFileError(f"{path} cannot be loaded by ONNX Runtime: {e}") from None
        cal = self.manifest.get("calibration")
        self.calibration_ = Calibration.from_dict(cal) if cal else None
        hp = self.manifest.get("hyperparameters") or {}
        self.min_region_area = int(hp.get("min_region_area", 0))
        self.batch_size = batch_size
        shape = self.manifest.get("input_shape")
        self._pre = Preprocess(
            self.manifest["image_size"], self.manifest.get("center_crop"), tuple(shape) if shape else None
        )
        # exports older than the search embeddings have two outputs (score, anomaly map) and no grids
        self.has_embeddings = len(self.session.get_outputs()) >= 4
        self.residual_layers = tuple(self.manifest["files"]["onnx"].get("residual_layers") or ()) or None
        # models whose search vectors carry a crop vector need its graph too (exports since it exists have it)
        self.crop_session = None
        if hp.get("search_vectors", "regions") == "crop":
            if "onnx_crops" in self.manifest["files"]:
                crops = checked_file(self.model_dir, self.manifest, "onnx_crops")
                # one thread: a 64 px crop is too small a graph to split (0.53 ms on one thread, 0.64 on two that
                # sleep between nodes), and the other core is decoding the next image meanwhile
                crop_opts = ort.SessionOptions()
                crop_opts.intra_op_num_threads = 1
                crop_opts.inter_op_num_threads = 1
                try:
                    self.crop_session = ort.InferenceSession(str(crops), crop_opts, providers=["CPUExecutionProvider"])
                except Exception as e:
                    raise ModelFileError(f"{crops} cannot be loaded by ONNX Runtime: {e}") from None
            else:
                self.has_embeddings = False

    @property
    def preprocess(self) -> Preprocess:
        return self._pre

    def run(self, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(scores, anomaly maps) of a preprocessed batch."""
        return tuple(self.run_all(inputs)[:2])

    def run_all(self, inputs: np.ndarray) -> list[np.ndarray]:
        """All graph outputs: scores, maps and (when the export has them) the features and residuals grids."""
        return self.session.run(None, {"image": np.ascontiguousarray(inputs, dtype=np.float32)})

    def require_embeddings(self) -> None:
        if not self.has_embeddings:
            raise LinewatchError(
                f"{self.model_dir / 'model.onnx'} was exported before its search embeddings existed: re-export the "
                f"model (linewatch export {self.model_dir})"
            )

    def _crop_vector(self, image: np.ndarray):
        """The crop vector of a box (x0, y0, x1, y1) of one preprocessed image (3, H, W)."""

        def vector(box: tuple[int, int, int, int]) -> np.ndarray:
            x0, y0, x1, y1 = box
            crop = np.ascontiguousarray(image[None, :, y0:y1, x0:x1], dtype=np.float32)
            return self.crop_session.run(None, {"crop": crop})[0][0]

        return vector

    def _batches(self, images: Sequence[Source], progress, grids: bool):
        done = 0
        for batch in iter_batches(list(images), self._pre, self.batch_size):
            out = self.run_all(batch.inputs)
            per_image = list(zip(out[2], out[3], batch.inputs, strict=True)) if grids else [None] * len(batch.sizes)
            yield from zip(out[0].tolist(), out[1], batch.sizes, batch.names, per_image, strict=True)
            done += len(batch.sizes)
            if progress:
                progress("score", done, len(images))

    def raw_scores(
        self, images: Sequence[Source], progress=None
    ) -> Iterator[tuple[float, np.ndarray, tuple[int, int], str | None]]:
        for score, amap, size, name, _grids in self._batches(images, progress, False):
            yield score, amap, size, name

    def iter_predict(
        self, images: Sequence[Source], progress=None, embeddings: bool | None = None
    ) -> Iterator[Prediction]:
        """Predictions in order, with their search embeddings when the export has them (``embeddings=None``);
        ``embeddings=True`` on an old export is an error saying to re-export, ``False`` skips them."""
        if embeddings:
            self.require_embeddings()
        grids = self.has_embeddings if embeddings is None else embeddings
        for score, amap, (w, h), name, g in self._batches(images, progress, grids):
            crop = self._crop_vector(g[2]) if g is not None and self.crop_session is not None else None
            g = g[:2] if g is not None else None
            yield postprocess(
                score,
                amap,
                self.calibration_,
                self._pre,
                w,
                h,
                self.min_region_area,
                name,
                g,
                self.residual_layers,
                crop,
            )

    def predict(self, images: Sequence[Source], progress=None, embeddings: bool | None = None) -> list[Prediction]:
        return list(self.iter_predict(images, progress, embeddings))


def open_model(model_dir: str | Path, prefer_onnx: bool = True):
    """The fastest way to score this model here: its ONNX export when present and onnxruntime is
    installed, else the PyTorch detector."""
    manifest = read_manifest(model_dir)
    if prefer_onnx and "onnx" in manifest["files"]:
        try:
            import onnxruntime  # noqa: F401

            return OnnxModel(model_dir)
        except ImportError:
            pass
    if missing("vision"):
        raise MissingExtra(
            f"{model_dir} has no ONNX export and the vision extra (PyTorch) is not installed: run "
            '`linewatch export` where it is, or pip install "linewatch[vision]" here'
        )
    from linewatch.vision.saving import load

    return load(model_dir)
