"""Jobs on a queue (LINEWATCH_QUEUE_URL: Redis or RabbitMQ through Dramatiq): a real `linewatch serve` and
`linewatch worker` sharing a data dir; progress reaches WebSocket clients of the service; a worker killed
mid-training leaves its job failed, never running for ever. Each test queue has a name of its own."""

import datetime as dt
import json
import signal
import subprocess
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
from websockets.sync.client import connect

from linewatch.client import Client

ADMIN_PASSWORD = "admin-password-1"
BROKERS = {
    "redis": "redis://127.0.0.1:6379/0",
    "amqp": "amqp://guest:guest@127.0.0.1:5672/%2F",
}
HEARTBEAT_TIMEOUT = 6.0


def _unreachable(kind: str) -> str | None:
    """Why the local broker cannot be used, or None."""
    try:
        if kind == "redis":
            import redis

            redis.Redis.from_url(BROKERS[kind], socket_connect_timeout=2).ping()
        else:
            import logging

            import pika

            logging.getLogger("pika").setLevel(logging.CRITICAL + 1)
            params = pika.URLParameters(BROKERS[kind] + "?connection_attempts=1&socket_timeout=2")
            pika.BlockingConnection(params).close()
    except Exception as e:
        return f"{type(e).__name__}"
    return None


def _remove_queue(kind: str, name: str) -> None:
    try:
        if kind == "redis":
            import redis

            r = redis.Redis.from_url(BROKERS[kind])
            for key in r.scan_iter(f"dramatiq:*{name}*"):
                r.delete(key)
        else:
            import pika

            conn = pika.BlockingConnection(pika.URLParameters(BROKERS[kind]))
            channel = conn.channel()
            for q in (name, f"{name}.DQ", f"{name}.XQ"):
                channel.queue_delete(q)
            conn.close()
    except Exception:
        pass


