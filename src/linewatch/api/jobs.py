"""Background jobs (training) run by an in-process worker thread on embedded defaults.

A job's state lives in the database: queued -> running -> succeeded | failed | cancelled, with progress
0..1 and a message. Progress is pushed to WebSocket clients. On start, jobs left "running" by a process
that died are marked failed, and queued ones are picked up again."""

from __future__ import annotations

import logging
import os
import queue
import shutil
import socket
import tempfile
import threading
import time
import traceback
from pathlib import Path

from sqlalchemy import select, update

from linewatch.api.context import AppContext
from linewatch.errors import LinewatchError
from linewatch.store.tables import Dataset, DatasetImage, Job, ModelVersion, now

log = logging.getLogger("linewatch.jobs")
STAGE_SPAN = {
    "features": (0.0, 0.6),
    "coreset": (0.6, 0.85),
    "calibrate": (0.85, 0.95),
    "export": (0.95, 1.0),
}


class Cancelled(Exception):
    pass


class JobRunner:
    def __init__(self, ctx: AppContext):
        self.ctx = ctx
        self.queue: queue.Queue[int] = queue.Queue()
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        with self.ctx.sessions() as s, s.begin():
            s.execute(
                update(Job)
                .where(Job.status == "running")
                .values(status="failed", error="the worker stopped while this job ran", finished_at=now())
            )
            waiting = s.scalars(select(Job.id).where(Job.status == "queued").order_by(Job.id)).all()
        for job_id in waiting:
            self.queue.put(job_id)
        self.ctx.metrics.queue_depth.set(self.queue.qsize())
        self._thread = threading.Thread(target=self._loop, name="linewatch-jobs", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def submit(self, job_id: int) -> None:
        self.queue.put(job_id)
        self.ctx.metrics.queue_depth.set(self.queue.qsize())

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                job_id = self.queue.get(timeout=0.5)
            except queue.Empty:
                continue
            self.ctx.metrics.queue_depth.set(self.queue.qsize())
            try:
                self.run(job_id)
            except Exception:  # the loop must survive anything a job does
                log.exception("job %s crashed the runner", job_id)

    def _set(self, job_id: int, **values) -> dict:
        with self.ctx.sessions() as s, s.begin():
            job = s.get(Job, job_id)
            for k, v in values.items():
                setattr(job, k, v)
            event = {
                "type": "job",
                "job": {
                    "id": job.id,
                    "kind": job.kind,
                    "status": job.status,
                    "progress": job.progress,
                    "message": job.message,
                },
            }
        self.ctx.events.publish(event)
        return event

    def run(self, job_id: int) -> None:
        with self.ctx.sessions() as s, s.begin():
            job = s.get(Job, job_id)
            if job is None or job.status != "queued":
                return
            if job.cancel_requested:
                job.status, job.finished_at = "cancelled", now()
                return
            job.status, job.started_at, job.worker, job.heartbeat_at = "running", now(), self.name, now()
            kind, params = job.kind, dict(job.params)
        self._set(job_id, message="started")
        self.ctx.metrics.jobs_running.inc()
        started = time.perf_counter()
        status = "failed"
        try:
            if kind != "train":
                raise LinewatchError(f"unknown job kind {kind!r}")
            result = run_training(self.ctx, job_id, params, self._progress(job_id))
            status = "succeeded"
            self._set(job_id, status=status, progress=1.0, message="done", result=result, finished_at=now())
        except Cancelled:
            status = "cancelled"
            self._set(job_id, status=status, message="cancelled", finished_at=now())
        except LinewatchError as e:
            self._set(job_id, status="failed", message="failed", error=str(e), finished_at=now())
        except Exception as e:
            log.error("job %s failed: %s", job_id, traceback.format_exc())
            self._set(job_id, status="failed", message="failed", error=f"{type(e).__name__}: {e}", finished_at=now())
        finally:
            self.ctx.metrics.jobs_running.dec()
            self.ctx.metrics.job_duration.labels(kind, status).observe(time.perf_counter() - started)
            if status != "succeeded":
                with self.ctx.sessions() as s, s.begin():
                    s.execute(
                        update(ModelVersion)
                        .where(ModelVersion.job_id == job_id, ModelVersion.status == "training")
                        .values(status="failed")
                    )

    def _progress(self, job_id: int):
        last = {"t": 0.0, "stage": None}

        def report(stage: str, done: int, total: int) -> None:
            lo, hi = STAGE_SPAN.get(stage, (0.0, 1.0))
            value = lo + (hi - lo) * (done / max(total, 1))
            t = time.monotonic()
            if stage == last["stage"] and t - last["t"] < 0.5 and done < total:
                return
            last["t"], last["stage"] = t, stage
            with self.ctx.sessions() as s:
                if s.scalar(select(Job.cancel_requested).where(Job.id == job_id)):
                    raise Cancelled()
            self._set(job_id, progress=round(value, 4), message=f"{stage} {done}/{total}", heartbeat_at=now())

        return report


def run_training(ctx: AppContext, job_id: int, params: dict, progress) -> dict:
    """Train a model version from a dataset's images; the version becomes ready with an ONNX export."""
    from linewatch.vision.export import export_onnx
    from linewatch.vision.saving import create_detector, save

    with ctx.sessions() as s:
        dataset = s.get(Dataset, params["dataset_id"])
        if dataset is None:
            raise LinewatchError(f"dataset {params['dataset_id']} no longer exists")
        images = s.scalars(
            select(DatasetImage).where(DatasetImage.dataset_id == dataset.id, DatasetImage.label == "good")
        ).all()
        model_id = s.scalar(select(ModelVersion.id).where(ModelVersion.job_id == job_id))
    if len(images) < 5:
        raise LinewatchError(f"dataset {dataset.name!r} has {len(images)} good images; training needs at least 5")
    with tempfile.TemporaryDirectory(prefix="linewatch-train-") as tmp:
        paths = []
        for i, im in enumerate(images):
            p = Path(tmp) / f"{i:06d}_{Path(im.filename).name}"
            p.write_bytes(ctx.blobs.get(im.sha256))
            paths.append(p)
        det = create_detector(params["method"], backbone=params["backbone"], image_size=params["image_size"])
        det.fit(paths, progress=progress)
    final = ctx.settings.models_dir / str(model_id)
    save(det, final)
    progress("export", 0, 1)
    export_onnx(final)
    cal = det.calibration_
    with ctx.sessions() as s, s.begin():
        mv = s.get(ModelVersion, model_id)
        mv.status, mv.path = "ready", str(final.resolve())
        mv.threshold = cal.image_threshold if cal else None
        mv.metrics = {"training": det.train_info_ | {"skipped": len(det.skipped_)}}
    return {"model_id": model_id, "train_images": det.train_info_["train_images"]}


def remove_model_files(path: str | None) -> None:
    if path:
        shutil.rmtree(path, ignore_errors=True)
