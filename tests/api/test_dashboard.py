"""The built dashboard is served by the service at /: index.html not cached, hashed assets cached for good, the API
and its JSON 404s untouched."""

import re

import pytest
from fastapi.testclient import TestClient

from linewatch.api.dashboard import DASHBOARD_DIR


@pytest.fixture
def client(tmp_path):
    from linewatch.api.app import create_app
    from linewatch.config import Settings

    app = create_app(Settings(data_dir=tmp_path / "data"))
    with TestClient(app) as c:
        yield c
    app.state.ctx.engine.dispose()


def test_index_and_assets_are_served(client):
    assert (DASHBOARD_DIR / "index.html").is_file(), "the dashboard build is missing: cd web && npm run build"
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert r.headers["cache-control"] == "no-cache"
    assert '<div id="root">' in r.text
    assets = re.findall(r'(?:src|href)="(/assets/[^"]+)"', r.text)
    assert any(a.endswith(".js") for a in assets) and any(a.endswith(".css") for a in assets)
    for a in assets:
        got = client.get(a)
        assert got.status_code == 200, a
        assert got.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert len(got.content) > 0
    js = next(a for a in assets if a.endswith(".js"))
    assert "javascript" in client.get(js).headers["content-type"]
    assert client.get("/favicon.svg").status_code == 200


def test_api_and_system_routes_are_untouched(client):
    missing = client.get("/api/v1/nothing-here")
    assert missing.status_code == 404 and missing.json() == {"detail": "Not Found"}
    assert client.get("/assets/nope.js").status_code == 404
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/docs").status_code == 200
    assert client.get("/metrics").status_code == 200
    assert client.get("/api/v1/inspections").status_code == 401
    paths = client.get("/openapi.json").json()["paths"]
    assert "/" not in paths and not any(p.startswith("/assets") for p in paths)


def test_a_missing_build_says_how_to_build(tmp_path):
    from fastapi import FastAPI

    from linewatch.api.dashboard import mount_dashboard

    app = FastAPI()
    mount_dashboard(app, tmp_path / "no-build")
    r = TestClient(app).get("/")
    assert r.status_code == 503 and "npm run build" in r.text
