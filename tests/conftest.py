import contextlib
import functools
import logging
import os
import random
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
BOTTLE = SHARED_DATA / "mvtec_ad" / "bottle"

os.environ.setdefault("LINEWATCH_DEBUG", "")
# OpenMP threads that wait for work sleep instead of spinning, as linewatch's import sets it, but before any test
# module imports torch (some do before linewatch; processes the tests start inherit it): pytest-xdist runs a test
# process per core, each with a torch thread per core, and threads spinning on a core another process needs made
# torch-heavy files several times slower (tests/vision/test_combined.py beside two other vision files on 2 cores:
# 177 s spinning, 29 s passive)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# Rich fixes a console's width from COLUMNS when it is created (at linewatch's import), and a pytest-xdist worker may
# start with COLUMNS=80: every test process gets the same wide consoles, whichever test imports linewatch first
os.environ["COLUMNS"] = "200"


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory) -> Path:
    """A small MVTec-layout category from the project's own generator."""
    from linewatch.vision.synthetic import make_dataset

    return make_dataset(tmp_path_factory.mktemp("data") / "washer", n_train=24, n_test_good=6, n_test_defect=4)


@pytest.fixture(scope="session")
def trained(synthetic, tmp_path_factory):
    """A PatchCore trained on the synthetic set at 128 px, saved to a model directory."""
    from linewatch.vision.datasets import load_dataset
    from linewatch.vision.patchcore import PatchCore
    from linewatch.vision.saving import save

    ds = load_dataset(synthetic)
    det = PatchCore(image_size=128).fit(ds.train)
    path = save(det, tmp_path_factory.mktemp("models") / "patchcore")
    return det, path


@pytest.fixture
def cli_here():
    """``cli_here(*args)`` runs a linewatch command in this process (typer's test runner; the result has
    ``exit_code``, ``stdout``, ``stderr``): no interpreter start and torch import per command, and an exception that
    escaped a command's own handling is exit 1, never the users' exit 2. The main story (train, evaluate, predict,
    export in tests/test_cli.py), `serve`, and the deployment and worker tests keep real processes."""
    from typer.testing import CliRunner

    from linewatch.cli import app

    runner = CliRunner()
    return lambda *args: runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def bottle() -> Path:
    """Real MVTec AD bottle images from ../shared/data, or a skip saying they are absent."""
    if not (BOTTLE / "train" / "good").is_dir():
        pytest.skip(f"real MVTec AD bottle data not found at {BOTTLE}")
    return BOTTLE


# --- the real parts the API and store tests run against: shared by tests/api and tests/store as fixtures (no test
# module imports another; several test folders are on sys.path, so a `from conftest import ...` is ambiguous) ---

PG_HOST, PG_PORT = "127.0.0.1", 5432
PG_ADMIN_URL = f"postgresql+psycopg://postgres@{PG_HOST}:{PG_PORT}/postgres"


class Postgres:
    """Fresh databases on the local PostgreSQL server."""

    host, port = PG_HOST, PG_PORT

    @staticmethod
    def create(prefix: str = "lw_test") -> str:
        """A new empty database (its name), or a skip saying why there is none."""
        import sqlalchemy as sa

        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        try:
            eng = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
            with eng.connect() as c:
                c.execute(sa.text(f'CREATE DATABASE "{name}"'))
            eng.dispose()
        except Exception as e:
            pytest.skip(f"PostgreSQL not reachable at {PG_HOST}:{PG_PORT} ({type(e).__name__})")
        return name

    @staticmethod
    @functools.cache
    def available() -> bool:
        """Whether the server answers (checked once per process): for a test that changes its plan when it does."""
        import sqlalchemy as sa

        try:
            eng = sa.create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 3})
            with eng.connect():
                pass
            eng.dispose()
        except Exception:
            return False
        return True

    @staticmethod
    def url(name: str, port: int = PG_PORT) -> str:
        """The SQLAlchemy URL of database ``name``, through ``port`` (a proxy's) when given."""
        return f"postgresql+psycopg://postgres@{PG_HOST}:{port}/{name}"

    @staticmethod
    def drop(name: str) -> None:
        import sqlalchemy as sa

        eng = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with eng.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        eng.dispose()

    @classmethod
    @contextlib.contextmanager
    def database(cls, prefix: str = "lw_test") -> Iterator[str]:
        """The URL of a new database, dropped when the block ends."""
        name = cls.create(prefix)
        try:
            yield cls.url(name)
        finally:
            cls.drop(name)


@pytest.fixture(scope="session")
def postgres() -> type[Postgres]:
    """Makes and drops PostgreSQL databases: ``postgres.database(prefix)`` (a context manager yielding a URL), or
    ``postgres.create(prefix)`` / ``postgres.url(name)`` / ``postgres.drop(name)``. Skips when none runs."""
    return Postgres