class Cluster:
    """A `linewatch serve` process and `linewatch worker` processes on one queue and one data dir."""

    def __init__(self, root: Path, env: dict, procs):
        self.root, self.env, self.procs = root, env, procs
        self.data = root / "data"
        procs.create_admin(self.data, ADMIN_PASSWORD, env=env)
        self.server_log = root / "server.log"
        self.url, self.server = procs.serve(self.server_log, env=env, data_dir=self.data, wait_for="/readyz")

    def start_worker(self) -> tuple[subprocess.Popen, Path]:
        log = self.root / f"worker-{len(self.procs.procs)}.log"
        proc = self.procs.start("worker", log=log, env=self.env, data_dir=self.data)
        deadline = time.monotonic() + 60
        while "linewatch worker" not in log.read_text():
            if proc.poll() is not None:
                pytest.fail(f"linewatch worker exited with {proc.returncode}:\n{log.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"linewatch worker did not start:\n{log.read_text()}")
            time.sleep(0.1)
        return proc, log


@pytest.fixture(params=sorted(BROKERS))
def cluster(request, tmp_path, linewatch_processes):
    kind = request.param
    reason = _unreachable(kind)
    if reason:
        pytest.skip(f"{kind} broker not reachable at {BROKERS[kind]} ({reason})")
    name = f"lwtest_{uuid.uuid4().hex[:10]}"
    env = linewatch_processes.env(
        LINEWATCH_QUEUE_URL=BROKERS[kind],
        LINEWATCH_QUEUE_NAME=name,
        LINEWATCH_JOB_HEARTBEAT_TIMEOUT=str(HEARTBEAT_TIMEOUT),
    )
    try:
        with linewatch_processes() as procs:
            yield Cluster(tmp_path, env, procs)
    finally:
        _remove_queue(kind, name)


def _job_events(ws, job_id: int, until: set[str], timeout: float = 120) -> list[dict]:
    """The job's events on the stream up to the first with a status in ``until``."""
    got = []
    deadline = time.monotonic() + timeout
    while not got or got[-1]["status"] not in until:
        msg = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
        assert msg["type"] != "dropped", msg
        if msg["type"] == "job" and msg["job"]["id"] == job_id:
            got.append(msg["job"])
    return got


@contextmanager
def _ws(lw: Client, server: str):
    with connect(server.replace("http://", "ws://") + f"/api/v1/events?token={lw.token}", open_timeout=10) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "hello"
        yield ws


def _dataset(lw: Client, synthetic: Path, n: int) -> int:
    ds = lw.create_dataset("washers")
    up = lw.upload_images(ds["id"], sorted((synthetic / "train" / "good").iterdir())[:n])
    assert up["added"] == n
    return ds["id"]


def test_training_runs_on_a_worker(cluster, synthetic):
    worker, log = cluster.start_worker()
    with Client.login(cluster.url, "admin", ADMIN_PASSWORD) as lw:
        dataset_id = _dataset(lw, synthetic, 24)
        with _ws(lw, cluster.url) as ws:
            # each stage's first report is an event (later ones at most every 0.5 s): a running event with progress
            # between 0 and 1 comes from the second stage on, whatever the size
            job = lw.train(dataset_id, image_size=128)
            assert job["status"] == "queued"
            events = _job_events(ws, job["id"], {"succeeded", "failed", "cancelled"})
        done = lw.wait_for_job(job["id"], timeout=300, poll=0.2)
        assert done["status"] == "succeeded" and done["progress"] == 1.0, done
        statuses = [e["status"] for e in events]
        assert statuses[-1] == "succeeded" and "running" in statuses, events
        progress = [e["progress"] for e in events]
        assert progress == sorted(progress) and any(0 < p < 1 for p in progress), events

        # the model the worker wrote under the shared data dir scores on the service
        model_id = done["result"]["model_id"]
        assert {m["id"]: m for m in lw.models()}[model_id]["status"] == "ready"
        lw.create_station("cam1")
        lw.activate(model_id, "cam1")
        spot, fine = synthetic / "test" / "spot" / "000.png", synthetic / "test" / "good" / "000.png"
        results = lw.inspect("cam1", spot, fine)
        assert results[0]["score"] > results[1]["score"]

    worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0, log.read_text()
    assert "Traceback" not in log.read_text()


def test_killed_worker_leaves_its_job_failed(cluster, synthetic):
    worker, _ = cluster.start_worker()
    with Client.login(cluster.url, "admin", ADMIN_PASSWORD) as lw:
        dataset_id = _dataset(lw, synthetic, 24)
        with _ws(lw, cluster.url) as ws:
            job = lw.train(dataset_id, image_size=64)
            deadline = time.monotonic() + 60
            while lw.job(job["id"])["status"] == "queued":
                assert time.monotonic() < deadline, "the worker did not take the job"
                time.sleep(0.05)
            worker.kill()  # SIGKILL: no chance to clean up
            worker.wait()
            assert lw.job(job["id"])["status"] == "running"
            started = time.monotonic()
            events = _job_events(ws, job["id"], {"succeeded", "failed", "cancelled"}, timeout=30)
        lost = lw.job(job["id"])
        assert lost["status"] == "failed" and lost["error"] == "the worker stopped while this job ran", lost
        assert events[-1]["status"] == "failed"
        assert time.monotonic() - started < HEARTBEAT_TIMEOUT + 10
        model = next(m for m in lw.models() if m["status"] != "ready")
        assert model["status"] == "failed"

        # a new worker: the lost job's message, if delivered again, is skipped; new jobs run
        cluster.start_worker()
        again = lw.train(dataset_id, image_size=64)
        assert lw.wait_for_job(again["id"], timeout=120, poll=0.2)["status"] == "succeeded"
        assert lw.job(job["id"])["status"] == "failed"


@pytest.mark.parametrize("cluster", ["redis"], indirect=True)
def test_stopped_worker_fails_its_job_and_exits(cluster, synthetic):
    """SIGTERM mid-training: the job ends failed at once (no heartbeat wait) and the worker exits 0."""
    worker, log = cluster.start_worker()
    with Client.login(cluster.url, "admin", ADMIN_PASSWORD) as lw:
        job = lw.train(_dataset(lw, synthetic, 24), image_size=64)
        deadline = time.monotonic() + 60
        while lw.job(job["id"])["status"] == "queued":
            assert time.monotonic() < deadline, "the worker did not take the job"
            time.sleep(0.05)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(60) == 0, log.read_text()
        stopped = lw.job(job["id"])
        assert stopped["status"] == "failed" and stopped["error"] == "the worker stopped while this job ran"
    assert "Traceback" not in log.read_text()


@pytest.mark.parametrize("url", ["redis://127.0.0.1:1/0", "amqp://guest:secret@127.0.0.1:1/%2F"])
def test_worker_with_unreachable_broker(url, tmp_path, linewatch_processes):
    env = linewatch_processes.env(LINEWATCH_QUEUE_URL=url)
    run = linewatch_processes.cli("worker", "--data-dir", str(tmp_path / "data"), env=env, timeout=60)
    assert run.returncode == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach the job queue" in lines[0], run.stderr
    assert "Traceback" not in run.stderr and "secret" not in run.stderr


def test_worker_without_a_queue(tmp_path, linewatch_processes):
    run = linewatch_processes.cli("worker", "--data-dir", str(tmp_path / "data"))
    assert run.returncode == 2
    assert "LINEWATCH_QUEUE_URL" in run.stderr and len(run.stderr.strip().splitlines()) == 1


# the parts, without a broker


@pytest.fixture
def ctx(tmp_path):
    from linewatch.api.app import build_context
    from linewatch.config import Settings

    c = build_context(Settings(data_dir=tmp_path / "data", job_heartbeat_timeout=HEARTBEAT_TIMEOUT))
    yield c
    c.engine.dispose()


def _job(ctx, status: str, heartbeat_age: float | None = None, kind: str = "train", **values) -> int:
    """A job of ``kind`` and the model version it makes: "training", or "calibrating" for a recalibration."""
    from linewatch.store.tables import Dataset, Job, ModelVersion, now

    making = "calibrating" if kind == "calibrate" else "training"
    with ctx.sessions() as s, s.begin():
        ds = Dataset(name="d")
        s.add(ds)
        beat = None if heartbeat_age is None else now() - dt.timedelta(seconds=heartbeat_age)
        job = Job(kind=kind, params={"dataset_id": 1}, status=status, message=status, heartbeat_at=beat, **values)
        s.add(job)
        s.flush()
        s.add(
            ModelVersion(
                name="m",
                method="patchcore",
                backbone="b",
                image_size=64,
                dataset_id=ds.id,
                job_id=job.id,
                status=making,
            )
        )
        return job.id


def _state(ctx, job_id: int) -> tuple[str, str, str | None]:
    from linewatch.store.tables import Job, ModelVersion

    with ctx.sessions() as s:
        job = s.get(Job, job_id)
        model = s.query(ModelVersion).filter_by(job_id=job_id).one()
        return job.status, model.status, job.error


def test_sweeper_fails_only_jobs_without_a_recent_heartbeat(ctx):
    from linewatch.services.jobs import fail_lost_jobs

    lost = _job(ctx, "running", heartbeat_age=60)
    alive = _job(ctx, "running", heartbeat_age=0.5)
    queued = _job(ctx, "queued")
    assert fail_lost_jobs(ctx, HEARTBEAT_TIMEOUT) == [lost]
    assert _state(ctx, lost) == ("failed", "failed", "the worker stopped while this job ran")
    assert _state(ctx, alive) == ("running", "training", None)
    assert _state(ctx, queued) == ("queued", "training", None)
    assert fail_lost_jobs(ctx, HEARTBEAT_TIMEOUT) == []


def test_a_lost_recalibration_fails_the_version_it_was_making(ctx):
    from linewatch.services.jobs import fail_lost_jobs

    lost = _job(ctx, "running", heartbeat_age=60, kind="calibrate")
    alive = _job(ctx, "running", heartbeat_age=0.5, kind="calibrate")
    assert fail_lost_jobs(ctx, HEARTBEAT_TIMEOUT) == [lost]
    assert _state(ctx, lost)[:2] == ("failed", "failed")
    assert _state(ctx, alive)[:2] == ("running", "calibrating")


def test_a_job_runs_once(ctx):
    """A message delivered again, or for a job cancelled while queued, does not run it."""
    from linewatch.services.jobs import JobRunner

    runner = JobRunner(ctx)
    for status in ("running", "failed", "succeeded", "cancelled"):
        job_id = _job(ctx, status)
        assert runner.run(job_id) is None
        assert _state(ctx, job_id)[0] == status
    assert runner.run(10_000) is None
    cancelled = _job(ctx, "queued", cancel_requested=True)
    assert runner.run(cancelled) is None
    assert _state(ctx, cancelled)[:2] == ("cancelled", "failed")
    assert runner.run(cancelled) is None


def test_sweeper_tells_subscribers_of_the_jobs_it_fails(ctx):
    from linewatch.core.events import JobChanged
    from linewatch.services.jobs import fail_lost_jobs

    seen = []
    ctx.bus.subscribe(seen.append, JobChanged)
    lost = _job(ctx, "running", heartbeat_age=60)
    _job(ctx, "running", heartbeat_age=0.5)
    fail_lost_jobs(ctx, HEARTBEAT_TIMEOUT)
    assert [(e.job["id"], e.job["status"]) for e in seen] == [(lost, "failed")]


def count_to(ctx, job_id: int, params: dict, progress) -> dict:
    """A job kind of this test: counts, reporting each step of two stages."""
    for stage in ("first", "second"):
        for i in range(params["n"]):
            progress(stage, i + 1, params["n"])
    return {"counted": params["n"]}


def test_an_engine_plugs_its_job_kind_into_the_runner(ctx):
    from linewatch.core.events import JobChanged
    from linewatch.services.jobs import JOB_KINDS, JobKind, JobRunner
    from linewatch.store.tables import Job

    if "test-count" not in JOB_KINDS:
        JOB_KINDS.add(JobKind("test-count", f"{__name__}:count_to", {"first": (0.0, 0.3), "second": (0.3, 1.0)}))
    seen = []
    ctx.bus.subscribe(lambda e: seen.append(dict(e.job)), JobChanged)
    with ctx.sessions() as s, s.begin():
        job = Job(kind="test-count", params={"n": 3}, status="queued", message="queued")
        unknown = Job(kind="simulate-nothing", params={}, status="queued", message="queued")
        s.add_all([job, unknown])
    runner = JobRunner(ctx)
    assert runner.run(job.id) == "succeeded"
    with ctx.sessions() as s:
        done = s.get(Job, job.id)
        assert done.result == {"counted": 3} and done.progress == 1.0
    progress = [e["progress"] for e in seen if e["id"] == job.id]
    assert progress == sorted(progress) and progress[-1] == 1.0
    assert runner.run(unknown.id) == "failed"
    with ctx.sessions() as s:
        assert "unknown job kind 'simulate-nothing'" in s.get(Job, unknown.id).error
