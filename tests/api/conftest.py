import contextlib
import io
import zipfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient


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


@pytest.fixture(scope="session")
def good_zip(synthetic) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for p in sorted((Path(synthetic) / "train" / "good").iterdir())[:12]:
            z.write(p, f"good/{p.name}")
    return buf.getvalue()
