import io
import uuid
import zipfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def _postgres_url() -> str:
    """A fresh PostgreSQL database on the local server, or a skip saying why there is none."""
    import sqlalchemy as sa

    try:
        eng = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
        name = f"lw_test_{uuid.uuid4().hex[:10]}"
        with eng.connect() as c:
            c.execute(sa.text(f'CREATE DATABASE "{name}"'))
        eng.dispose()
    except Exception as e:
        pytest.skip(f"PostgreSQL not reachable at 127.0.0.1:5432 ({type(e).__name__})")
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def _drop(url: str) -> None:
    import sqlalchemy as sa

    name = url.rsplit("/", 1)[1]
    eng = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with eng.connect() as c:
        c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    eng.dispose()


class Api:
    """A TestClient with helpers for logging in as a role."""

    def __init__(self, client: TestClient, ctx):
        self.client = client
        self.ctx = ctx
        self._headers: dict[str, dict] = {}

    def user(self, role: str) -> dict:
        if role not in self._headers:
            from linewatch.api.auth import create_user

            with self.ctx.sessions() as s, s.begin():
                create_user(s, f"{role}-user", "password-" + role, role)
            r = self.client.post(
                "/api/v1/auth/login", json={"username": f"{role}-user", "password": "password-" + role}
            )
            assert r.status_code == 200, r.text
            self._headers[role] = {"Authorization": f"Bearer {r.json()['access_token']}"}
        return self._headers[role]


@pytest.fixture(params=["sqlite", "postgresql"])
def api(request, tmp_path):
    from linewatch.api.app import build_context, create_app
    from linewatch.config import Settings

    url = None
    if request.param == "postgresql":
        url = _postgres_url()
    settings = Settings(data_dir=tmp_path / "data", database_url=url)
    ctx = build_context(settings)
    try:
        with TestClient(create_app(settings, ctx)) as client:
            yield Api(client, ctx)
    finally:
        ctx.engine.dispose()
        if url:
            _drop(url)


@pytest.fixture(scope="session")
def good_zip(synthetic) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for p in sorted((Path(synthetic) / "train" / "good").iterdir())[:12]:
            z.write(p, f"good/{p.name}")
    return buf.getvalue()
