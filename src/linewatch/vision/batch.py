"""Scoring an archive: thousands to millions of images (a month of a line re-inspected with a new model, a supplier's
lot), written as JSON lines, one per image, that an interrupted run resumes from. On one machine the model's own
stream scores them (decoding beside scoring); with Ray (``pip install "linewatch[batch]"``) shards of images go to
actors on every node of a cluster, each loading the model once: its files travel through Ray's object store, so the
workers need to read the images (shared storage) but not the model's folder.

Each line: ``path``, ``score``, ``normalized_score``, ``verdict``, ``regions`` (as ``linewatch predict --json``), or
``path`` and ``error`` for an image that could not be read."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from linewatch.errors import LinewatchError

SHARD = 64  # images per task sent to a Ray actor: enough to keep its decode and scoring overlapped


@dataclass
class BatchResult:
    out: str
    scored: int  # images scored by this run
    anomalous: int
    unreadable: int  # images recorded with an error
    already: int  # images the output held from an earlier run, not scored again
    seconds: float
    workers: int
    where: str  # "this machine", or the Ray cluster's address

    def to_dict(self) -> dict:
        return asdict(self)


def done_paths(out: Path) -> set[str]:
    """The images ``out`` already holds a line for. A last line cut short (the run was killed while writing it) is
    removed from the file, so that the run resuming it appends whole lines."""
    done: set[str] = set()
    if not out.exists():
        return done
    good_until = 0
    with open(out, "rb") as f:
        for raw in f:
            try:
                rec = json.loads(raw)
                done.add(str(rec["path"]))
            except (ValueError, KeyError, TypeError):
                if raw.endswith(b"\n"):
                    raise LinewatchError(
                        f"{out} is not a batch output (a line is not a JSON record): name another --out"
                    ) from None
                break  # the cut last line
            good_until += len(raw)
    if good_until < out.stat().st_size:
        with open(out, "r+b") as f:
            f.truncate(good_until)
    return done


def _records(scorer, paths: Sequence[str]) -> list[dict]:
    """One record per path, in order: the prediction, or the reason it could not be read."""
    failed: dict[str, str] = {}
    preds = {}
    for pred in scorer.iter_predict(list(paths), unreadable=lambda name, why: failed.__setitem__(str(name), why)):
        preds[str(pred.path)] = pred.to_dict()
    out = []
    for p in paths:
        if p in preds:
            out.append(preds[p])
        else:
            out.append({"path": p, "error": failed.get(p, "not scored")})
    return out


def _pack(model_dir: Path) -> bytes:
    """The model's folder as one zip in memory, to ship to Ray's workers."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for f in sorted(model_dir.iterdir()):
            if f.is_file():
                z.write(f, f.name)
    return buf.getvalue()


class _Shards:
    """What a Ray actor runs: unpacks the model once into a folder of its own, then scores shards of paths."""

    def __init__(self, packed: bytes, threads: int):
        from linewatch.vision.runtime import OnnxModel

        self.folder = Path(tempfile.mkdtemp(prefix="linewatch-batch-model-"))
        with zipfile.ZipFile(io.BytesIO(packed)) as z:
            z.extractall(self.folder)
        self.model = OnnxModel(self.folder, threads=threads)

    def score(self, paths: list[str]) -> list[dict]:
        return _records(self.model, paths)

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _local(model_dir: Path, todo: list[str], shard: int) -> tuple[Iterator[list[dict]], int]:
    from linewatch.vision.runtime import open_model

    scorer = open_model(model_dir)

    def shards() -> Iterator[list[dict]]:
        for i in range(0, len(todo), shard):
            yield _records(scorer, todo[i : i + shard])

    return shards(), 1


RAY_CLIENT_PORT = 10001  # a ray:// address without a port: the Ray client server's default
CONNECT_TIMEOUT_S = 5.0


def _check_reachable(address: str) -> None:
    """A ``ray://HOST:PORT`` nobody answers at is said at once: Ray's client would retry for about 30 s and print
    its own warnings first."""
    if not address.startswith("ray://"):
        return
    import socket
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(address)
        host, port = parts.hostname, parts.port or RAY_CLIENT_PORT
    except ValueError as e:
        raise LinewatchError(f"{address!r} is not a Ray address ({e}): expected ray://HOST:PORT") from None
    if not host:
        raise LinewatchError(f"{address!r} names no host: expected ray://HOST:PORT")
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as e:
        why = e.strerror or type(e).__name__
        raise LinewatchError(f"no Ray cluster at {address}: cannot connect to {host}:{port} ({why})") from None


