"""The dashboard: the built single-page app (``web/``, built into ``linewatch/dashboard``) served at ``/``.

``index.html`` is never cached (it names the current assets); the hashed files under ``/assets`` are cached for a
year. Nothing here is in the OpenAPI schema, and unknown ``/api/...`` paths keep their JSON 404."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse
from starlette.staticfiles import StaticFiles

DASHBOARD_DIR = Path(__file__).resolve().parent.parent / "dashboard"
NOT_BUILT = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>linewatch</title></head>
<body><h1>linewatch</h1><p>The dashboard is not built in this installation. Build it with
<code>cd web &amp;&amp; npm ci &amp;&amp; npm run build</code>; the API is at <a href="/docs">/docs</a>.</p>
</body></html>
"""


class ImmutableAssets(StaticFiles):
    """Hashed build files: the name changes with the content, so they can be cached for good."""

    def file_response(self, *args, **kwargs):
        response = super().file_response(*args, **kwargs)
        if response.status_code == 200:
            response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        return response


def mount_dashboard(app: FastAPI, folder: Path = DASHBOARD_DIR) -> None:
    index = folder / "index.html"
    assets = folder / "assets"

    @app.get("/", include_in_schema=False)
    @app.get("/index.html", include_in_schema=False)
    def dashboard_index():
        if not index.is_file():
            return HTMLResponse(NOT_BUILT, status_code=503, headers={"Cache-Control": "no-cache"})
        return FileResponse(index, media_type="text/html", headers={"Cache-Control": "no-cache"})

    for name in ("favicon.svg",):
        if (folder / name).is_file():
            path = folder / name

            @app.get(f"/{name}", include_in_schema=False)
            def static_file(path: Path = path):
                return FileResponse(path, headers={"Cache-Control": "public, max-age=86400"})

    app.mount("/assets", ImmutableAssets(directory=assets, check_dir=False), name="dashboard-assets")
