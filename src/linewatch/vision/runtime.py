"""Scoring with an exported model: ONNX Runtime, numpy and Pillow only (``pip install linewatch[runtime]``).
Same outputs as the PyTorch path, through the same post-processing."""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from itertools import islice
from pathlib import Path

import numpy as np

from linewatch.core.extras import MissingExtra, missing
from linewatch.errors import LinewatchError, ModelFileError
from linewatch.vision.appearance import brightness, image_vector
from linewatch.vision.batches import Batch, Source, Unreadable, iter_batches, load_batch
from linewatch.vision.cpu import search_hint
from linewatch.vision.images import Preprocess
from linewatch.vision.manifest import checked_file, read_manifest
from linewatch.vision.scoring import Prediction, postprocess
from linewatch.vision.thresholds import Calibration

# images per ONNX Runtime call over a stream (a folder, a job): two images per call share one read of the weights
# (PaDiM's per-position factors are 30 MB) and keep both threads busier, 24.7 -> 21.4 ms of CPU per image for the
# bottle graph, and the scores are the same bit for bit (docs/benchmarks.md, "Two images per call"); a single upload
# is still scored alone
STREAM_BATCH = 2
# a stream of more than one batch is scored by two workers, each decoding, scoring and post-processing whole batches
# through a session of half the threads (one each on two cores), instead of one thread decoding ahead while the
# caller scores and post-processes on all of them: the cores stay busy while the other worker holds the GIL (the PNG
# decoder, the post-processing), and one thread per graph spends less CPU than two sharing each node; bottle's stream
# 26-28 -> 24-26 ms per image on two cores, 48-50 -> 43-45 ms of CPU (docs/benchmarks.md, "Two workers"), the same
# predictions
STREAM_WORKERS = 2
# guards each model's count of single calls in flight and the opening of its workers' session (short critical
# sections; one lock for all models keeps a model's attributes its learned state and its sessions)
_LOCK = threading.Lock()