def _ray(model_dir: Path, todo: list[str], shard: int, address: str, workers: int | None):
    from linewatch.core.extras import require

    require("batch", "linewatch batch --ray")
    import ray
    from ray.util import ActorPool

    from linewatch.vision.manifest import read_manifest

    if "onnx" not in read_manifest(model_dir).get("files", {}):
        raise LinewatchError(f"{model_dir} has no ONNX export, which Ray's workers score with: run `linewatch export`")
    local = address == "local"
    _check_reachable(address)
    try:
        ray.init(
            address=None if local else address,
            num_cpus=workers if local else None,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
            ignore_reinit_error=True,
        )
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise LinewatchError(f"no Ray cluster at {address}: {' '.join(str(e).split())[:200]}") from None
    cpus = int(ray.cluster_resources().get("CPU", 1))
    n = max(1, min(workers or cpus, cpus, -(-len(todo) // shard) or 1))
    packed = ray.put(_pack(model_dir))
    actor = ray.remote(num_cpus=1)(_Shards)
    actors = [actor.remote(packed, 1) for _ in range(n)]
    pool = ActorPool(actors)
    chunks = [todo[i : i + shard] for i in range(0, len(todo), shard)]

    def shards() -> Iterator[list[dict]]:
        try:
            yield from pool.map_unordered(lambda a, chunk: a.score.remote(chunk), chunks)
        finally:
            for a in actors:  # their model folders removed, then the actors themselves (a cluster outlives us)
                with contextlib.suppress(Exception):  # a worker already gone: its temp folder went with it
                    ray.get(a.close.remote(), timeout=30)
                with contextlib.suppress(Exception):
                    ray.kill(a)
            if local:
                ray.shutdown()

    return shards(), n


def score_archive(
    model_dir: str | Path,
    images: Sequence[str | Path],
    out: str | Path,
    *,
    resume: bool = False,
    ray_address: str | None = None,
    workers: int | None = None,
    shard: int = SHARD,
    progress: Callable[[str, int, int], None] | None = None,
) -> BatchResult:
    """Score ``images`` with the model in ``model_dir`` into the JSON-lines file ``out`` (each image's record is
    written as its shard finishes; ``resume``: images ``out`` holds already are skipped, and the file is appended
    to). ``ray_address``: None scores here; ``"local"`` starts a Ray instance on this machine (``workers`` CPUs);
    ``"auto"`` or ``ray://host:10001`` joins a running cluster, one actor per CPU (at most ``workers``)."""
    model_dir, out = Path(model_dir), Path(out)
    if not (model_dir / "manifest.json").is_file():
        raise LinewatchError(f"{model_dir} is not a model folder (no manifest.json)")
    if out.exists() and not resume:
        raise LinewatchError(f"{out} exists: --resume to go on with it, or name another --out")
    if out.is_dir():
        raise LinewatchError(f"{out} is a folder: name a file for the JSON lines")
    if workers is not None and workers < 1:
        raise LinewatchError(f"workers must be at least 1, not {workers}")
    paths = list(dict.fromkeys(str(p) for p in images))
    done = done_paths(out) if resume else set()
    todo = [p for p in paths if p not in done]
    started = time.perf_counter()
    scored = anomalous = unreadable = 0
    if todo:
        shards, n = (
            _local(model_dir, todo, shard)
            if ray_address is None
            else _ray(model_dir, todo, shard, ray_address, workers)
        )
    else:
        shards, n = iter(()), 0
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "a", encoding="utf-8") as f:
        for records in shards:
            for rec in records:
                f.write(json.dumps(rec) + "\n")
                scored += "error" not in rec
                unreadable += "error" in rec
                anomalous += rec.get("verdict") == "anomalous"
            f.flush()
            os.fsync(f.fileno())  # a shard written is a shard a resumed run need not score again
            if progress is not None:
                progress("score", scored + unreadable, len(todo))
    return BatchResult(
        str(out),
        scored,
        anomalous,
        unreadable,
        len(paths) - len(todo),
        time.perf_counter() - started,
        n,
        "this machine" if ray_address is None else f"Ray ({ray_address})",
    )
