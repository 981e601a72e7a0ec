"""Background jobs (training, search backfill; the engines add theirs in ``JOB_KINDS``). One code path runs a
job, ``JobRunner.run``: on embedded defaults a thread of the service calls it; with ``LINEWATCH_QUEUE_URL`` the
``linewatch worker`` processes do (see ``jobqueue.py``).

A job's state lives in the database: queued -> running -> succeeded | failed | cancelled, with progress
0..1 and a message. Progress is pushed to WebSocket clients. A running job's heartbeat is refreshed on each
progress report and every few seconds by a small thread; a job whose heartbeat is older than
``job_heartbeat_timeout`` has lost its worker and is marked failed by the sweeper (``fail_lost_jobs``). The
in-process runner, the only one running jobs, marks every job left "running" failed when it starts, and
picks queued ones up again."""

from __future__ import annotations

import datetime as dt
import importlib
import logging
import os
import queue
import socket
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import func, select, update

from linewatch.config import Settings
from linewatch.core.events import JobChanged
from linewatch.errors import LinewatchError
from linewatch.services.context import AppContext
from linewatch.services.errors import Conflict, NotFound
from linewatch.store.tables import Job, MachineModel, ModelVersion, Schedule, now

log = logging.getLogger("linewatch.jobs")
WORKER_LOST = "the worker stopped while this job ran"


class Cancelled(Exception):
    pass


class Stopping(Exception):
    """The runner is stopping (the worker got SIGTERM): the job ends failed."""


class Abandoned(Exception):
    """The job is no longer running under this runner (the sweeper gave it up): stop without writing."""


@dataclass(frozen=True)
class JobKind:
    """A kind of background job an engine provides: ``target`` ("module:function") is called as
    ``function(ctx, job_id, params, progress) -> result dict`` and reports ``progress(stage, done, total)``;
    ``stages`` maps each stage to its share of the job's one progress figure (0..1, in order), which never goes
    back; ``names`` says what a person reads for each stage."""

    name: str
    target: str
    stages: dict[str, tuple[float, float]] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)

    def load(self) -> Callable:
        module, _, attr = self.target.partition(":")
        return getattr(importlib.import_module(module), attr)


class JobKinds:
    def __init__(self):
        self._kinds: dict[str, JobKind] = {}

    def add(self, kind: JobKind) -> JobKind:
        if kind.name in self._kinds:
            raise ValueError(f"job kind {kind.name!r} is registered twice")
        self._kinds[kind.name] = kind
        return kind

    def __getitem__(self, name: str) -> JobKind:
        if name not in self._kinds:
            raise LinewatchError(f"unknown job kind {name!r}: this linewatch runs {', '.join(self._kinds)}")
        return self._kinds[name]

    def __contains__(self, name: object) -> bool:
        return name in self._kinds

    def names(self) -> list[str]:
        return list(self._kinds)


#: every job kind the runner can run. An engine adds its kinds here, one line each, pointing at its own module.
JOB_KINDS = JobKinds()
JOB_KINDS.add(
    JobKind(
        "train",
        "linewatch.services.training:run_training",
        {
            "features": (0.0, 0.6),
            "coreset": (0.6, 0.85),
            "calibrate": (0.85, 0.87),
            "self-check": (0.87, 0.9),
            "score": (0.9, 0.95),  # evaluation on a test dataset
            "export": (0.95, 1.0),
        },
        {
            "features": "extracting features",
            "coreset": "selecting the memory bank",
            "calibrate": "calibrating the threshold",
            "self-check": "checking the model on defects painted on held-out good images",
            "score": "scoring the test set",
            "export": "exporting the model",
        },
    )
)
JOB_KINDS.add(
    JobKind(
        "calibrate",
        "linewatch.services.calibrating:run_calibration",
        {"score": (0.0, 1.0)},
        {"score": "scoring the good images"},
    )
)
JOB_KINDS.add(
    JobKind(
        "import",
        "linewatch.services.registry:run_import",
        {"download": (0.0, 0.4), "check": (0.4, 0.6), "export": (0.6, 1.0)},
        {
            "download": "downloading from the model registry",
            "check": "checking the model",
            "export": "exporting the model",
        },
    )
)
JOB_KINDS.add(
    JobKind(
        "embed",
        "linewatch.services.embedding:run_embedding",
        {"embed": (0.0, 1.0)},
        {"embed": "computing search vectors"},
    )
)
JOB_KINDS.add(
    JobKind(
        "sensor_train",
        "linewatch.services.machine_models:run_sensor_training",
        {"read": (0.0, 0.1), "warm": (0.1, 0.95), "save": (0.95, 1.0)},
        {"read": "reading the training readings", "warm": "learning the sensors' normal behaviour", "save": "saving"},
    )
)

