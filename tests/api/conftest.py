import contextlib
import io
import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient


@pytest.fixture(scope="session", autouse=True)
def production_password_hasher():
    """The service's password hasher, replaced for the tests of this folder (in this process: a server started as a
    process of its own keeps the real one) by argon2id at its least cost. Most tests here create and sign in users, and
    a real hash or check takes 0.1-0.3 s on 2 cores, hundreds of times over. Yields the real hasher, whose strength a
    test checks."""
    from argon2 import PasswordHasher

    from linewatch.services import accounts

    real = accounts._hasher
    accounts._hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    yield real
    accounts._hasher = real


class Api:
    """A TestClient with helpers for logging in as a role."""

    def __init__(self, client: TestClient, ctx):
        self.client = client
        self.ctx = ctx
        self._headers: dict[str, dict] = {}

    def user(self, role: str) -> dict:
        if role not in self._headers:
            from linewatch.services.accounts import create_user

            with self.ctx.sessions() as s, s.begin():
                create_user(s, f"{role}-user", "password-" + role, role)
            r = self.client.post(
                "/api/v1/auth/login", json={"username": f"{role}-user", "password": "password-" + role}
            )
            assert r.status_code == 200, r.text
            self._headers[role] = {"Authorization": f"Bearer {r.json()['access_token']}"}
        return self._headers[role]


@pytest.fixture
def race(monkeypatch):
    """``race(calls, at)``: runs the calls at once, each in a thread, and holds each at the first call of one of the
    functions ``at`` names (``(owner, attribute)`` pairs: a module, or one object's method) until every call got
    there: what two service processes do when both read the same state before either writes. The calls' results."""

    def run(calls, at):
        barrier = threading.Barrier(len(calls), timeout=30)
        mine = threading.local()  # .hold: a racing call not held yet (the service's own threads are never held)

        for owner, name in at:
            original = getattr(owner, name)

            def held(*args, _original=original, **kwargs):
                out = _original(*args, **kwargs)
                if getattr(mine, "hold", False):
                    mine.hold = False
                    barrier.wait()
                return out

            monkeypatch.setattr(owner, name, held)

        def racing(call):
            mine.hold = True
            return call()

        with ThreadPoolExecutor(len(calls)) as pool:
            futures = [pool.submit(racing, call) for call in calls]
            return [f.result() for f in futures]

    return run


@pytest.fixture(params=["sqlite", "postgresql"])
def api(request, tmp_path, postgres):
    from linewatch.api.app import build_context, create_app
    from linewatch.config import Settings

    with contextlib.ExitStack() as stack:
        url = stack.enter_context(postgres.database()) if request.param == "postgresql" else None
        settings = Settings(data_dir=tmp_path / "data", database_url=url)
        ctx = build_context(settings)
        try:
            with TestClient(create_app(settings, ctx)) as client:
                yield Api(client, ctx)
        finally:
            ctx.engine.dispose()


@pytest.fixture
def api_with(tmp_path):
    """``api_with(**settings)``: a service on SQLite with these settings besides its data dir."""
    from linewatch.api.app import build_context, create_app
    from linewatch.config import Settings

    with contextlib.ExitStack() as stack:

        def make(**extra) -> Api:
            settings = Settings(data_dir=tmp_path / "data", **extra)
            ctx = build_context(settings)
            stack.callback(ctx.engine.dispose)
            return Api(stack.enter_context(TestClient(create_app(settings, ctx))), ctx)

        yield make


@pytest.fixture(scope="session")
def good_zip(synthetic) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for p in sorted((Path(synthetic) / "train" / "good").iterdir())[:12]:
            z.write(p, f"good/{p.name}")
    return buf.getvalue()
