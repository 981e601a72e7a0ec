"""Background jobs (training). One code path runs a job, ``JobRunner.run``: on embedded defaults a thread of
the service calls it; with ``LINEWATCH_QUEUE_URL`` the ``linewatch worker`` processes do (see ``queue.py``).

A job's state lives in the database: queued -> running -> succeeded | failed | cancelled, with progress
0..1 and a message. Progress is pushed to WebSocket clients. A running job's heartbeat is refreshed on each
progress report and every few seconds by a small thread; a job whose heartbeat is older than
``job_heartbeat_timeout`` has lost its worker and is marked failed by the sweeper (``fail_lost_jobs``). The
in-process runner, the only one running jobs, marks every job left "running" failed when it starts, and
picks queued ones up again."""

from __future__ import annotations

import datetime as dt
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

from sqlalchemy import func, select, update

from linewatch.api.context import AppContext
from linewatch.config import Settings
from linewatch.errors import LinewatchError
from linewatch.store.tables import Dataset, DatasetImage, Job, ModelVersion, now

log = logging.getLogger("linewatch.jobs")
STAGE_SPAN = {
    "features": (0.0, 0.6),
    "coreset": (0.6, 0.85),
    "calibrate": (0.85, 0.9),
    "score": (0.9, 0.95),  # evaluation on a test dataset
    "export": (0.95, 1.0),
}
# what a person reads for each stage
STAGE_NAME = {
    "features": "extracting features",
    "coreset": "selecting the memory bank",
    "calibrate": "calibrating the threshold",
    "score": "scoring the test set",
    "export": "exporting the model",
    "embed": "computing search vectors",
}
WORKER_LOST = "the worker stopped while this job ran"


class Cancelled(Exception):
    pass


class Stopping(Exception):
    """The runner is stopping (the worker got SIGTERM): the job ends failed."""


class Abandoned(Exception):
    """The job is no longer running under this runner (the sweeper gave it up): stop without writing."""


def heartbeat_interval(settings: Settings) -> float:
    """How often a running job's heartbeat is refreshed, and the sweeper looks: well within the timeout."""
    return min(10.0, max(0.5, settings.job_heartbeat_timeout / 4))


def job_event(job: Job) -> dict:
    """What WebSocket clients receive when a job changes."""
    return {
        "type": "job",
        "job": {
            "id": job.id,
            "kind": job.kind,
            "status": job.status,
            "progress": job.progress,
            "message": job.message,
        },
    }


def fail_lost_jobs(ctx: AppContext, timeout: float | None = None, error: str = WORKER_LOST) -> list[int]:
    """Mark failed the jobs left "running" by a worker that is gone, and their model versions: those whose
    heartbeat is older than ``timeout`` seconds, or all running jobs when ``timeout`` is None (the in-process
    runner at start: nothing else runs jobs). Each job is checked again as it is updated, so a job that
    finished or beat meanwhile is left alone. Returns the ids marked failed."""
    conditions = [Job.status == "running"]
    if timeout is not None:
        cutoff = now() - dt.timedelta(seconds=timeout)
        conditions.append(func.coalesce(Job.heartbeat_at, Job.started_at, Job.created_at) < cutoff)
    failed = []
    with ctx.sessions() as s, s.begin():
        for job_id in s.scalars(select(Job.id).where(*conditions).order_by(Job.id)).all():
            done = s.execute(
                update(Job)
                .where(Job.id == job_id, *conditions)
                .values(status="failed", message="failed", error=error, finished_at=now())
            )
            if done.rowcount:
                s.execute(
                    update(ModelVersion)
                    .where(ModelVersion.job_id == job_id, ModelVersion.status == "training")
                    .values(status="failed")
                )
                failed.append(job_id)
    if failed:
        log.warning("marked failed, %s: job %s", error, ", ".join(map(str, failed)))
    return failed