def _reducing_gap(model_dir: Path, value) -> float | None:
    """The manifest's ``reducing_gap`` for ``Preprocess`` (None: one resize; saved before the setting, or 0), checked
    as training checks it: Pillow would refuse an impossible one only when the first image is resized."""
    if not value:
        return None
    try:
        gap = float(value)
    except (TypeError, ValueError):
        gap = float("nan")
    if not 1 < gap <= 16:
        raise ModelFileError(f"{model_dir}: the manifest's reducing_gap {value!r} is not 0 or above 1 (at most 16)")
    return gap


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
        self._path = checked_file(self.model_dir, self.manifest, "onnx")
        self.threads = threads or len(os.sched_getaffinity(0))
        self.session = self._open_session(self.threads)
        self._stream_session = None  # the workers' session, opened by the first stream (``_worker_session``)
        self._single_calls = 0  # single batches being scored now (``_single_session``)
        cal = self.manifest.get("calibration")
        try:
            self.calibration_ = Calibration.from_dict(cal) if cal else None
        except ModelFileError as e:
            raise ModelFileError(f"{self.model_dir}: {e}") from None
        hp = self.manifest.get("hyperparameters") or {}
        self.min_region_area = int(hp.get("min_region_area", 0))
        # the bank search of a model with a memory bank (None: PaDiM's has none); saved before the searches: exact
        chosen = self.method
        if chosen == "auto":  # a method choice: the candidate it kept
            chosen = ((self.manifest.get("training") or {}).get("method_choice") or {}).get("chosen")
        self.search = hp.get("search", "exact") if chosen in ("patchcore", "combined") else None
        self.batch_size = batch_size
        shape = self.manifest.get("input_shape")
        gap = _reducing_gap(self.model_dir, hp.get("reducing_gap"))
        self._pre = Preprocess(
            self.manifest["image_size"], self.manifest.get("center_crop"), tuple(shape) if shape else None, gap
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

    def inspection_area(self) -> np.ndarray | None:
        """The model's inspection area (``linewatch.vision.area``; a constant of the graph already), for pictures of
        its maps; None for the whole photo."""
        if "inspect_area" not in (self.manifest.get("files") or {}):
            return None
        cached = self.__dict__.get("_area")
        if cached is None:
            from linewatch.vision.area import read_area

            cached = self._area = read_area(checked_file(self.model_dir, self.manifest, "inspect_area"))
        return cached

    def _open_session(self, threads: int):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        # idle workers sleep instead of spinning: the spin costs ~0.5 ms of latency when off, but while on it holds the
        # core a decode thread (or another station's request) needs; 37 -> 28 ms per image over a stream of PNGs
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            return ort.InferenceSession(str(self._path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:
            raise ModelFileError(f"{self._path} cannot be loaded by ONNX Runtime: {e}") from None

    def _worker_session(self):
        """The session the stream's workers share: half the threads each (ONNX Runtime runs concurrent calls of one
        session side by side), opened once, beside the session that scores single images on all the threads."""
        threads = max(1, self.threads // STREAM_WORKERS)
        if threads == self.threads:
            return self.session
        with _LOCK:
            if self._stream_session is None:
                self._stream_session = self._open_session(threads)
        return self._stream_session

    @contextmanager
    def _single_session(self):
        """The session for one batch scored on its own (an upload): all the threads when it is the only one, the
        workers' half when another is being scored at the same time (a service with several cameras), so that
        concurrent calls share the cores instead of each splitting every node over all of them."""
        with _LOCK:
            others = self._single_calls
            self._single_calls += 1
        try:
            yield self.session if others == 0 else self._worker_session()
        finally:
            with _LOCK:
                self._single_calls -= 1

    @property
    def preprocess(self) -> Preprocess:
        return self._pre

    @property
    def search_hint(self) -> str | None:
        """How to make this model's bank search faster on this CPU (``cpu.search_hint``), or None."""
        return search_hint(self.search) if self.search else None

    def run(self, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(scores, anomaly maps) of a preprocessed batch."""
        return tuple(self.run_all(inputs)[:2])

    def run_all(self, inputs: np.ndarray, session=None) -> list[np.ndarray]:
        """All graph outputs: scores, maps and (when the export has them) the features and residuals grids."""
        return (session or self.session).run(None, {"image": np.ascontiguousarray(inputs, dtype=np.float32)})

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

    def _stream(
        self,
        images: Sequence[Source],
        progress,
        work: Callable[[object, Batch], list],
        unreadable: Unreadable | None = None,
    ) -> Iterator:
        """``work(session, batch)``'s results for each batch of the images, in order. An image that cannot be read
        raises ImageError, or with ``unreadable`` is told to it (path, why) just before its batch's results and left
        out.

        One batch: in the caller's thread (``_single_session``). One thread: decoded ahead in a thread while the
        caller's thread runs ``work`` (``iter_batches``). Otherwise ``STREAM_WORKERS`` threads each load and work
        whole batches, with one more batch queued behind them, so memory stays a few batches whatever the stream's
        length."""
        sources = list(images)
        chunks = [sources[i : i + self.batch_size] for i in range(0, len(sources), self.batch_size)]
        skip_bad = unreadable is not None
        done = 0
        if not chunks:
            return

        def worked(session, batch: Batch) -> list:
            return work(session, batch) if batch.sizes else []  # a batch of unreadable images only: nothing to run

        if len(chunks) == 1:
            batch = load_batch(chunks[0], self._pre, skip_bad)
            with self._single_session() as session:
                results = worked(session, batch)
            batch.report_skipped(unreadable)
            yield from results
            if progress:
                progress("score", len(sources), len(sources))
            return
        if self.threads < 2:
            for batch in iter_batches(sources, self._pre, self.batch_size, skip_bad):
                results = worked(self.session, batch)
                batch.report_skipped(unreadable)
                yield from results
                done += len(batch.sizes) + len(batch.skipped)
                if progress:
                    progress("score", done, len(sources))
            return
        session = self._worker_session()
        pool = ThreadPoolExecutor(max_workers=STREAM_WORKERS, thread_name_prefix="linewatch-score")

        def load_and_work(chunk) -> tuple[list, Batch]:
            batch = load_batch(chunk, self._pre, skip_bad)
            return worked(session, batch), batch

        def submit(chunk):
            return pool.submit(load_and_work, chunk)

        try:
            rest = iter(chunks)
            pending = deque(submit(c) for c in islice(rest, STREAM_WORKERS + 1))
            while pending:
                results, batch = pending.popleft().result()
                nxt = next(rest, None)
                if nxt is not None:
                    pending.append(submit(nxt))
                batch.report_skipped(unreadable)
                yield from results
                done += len(batch.sizes) + len(batch.skipped)
                if progress:
                    progress("score", done, len(sources))
        finally:  # an error, or a caller that stops early: nothing more is started, what runs is waited for
            pool.shutdown(wait=True, cancel_futures=True)

    def raw_scores(
        self, images: Sequence[Source], progress=None, unreadable: Unreadable | None = None
    ) -> Iterator[tuple[float, np.ndarray, tuple[int, int], str | None]]:
        def work(session, batch: Batch) -> list:
            out = self.run_all(batch.inputs, session)
            return list(zip(out[0].tolist(), out[1], batch.sizes, batch.names, strict=True))

        return self._stream(images, progress, work, unreadable)

    def raw_looks(
        self, images: Sequence[Source], progress=None, unreadable: Unreadable | None = None
    ) -> Iterator[tuple[float, float, np.ndarray | None, float, str | None]]:
        """(raw score, map peak, look, brightness, name) per image, in order (``appearance``); the look is None for an
        export older than the search embeddings. Unreadable images as ``raw_scores``."""

        def work(session, batch: Batch) -> list:
            out = self.run_all(batch.inputs, session)
            looks = [image_vector(f) for f in out[2]] if self.has_embeddings else [None] * len(batch.sizes)
            peaks = out[1].reshape(len(out[1]), -1).max(1).tolist()
            lit = brightness(batch.inputs).tolist()
            return list(zip(out[0].tolist(), peaks, looks, lit, batch.names, strict=True))

        return self._stream(images, progress, work, unreadable)

    def iter_predict(
        self,
        images: Sequence[Source],
        progress=None,
        embeddings: bool | None = None,
        unreadable: Unreadable | None = None,
    ) -> Iterator[Prediction]:
        """Predictions in order, with their search embeddings when the export has them (``embeddings=None``);
        ``embeddings=True`` on an old export is an error saying to re-export, ``False`` skips them. An image that
        cannot be read raises ImageError, or with ``unreadable`` is told to it as (path, why) and left out."""
        if embeddings:
            self.require_embeddings()
        grids = self.has_embeddings if embeddings is None else embeddings

        def work(session, batch: Batch) -> list[Prediction]:
            out = self.run_all(batch.inputs, session)
            lit = brightness(batch.inputs).tolist()
            preds = []
            for i, ((w, h), name) in enumerate(zip(batch.sizes, batch.names, strict=True)):
                crop = self._crop_vector(batch.inputs[i]) if grids and self.crop_session is not None else None
                preds.append(
                    postprocess(
                        out[0][i].item(),
                        out[1][i],
                        self.calibration_,
                        self._pre,
                        w,
                        h,
                        self.min_region_area,
                        name,
                        (out[2][i], out[3][i]) if grids else None,
                        self.residual_layers,
                        crop,
                        brightness=lit[i],
                    )
                )
            return preds

        return self._stream(images, progress, work, unreadable)

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