JOB_KINDS.add(
    JobKind(
        "maintenance_train",
        "linewatch.services.maintenance:run_training",
        {"read": (0.0, 0.05), "fit": (0.05, 1.0)},
        {"read": "reading the history", "fit": "training"},
    )
)
JOB_KINDS.add(
    JobKind(
        "schedule_solve",
        "linewatch.services.schedules:run_solve",
        {"solve": (0.0, 1.0)},
        {"solve": "solving (ms of the time limit)"},
    )
)
JOB_KINDS.add(
    JobKind(
        "schedule_replan",
        "linewatch.services.schedules:run_replan",
        {"solve": (0.0, 1.0)},
        {"solve": "replanning"},
    )
)

JOB_KINDS.add(
    JobKind(
        "twin_simulate",
        "linewatch.services.twin:run_simulation",
        {"simulate": (0.0, 1.0)},
        {"simulate": "simulating (replications)"},
    )
)


def fail_job_outputs(ctx: AppContext, job_id: int) -> None:
    """What a job that did not succeed leaves behind is marked failed (a model version still "training")."""
    with ctx.sessions() as s, s.begin():
        _fail_outputs(s, job_id)


def _fail_outputs(s, job_id: int) -> None:
    """Inside the caller's transaction: the job's outputs still being made (a model version training or calibrating, a
    machine model training, a schedule solving), failed."""
    for table, running in (
        (ModelVersion, "training"),
        (ModelVersion, "calibrating"),
        (ModelVersion, "importing"),
        (MachineModel, "training"),
        (Schedule, "solving"),
    ):
        s.execute(update(table).where(table.job_id == job_id, table.status == running).values(status="failed"))


def heartbeat_interval(settings: Settings) -> float:
    """How often a running job's heartbeat is refreshed, and the sweeper looks: well within the timeout."""
    return min(10.0, max(0.5, settings.job_heartbeat_timeout / 4))


def job_event(job: Job) -> JobChanged:
    """The event of a job's change (WebSocket clients receive its ``job``)."""
    return JobChanged(
        job={"id": job.id, "kind": job.kind, "status": job.status, "progress": job.progress, "message": job.message}
    )


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
                _fail_outputs(s, job_id)
                failed.append(job_id)
    if failed:
        log.warning("marked failed, %s: job %s", error, ", ".join(map(str, failed)))
        with ctx.sessions() as s:
            events = [job_event(job) for job in s.scalars(select(Job).where(Job.id.in_(failed))).all()]
        for event in events:
            ctx.bus.publish(event)
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

    def _set(self, job_id: int, **values) -> JobChanged:
        with self.ctx.sessions() as s, s.begin():
            job = s.get(Job, job_id)
            for k, v in values.items():
                setattr(job, k, v)
            event = job_event(job)
        self.ctx.bus.publish(event)
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
                _fail_outputs(s, job_id)
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
        self.ctx.bus.publish(event)
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
            job_kind = JOB_KINDS[kind]
            result = job_kind.load()(self.ctx, job_id, params, self._progress(job_id, job_kind))
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
                fail_job_outputs(self.ctx, job_id)
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

    def _progress(self, job_id: int, kind: JobKind):
        last = {"t": 0.0, "stage": None, "value": 0.0}

        def report(stage: str, done: int, total: int) -> None:
            if self._stop.is_set():
                raise Stopping()
            # a part's stage ("features (patchcore)", from a detector fitting parts) is its stage's span and name
            base, _, part = stage.partition(" (")
            lo, hi = kind.stages.get(base, (0.0, 1.0))
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
            message = f"{kind.names.get(base, base)}{' (' + part if part else ''} {done}/{total}"
            self._set(job_id, progress=round(value, 4), message=message, heartbeat_at=now())

        return report


# -- jobs as resources --------------------------------------------------------------------------------------------
def active_twin(session, kind: str, params: dict) -> Job | None:
    """A job of ``kind`` with the same ``params`` still queued or running: starting another would only make the same
    output twice (the caller refuses it)."""
    active = session.scalars(
        select(Job).where(Job.kind == kind, Job.status.in_(("queued", "running"))).order_by(Job.id)
    ).all()
    return next((j for j in active if j.params == params), None)


def list_jobs(session, limit: int, active: bool) -> list[Job]:
    """Newest first; ``active``: only those queued or running."""
    q = select(Job).order_by(Job.id.desc()).limit(limit)
    if active:
        q = q.where(Job.status.in_(("queued", "running")))
    return list(session.scalars(q).all())


def get_job(session, job_id: int) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"no job {job_id}")
    return job


def cancel_job(session, job_id: int) -> Job:
    """Ask a queued or running job to stop (it ends "cancelled" at its next progress report)."""
    with session.begin():
        job = get_job(session, job_id)
        if job.status not in ("queued", "running"):
            raise Conflict(f"job {job_id} is already {job.status}")
        job.cancel_requested = True
        job.message = "cancelling"
    return job
