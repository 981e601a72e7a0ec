"""Jobs on a message queue: Dramatiq on Redis or RabbitMQ (``LINEWATCH_QUEUE_URL``).

The service sends one message per job (actor ``linewatch_run_job``, queue ``queue_name``); ``linewatch worker``
processes take them and run the job with the same code as the in-process runner, ``JobRunner.run``, against
the same database, blob store and models directory (shared storage, mounted at the same path everywhere).

- No automatic retries: a failed job stays failed. A message delivered again (its worker died before
  acknowledging it) finds its job no longer queued and is skipped.
- A worker refreshes the heartbeat of the job it runs; the service, and each worker, mark failed the running
  jobs whose heartbeat is older than ``job_heartbeat_timeout`` (a worker killed mid-training).
- Jobs change in other processes: a worker publishes each change on the event bus, which carries it over the
  same broker (``linewatch.core.transports``) to the service, whose WebSocket clients see it. No polling.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import func, select, update

from linewatch.config import Settings
from linewatch.errors import LinewatchError
from linewatch.services.context import AppContext
from linewatch.services.jobs import JobRunner, fail_lost_jobs, heartbeat_interval
from linewatch.store.tables import Job, ModelVersion, now

log = logging.getLogger("linewatch.queue")
ACTOR_NAME = "linewatch_run_job"
TIME_LIMIT_MS = 7 * 24 * 3600 * 1000  # Dramatiq's default (10 minutes) is shorter than a training
UNFINISHED = ("queued", "running")


class QueueUnavailable(LinewatchError):
    """The job queue (Redis or RabbitMQ) cannot be reached."""


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _reason(e: BaseException) -> str:
    name = type(e).__name__
    text = " ".join((str(e) or repr(e)).split())
    return (text if text.startswith(name) else f"{name}: {text}" if text else name)[:300]


def make_broker(settings: Settings):
    """The Dramatiq broker of ``queue_url``; nothing is connected yet."""
    url = settings.queue_url
    if not url:
        raise LinewatchError("no job queue: set LINEWATCH_QUEUE_URL")
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("redis", "rediss"):
        import redis
        from dramatiq.brokers.redis import RedisBroker

        pool = redis.ConnectionPool.from_url(url, socket_connect_timeout=5, socket_keepalive=True)
        return RedisBroker(connection_pool=pool)
    if scheme in ("amqp", "amqps"):
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        return RabbitmqBroker(url=url)
    raise LinewatchError(f"unsupported job queue URL {redact(url)}: use redis:// or amqp://")


def ping_broker(broker, url: str, timeout: float | None = None) -> None:
    """Raise QueueUnavailable, one line, when the broker does not answer. With ``timeout`` (seconds), connecting
    and each reply are bounded by it, on a connection of its own (closed again): a hung broker cannot hold the
    caller longer than a few timeouts."""
    pika_log = logging.getLogger("pika")
    level = pika_log.level
    try:
        if hasattr(broker, "client"):  # Redis
            if timeout is None:
                broker.client.ping()
            else:
                import redis

                client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
                try:
                    client.ping()
                finally:
                    client.close()
        else:
            import pika

            pika_log.setLevel(logging.CRITICAL + 1)  # pika logs each failed step, with tracebacks
            params = broker.parameters if isinstance(broker.parameters, list) else [broker.parameters]
            if timeout is not None:
                params = [copy.copy(p) for p in params]
                for p in params:
                    p.connection_attempts = 1
                    p.socket_timeout = p.stack_timeout = p.blocked_connection_timeout = timeout
            pika.BlockingConnection(params).close()
    except Exception as e:
        raise QueueUnavailable(f"cannot reach the job queue at {redact(url)}: {_reason(e)}") from None
    finally:
        pika_log.setLevel(level)


def declare_actor(broker, settings: Settings, fn: Callable[[int], object]):
    """The one actor: ``fn(job_id)``, no retries, no practical time limit."""
    import dramatiq

    return dramatiq.actor(
        fn,
        broker=broker,
        actor_name=ACTOR_NAME,
        queue_name=settings.queue_name,
        max_retries=0,
        time_limit=TIME_LIMIT_MS,
    )


def _not_here(job_id: int) -> None:  # the service only sends; workers run the jobs
    raise RuntimeError("jobs run on linewatch worker processes")


class QueueJobs:
    """The service's side of a job queue (``ctx.jobs``): ``submit`` sends a message; a thread marks failed the
    jobs of workers that died and keeps the queue's gauges (job changes themselves arrive on the event bus)."""

    def __init__(self, ctx: AppContext):
        self.ctx = ctx
        self.url = ctx.settings.queue_url or ""
        self.broker = make_broker(ctx.settings)
        self.actor = declare_actor(self.broker, ctx.settings, _not_here)
        self.sweep_interval = heartbeat_interval(ctx.settings)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None  # /readyz checks it is alive

    def start(self) -> None:
        try:
            ping_broker(self.broker, self.url)
            self._resend_queued()
        except Exception as e:
            log.warning("%s; training jobs wait until it is back", e)
        self._thread = threading.Thread(target=self._loop, name="linewatch-job-sweeper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        with contextlib.suppress(Exception):
            self.broker.close()

    def _resend_queued(self) -> None:
        """Queued jobs get their message again (a broker that lost its messages must not strand them); a
        duplicate is harmless: the second delivery finds the job no longer queued."""
        with self.ctx.sessions() as s:
            waiting = s.scalars(select(Job.id).where(Job.status == "queued").order_by(Job.id)).all()
        for job_id in waiting:
            self.actor.send(job_id)

    def submit(self, job_id: int) -> None:
        try:
            self.actor.send(job_id)
        except Exception as e:
            reason = f"cannot reach the job queue at {redact(self.url)}: {_reason(e)}"
            log.error("job %s not queued: %s", job_id, reason)
            with self.ctx.sessions() as s, s.begin():
                s.execute(
                    update(Job)
                    .where(Job.id == job_id, Job.status == "queued")
                    .values(status="failed", message="failed", error=reason, finished_at=now())
                )
                s.execute(
                    update(ModelVersion)
                    .where(ModelVersion.job_id == job_id, ModelVersion.status == "training")
                    .values(status="failed")
                )
            raise QueueUnavailable(f"job {job_id} not started: {reason}; try again") from None

    def _loop(self) -> None:
        while not self._stop.wait(self.sweep_interval):
            try:
                fail_lost_jobs(self.ctx, self.ctx.settings.job_heartbeat_timeout)
                self._gauges()
            except Exception as e:  # the database may be back next time
                log.warning("job sweeper: %s", _reason(e))

    def _gauges(self) -> None:
        with self.ctx.sessions() as s:
            counts = dict(
                s.execute(select(Job.status, func.count()).where(Job.status.in_(UNFINISHED)).group_by(Job.status))
                .tuples()
                .all()
            )
        self.ctx.metrics.queue_depth.set(counts.get("queued", 0))
        self.ctx.metrics.jobs_running.set(counts.get("running", 0))


def run_worker(settings: Settings, threads: int = 1, announce: Callable[[str], None] = print) -> None:
    """``linewatch worker``: take job messages until SIGINT or SIGTERM. A job running then ends failed."""
    from dramatiq import Worker

    from linewatch.services.context import build_context, start_bus

    broker = make_broker(settings)
    ping_broker(broker, settings.queue_url)
    ctx = build_context(settings)
    start_bus(ctx)  # job changes reach the service (and every other process) over the broker
    runner = JobRunner(ctx, name=f"{socket.gethostname()}:{os.getpid()}")
    timeout = settings.job_heartbeat_timeout
    fail_lost_jobs(ctx, timeout)

    def run_job(job_id: int) -> None:
        runner.run(job_id)

    declare_actor(broker, settings, run_job)
    worker = Worker(broker, queues={settings.queue_name}, worker_threads=threads)
    worker.queue_prefetch = threads  # hold no message back while a long job runs: another worker may be idle

    stop = threading.Event()

    def on_signal(signum, _frame) -> None:
        if stop.is_set():  # a second signal: leave now
            os._exit(130)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    worker.start()
    announce(
        f"linewatch worker {runner.name}: {threads} job(s) at a time from queue {settings.queue_name!r} "
        f"on {redact(settings.queue_url)} (models in {settings.models_dir.resolve()})"
    )
    try:
        while not stop.wait(heartbeat_interval(settings)):
            try:
                fail_lost_jobs(ctx, timeout)
            except Exception as e:
                log.warning("sweeping lost jobs: %s", _reason(e))
        announce("stopping: a job running now ends failed")
        runner.stop()
        worker.stop(timeout=30_000)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        try:
            broker.close()
        finally:
            ctx.bus.close()
            ctx.engine.dispose()