class MotoS3:
    """A moto S3 server on 127.0.0.1."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.endpoint = f"http://{host}:{port}"

    def client(self):
        """A boto3 S3 client talking to the server directly."""
        import boto3

        session = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
        )
        return session.client("s3", endpoint_url=self.endpoint)


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[MotoS3]:
    """One moto S3 server for the session (no buckets: each user makes its own), or a skip."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        pytest.skip(f"moto server not installed ({exc}); pip install 'moto[server]'")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per S3 request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    try:
        server.start()
        host, port = server.get_host_and_port()
    except Exception as exc:
        pytest.skip(f"moto S3 server could not start: {exc}")
    yield MotoS3(host, port)
    server.stop()


class Processes:
    """`linewatch` subprocesses (``serve``, ``worker``), all stopped when the ``with`` block ends."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    @staticmethod
    def free_port() -> int:
        """A localhost port nothing listens on (now), below the kernel's range for outgoing connections: a port the
        kernel hands out (bind to 0) can be taken by another test's connection to a database or broker before the
        server binds it."""
        low = 32768
        with contextlib.suppress(OSError, ValueError):
            low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
        rng = random.Random()  # not the tests' seeded generator: two pytest-xdist workers must not draw alike
        for _ in range(200):
            port = rng.randrange(max(1024, low - 12000), low)
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    @staticmethod
    def env(**settings: str) -> dict:
        """The environment without LINEWATCH_* settings from outside (a database URL, an API key), plus ``settings``."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("LINEWATCH_")}
        env["COLUMNS"] = "200"
        env.update(settings)
        return env

    @classmethod
    def cli(cls, *args: str, stdin: str | None = None, env: dict | None = None, timeout: float = 120):
        """``linewatch ARGS`` run to its end: the CompletedProcess (text)."""
        return subprocess.run(
            [sys.executable, "-m", "linewatch.cli", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env or cls.env(),
            timeout=timeout,
        )

    @classmethod
    def create_admin(cls, data_dir: Path, password: str, env: dict | None = None) -> None:
        """``linewatch users create admin --role admin`` on ``data_dir``."""
        made = cls.cli(
            "users", "create", "admin", "--role", "admin", "--password-stdin", "--data-dir", str(data_dir),
            stdin=password + "\n", env=env,
        )  # fmt: skip
        assert made.returncode == 0, made.stderr

    def start(self, *args: str, log: Path, env: dict | None = None, data_dir: Path | None = None) -> subprocess.Popen:
        """``linewatch ARGS [--data-dir DATA_DIR]`` in the background, its output to ``log``."""
        cmd = [sys.executable, "-m", "linewatch.cli", *args]
        if data_dir is not None:
            cmd += ["--data-dir", str(data_dir)]
        with open(log, "wb") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env or self.env())
        self.procs.append(proc)
        return proc

    def serve(
        self, log: Path, env: dict | None = None, data_dir: Path | None = None, wait_for: str = "/healthz"
    ) -> tuple[str, subprocess.Popen]:
        """``linewatch serve`` on a free port once ``wait_for`` answers 200: (its base URL, the process)."""
        import httpx

        for attempt in range(3):
            port = self.free_port()
            url = f"http://127.0.0.1:{port}"
            proc = self.start("serve", "--host", "127.0.0.1", "--port", str(port), log=log, env=env, data_dir=data_dir)
            deadline = time.monotonic() + 60
            while True:
                if proc.poll() is not None:
                    break
                try:
                    if httpx.get(f"{url}{wait_for}", timeout=1).status_code == 200:
                        return url, proc
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"linewatch serve did not answer {wait_for}:\n{log.read_text()}")
                time.sleep(0.1)
            output = log.read_text()
            if "address already in use" not in output or attempt == 2:  # another process took the port first: anew
                pytest.fail(f"linewatch serve exited with {proc.returncode}:\n{output}")
        raise AssertionError("unreachable")

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def __enter__(self) -> "Processes":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@pytest.fixture(scope="session")
def linewatch_processes() -> type[Processes]:
    """Runs the `linewatch` command: ``with linewatch_processes() as procs: url, _ = procs.serve(log, ...)`` (all
    stopped when the block ends); ``linewatch_processes.cli(*args)`` runs one to its end, ``.env(**settings)`` is
    a clean environment, ``.create_admin(data_dir, password)`` makes the admin user, ``.free_port()``."""
    return Processes


def _part_shot(seed: int = 0, noise: float = 3.0, size: int = 200) -> Image.Image:
    """Another part of one product in the same place: new sensor noise, light 1% brighter or darker, the part
    a fraction of a pixel elsewhere (one pixel of a line camera's view is a fraction of a millimetre)."""
    rng = np.random.default_rng(seed)
    dx, dy = rng.uniform(-1, 1, 2)
    y, x = (np.mgrid[0:size, 0:size] + np.array([dy, dx])[:, None, None]) / size
    part = 120 + 60 * np.sin(6 * x) * np.cos(4 * y) + 40 * ((x - 0.5) ** 2 + (y - 0.5) ** 2 < 0.1)
    shot = part * (1 + 0.01 * rng.choice([-1, 1])) + rng.normal(0, noise, part.shape)
    return Image.fromarray(np.clip(shot, 0, 255).astype(np.uint8)).convert("RGB")


@pytest.fixture(scope="session")
def part_shot():
    """`_part_shot`: photos of one product a perceptual hash cannot tell apart."""
    return _part_shot