class JobRunner:
    """Runs jobs. ``start``/``submit`` make it the service's in-process runner (a thread and a queue in
    memory); a queue worker calls ``run`` directly for each message."""

    def __init__(self, ctx: AppContext, name: str | None = None):
        self.ctx = ctx
        self.queue: queue.Queue[int] = queue.Queue()
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.heartbeat_interval = heartbeat_interval(ctx.settings)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        fail_lost_jobs(self.ctx)
        with self.ctx.sessions() as s:
            waiting = s.scalars(select(Job.id).where(Job.status == "queued").order_by(Job.id)).all()
        for job_id in waiting:
            self.queue.put(job_id)
        self.ctx.metrics.queue_depth.set(self.queue.qsize())
        self._thread = threading.Thread(target=self._loop, name="linewatch-jobs", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop taking jobs; a job running now ends failed at its next progress report."""
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
            event = job_event(job)
        self.ctx.events.publish(event)
        return event

    def _claim(self, job_id: int) -> tuple[str, dict] | None:
        """Take a queued job: (kind, params), or None when it is not queued (a message delivered twice, a job
        cancelled or given up meanwhile). The update is conditional, so two workers never both run a job."""
        with self.ctx.sessions() as s, s.begin():
            job = s.get(Job, job_id)
            if job is None or job.status != "queued":
                log.info("job %s is %s, not queued: skipped", job_id, job.status if job else "gone")
                return None
            if job.cancel_requested:
                job.status, job.message, job.finished_at = "cancelled", "cancelled", now()
                s.execute(
                    update(ModelVersion)
                    .where(ModelVersion.job_id == job_id, ModelVersion.status == "training")
                    .values(status="failed")
                )
                event = job_event(job)
            else:
                t = now()
                taken = s.execute(
                    update(Job)
                    .where(Job.id == job_id, Job.status == "queued")
                    .values(status="running", started_at=t, worker=self.name, heartbeat_at=t)
                    .execution_options(synchronize_session=False)
                )
                if not taken.rowcount:
                    return None
                return job.kind, dict(job.params)
        self.ctx.events.publish(event)
        return None

    def run(self, job_id: int) -> str | None:
        """Run a queued job to its end; the final status, or None when the job was not queued."""
        claimed = self._claim(job_id)
        if claimed is None:
            return None
        kind, params = claimed
        self._set(job_id, message="started")
        log.info("job %s (%s) started on %s", job_id, kind, self.name)
        self.ctx.metrics.jobs_running.inc()
        beating = self._heartbeat(job_id)
        started = time.perf_counter()
        status = "failed"
        try:
            runs = {"train": run_training, "embed": run_embedding}
            if kind not in runs:
                raise LinewatchError(f"unknown job kind {kind!r}")
            result = runs[kind](self.ctx, job_id, params, self._progress(job_id))
            status = "succeeded"
            self._set(job_id, status=status, progress=1.0, message="done", result=result, finished_at=now())
        except Cancelled:
            status = "cancelled"
            self._set(job_id, status=status, message="cancelled", finished_at=now())
        except Stopping:
            self._set(job_id, status="failed", message="failed", error=WORKER_LOST, finished_at=now())
        except Abandoned:
            log.warning("job %s was given up while it ran here (no heartbeat in time); stopped", job_id)
        except LinewatchError as e:
            self._set(job_id, status="failed", message="failed", error=str(e), finished_at=now())
        except Exception as e:
            log.error("job %s failed: %s", job_id, traceback.format_exc())
            self._set(job_id, status="failed", message="failed", error=f"{type(e).__name__}: {e}", finished_at=now())
        finally:
            beating.set()
            self.ctx.metrics.jobs_running.dec()
            seconds = time.perf_counter() - started
            self.ctx.metrics.job_duration.labels(kind, status).observe(seconds)
            if status != "succeeded":
                with self.ctx.sessions() as s, s.begin():
                    s.execute(
                        update(ModelVersion)
                        .where(ModelVersion.job_id == job_id, ModelVersion.status == "training")
                        .values(status="failed")
                    )
            log.info("job %s %s in %.1f s", job_id, status, seconds)
        return status

    def _heartbeat(self, job_id: int) -> threading.Event:
        """A thread refreshing the job's heartbeat until the returned event is set: a worker that dies stops it,
        and the sweeper then marks the job failed."""
        done = threading.Event()

        def beat() -> None:
            while not done.wait(self.heartbeat_interval):
                try:
                    with self.ctx.sessions() as s, s.begin():
                        s.execute(
                            update(Job)
                            .where(Job.id == job_id, Job.status == "running", Job.worker == self.name)
                            .values(heartbeat_at=now())
                        )
                except Exception as e:  # the database may be back for the next beat
                    log.warning("job %s: heartbeat not written: %s", job_id, e)

        threading.Thread(target=beat, name=f"linewatch-heartbeat-{job_id}", daemon=True).start()
        return done

    def _progress(self, job_id: int):
        last = {"t": 0.0, "stage": None, "value": 0.0}

        def report(stage: str, done: int, total: int) -> None:
            if self._stop.is_set():
                raise Stopping()
            lo, hi = STAGE_SPAN.get(stage, (0.0, 1.0))
            # one figure for the whole job that never goes back: a stage met again (features of the held-out
            # images after the memory bank) holds the bar where it is and names the stage
            value = max(last["value"], lo + (hi - lo) * (done / max(total, 1)))
            last["value"] = value
            t = time.monotonic()
            if stage == last["stage"] and t - last["t"] < 0.5 and done < total:
                return
            last["t"], last["stage"] = t, stage
            with self.ctx.sessions() as s:
                row = s.execute(
                    select(Job.cancel_requested, Job.status, Job.worker).where(Job.id == job_id)
                ).one_or_none()
            if row is None or row.status != "running" or row.worker != self.name:
                raise Abandoned()
            if row.cancel_requested:
                raise Cancelled()
            message = f"{STAGE_NAME.get(stage, stage)} {done}/{total}"
            self._set(job_id, progress=round(value, 4), message=message, heartbeat_at=now())

        return report


def _fetch(ctx: AppContext, images: list[DatasetImage], folder: Path) -> list[Path]:
    """The dataset's images as files in a temporary folder (the model code reads paths)."""
    paths = []
    for i, im in enumerate(images):
        p = folder / f"{i:06d}_{Path(im.filename).name}"
        p.write_bytes(ctx.blobs.get(im.sha256))
        paths.append(p)
    return paths


def _fetch_masks(ctx: AppContext, images: list[DatasetImage], folder: Path) -> list[Path | None]:
    """The images' ground-truth masks as files (None where an image has none)."""
    out: list[Path | None] = []
    for i, im in enumerate(images):
        if im.mask_sha256 is None:
            out.append(None)
            continue
        p = folder / f"{i:06d}_mask.png"
        p.write_bytes(ctx.blobs.get(im.mask_sha256))
        out.append(p)
    return out


def _dataset_images(ctx: AppContext, dataset_id: int, good_only: bool) -> tuple[str, list[DatasetImage]]:
    with ctx.sessions() as s:
        dataset = s.get(Dataset, dataset_id)
        if dataset is None:
            raise LinewatchError(f"dataset {dataset_id} no longer exists")
        q = select(DatasetImage).where(DatasetImage.dataset_id == dataset_id)
        if good_only:
            q = q.where(DatasetImage.label == "good")
        return dataset.name, list(s.scalars(q.order_by(DatasetImage.id)).all())


class _RecordScores:
    """The detector as ``evaluate`` sees it, keeping each test image's raw score (for the dashboard's score
    histogram and ROC curve) as evaluation goes: the images are scored once."""

    def __init__(self, detector):
        self._detector = detector
        self.scores: list[float] = []

    def __getattr__(self, name):
        return getattr(self._detector, name)

    def raw_scores(self, images, progress=None):
        for item in self._detector.raw_scores(images, progress):
            self.scores.append(float(item[0]))
            yield item


def test_scores(samples, scores: list[float]) -> list[dict]:
    """Per test image: its label (good or a defect type) and raw score, at most a few thousand (bounded JSON)."""
    rows = [{"label": x.label, "score": round(sc, 6)} for x, sc in zip(samples, scores, strict=True)]
    return rows[:MAX_TEST_SCORES]


MAX_TEST_SCORES = 5000


def run_training(ctx: AppContext, job_id: int, params: dict, progress) -> dict:
    """Train a model version from a dataset's good images; the version becomes ready with an ONNX export, and
    with the metrics of an evaluation on ``test_dataset_id``'s labelled images when one is given."""
    from linewatch.vision.datasets import Dataset as ImageSet
    from linewatch.vision.datasets import Sample
    from linewatch.vision.evaluation import evaluate
    from linewatch.vision.export import export_onnx
    from linewatch.vision.saving import create_detector, save

    name, images = _dataset_images(ctx, params["dataset_id"], good_only=True)
    with ctx.sessions() as s:
        model_id = s.scalar(select(ModelVersion.id).where(ModelVersion.job_id == job_id))
    if len(images) < 5:
        raise LinewatchError(f"dataset {name!r} has {len(images)} good images; training needs at least 5")
    metrics = None
    with tempfile.TemporaryDirectory(prefix="linewatch-train-") as tmp:
        det = create_detector(params["method"], backbone=params["backbone"], image_size=params["image_size"])
        det.fit(_fetch(ctx, images, Path(tmp)), progress=progress)
        if params.get("test_dataset_id"):
            test_name, test_images = _dataset_images(ctx, params["test_dataset_id"], good_only=False)
            folder = Path(tmp) / "test"
            folder.mkdir()
            paths = _fetch(ctx, test_images, folder)
            masks = _fetch_masks(ctx, test_images, folder)
            if not all(m for m, im in zip(masks, test_images, strict=True) if im.label != "good"):
                masks = [None] * len(masks)  # pixel metrics need every defective image's mask
            samples = [Sample(p, im.label, m) for p, m, im in zip(paths, masks, test_images, strict=True)]
            if not any(x.is_anomalous for x in samples) or all(x.is_anomalous for x in samples):
                raise LinewatchError(f"test dataset {test_name!r} needs both good and defective images to evaluate")
            recorder = _RecordScores(det)
            metrics = evaluate(recorder, ImageSet(folder, "folder", [], samples), progress=progress)
            metrics["test_dataset_id"] = params["test_dataset_id"]
            if len(recorder.scores) == len(samples):
                metrics["test_scores"] = test_scores(samples, recorder.scores)
    final = ctx.settings.models_dir / str(model_id)
    save(det, final, metrics)
    progress("export", 0, 1)
    export_onnx(final)
    cal = det.calibration_
    with ctx.sessions() as s, s.begin():
        mv = s.get(ModelVersion, model_id)
        mv.status, mv.path = "ready", str(final.resolve())
        mv.threshold = cal.image_threshold if cal else None
        mv.metrics = {**(metrics or {}), "training": det.train_info_ | {"skipped": len(det.skipped_)}}
    return {"model_id": model_id, "train_images": det.train_info_["train_images"]}


def remove_model_files(path: str | None) -> None:
    if path:
        shutil.rmtree(path, ignore_errors=True)


EMBED_BATCH = 16


def run_embedding(ctx: AppContext, job_id: int, params: dict, progress) -> dict:
    """Backfill search vectors: score again, with its own model, every stored inspection that has none (stored
    before search existed, or by a model exported before), store the vectors and index them. Inspections whose
    model is gone or cannot give vectors are counted and left."""
    from linewatch.api.searching import vectors_row
    from linewatch.store.tables import Inspection, InspectionVectors, ModelVersion, Station
    from linewatch.vision.images import open_image_bytes

    def todo(session, after: int):
        q = (
            select(Inspection, ModelVersion)
            .join(Station, Station.id == Inspection.station_id)
            .join(ModelVersion, ModelVersion.id == Inspection.model_id)
            .outerjoin(InspectionVectors, InspectionVectors.inspection_id == Inspection.id)
            .where(InspectionVectors.inspection_id.is_(None), Inspection.id > after)
        )
        if params.get("station"):
            q = q.where(Station.name == params["station"])
        return q

    with ctx.sessions() as s:
        total = s.scalar(select(func.count()).select_from(todo(s, 0).subquery())) or 0
    done = embedded = skipped = 0
    after = 0
    progress("embed", 0, total)
    while True:
        with ctx.sessions() as s:
            batch = s.execute(todo(s, after).order_by(Inspection.id).limit(EMBED_BATCH)).all()
        if not batch:
            break
        after = batch[-1][0].id
        rows = []  # (inspection id, its new vectors row)
        for insp, model in batch:
            vec = None
            if model.status == "ready" and model.path:
                try:
                    scorer = ctx.models.get(model.id, model.path)
                    img = open_image_bytes(ctx.blobs.get(insp.image_sha256), f"inspection {insp.id}")
                    vec = vectors_row(model, scorer.predict([img])[0].embeddings)
                except LinewatchError as e:
                    log.warning("inspection %s: no search vectors: %s", insp.id, e)
            if vec is None:
                skipped += 1
                continue
            vec.inspection_id = insp.id
            rows.append(vec)
        if rows:
            with ctx.sessions() as s, s.begin():
                present = set(
                    s.scalars(select(Inspection.id).where(Inspection.id.in_([v.inspection_id for v in rows])))
                )  # one may have been deleted meanwhile
                rows = [v for v in rows if v.inspection_id in present]
                s.add_all(rows)
            if ctx.search is not None and ctx.search.started:  # a queue worker's hub is not: the service indexes
                with ctx.sessions() as s:
                    ctx.search.add(ctx.search.entries(s, [v.inspection_id for v in rows]), new=True)
            embedded += len(rows)
        done += len(batch)
        progress("embed", done, total)
    return {"embedded": embedded, "skipped": skipped}
