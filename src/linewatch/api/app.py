"""The FastAPI application: ``create_app(settings)``."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException

from linewatch import __version__
from linewatch.api.dashboard import mount_dashboard
from linewatch.api.deps import principal
from linewatch.api.routes import (
    audit,
    datasets,
    inspections,
    jobs,
    machines,
    schedules,
    search,
    stations,
    stats,
    system,
    twin,
    users,
)
from linewatch.config import Settings
from linewatch.core.modelregistry import RegistryError
from linewatch.errors import ImageError, ImageTooLarge, LinewatchError, ModelFileError
from linewatch.services import audit as audit_log
from linewatch.services.context import AppContext, build_context, start_bus
from linewatch.services.drift import DriftWatcher
from linewatch.services.errors import Conflict, NotFound, TooLarge, TooManyRequests
from linewatch.services.ingest import Ingester
from linewatch.services.jobqueue import QueueJobs, QueueUnavailable
from linewatch.services.jobs import JobRunner
from linewatch.services.maintenance import MaintenanceWatcher
from linewatch.services.mqtt import ReadingSources
from linewatch.services.twin import TwinInbox, TwinModelInvalid, TwinService
from linewatch.store.blobs import BlobNotFound, BlobStoreUnavailable
from linewatch.store.db import DatabaseError

log = logging.getLogger("linewatch.api")
RETRY_AFTER_S = "5"  # the Retry-After header of 503 answers, in seconds


# errors whose message is the response's detail, by status; a subclass wins over its base
STATUS: dict[type[Exception], int] = {
    NotFound: 404,
    Conflict: 409,
    TooLarge: 413,
    ImageTooLarge: 413,
    ImageError: 400,
    BlobNotFound: 404,
    DatabaseError: 503,
    QueueUnavailable: 503,
    RegistryError: 503,
    LinewatchError: 400,
}


def _error(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


class StreamedBodyLimit:
    """Counts the request body as it arrives and refuses it (413, JSON) once over the limit: a chunked
    body has no Content-Length to check up front. (Not FastAPI's ``max_body_size``: it answers in plain text.)"""

    def __init__(self, app, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    # raised where the route reads its body: FastAPI passes it to the exception handlers
                    raise HTTPException(413, f"request body over {self.limit:,} bytes")
            return message

        await self.app(scope, limited_receive, send)


def _method_index(app: FastAPI) -> list[tuple[re.Pattern, int, set[str]]]:
    """(path regex, number of parameters, methods) for every path of the OpenAPI document."""
    index = []
    for template, operations in app.openapi().get("paths", {}).items():
        regex = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
        index.append((re.compile(regex), template.count("{"), {m.upper() for m in operations}))
    return index


def _allowed_methods(index: list[tuple[re.Pattern, int, set[str]]], path: str) -> str:
    """The methods the path supports, for a 405's Allow header (Starlette names only the first route's): those
    of the most specific documented paths that match, e.g. POST for /jobs/train, not GET of /jobs/{job_id}."""
    matches = [(params, methods) for regex, params, methods in index if regex.fullmatch(path)]
    if not matches:
        return ""
    fewest = min(params for params, _ in matches)
    allowed = set().union(*(methods for params, methods in matches if params == fewest))
    if "GET" in allowed:
        allowed.add("HEAD")
    return ", ".join(sorted(allowed))


ROUTERS = (
    users.router,
    stations.router,
    datasets.router,
    jobs.router,
    inspections.router,
    search.router,
    stats.router,
    machines.router,
    schedules.router,
    twin.router,
    audit.router,
)

# What a browser may do with the service's pages: its own scripts only (no inline script), styles of its own and
# inline ones (Mantine sets style attributes and CSS variables), images from itself and data:/blob: URLs (heatmap
# overlays, previews of files about to be uploaded), requests and the WebSocket to itself; no plugins, no framing.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "font-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)
# The API documentation pages load Swagger UI and ReDoc from their CDN and start them with an inline script.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly; "
    "font-src 'self' https://fonts.gstatic.com; "
    "connect-src 'self'; worker-src 'self' blob:; object-src 'none'; base-uri 'self'; frame-ancestors 'none'"
)
DOCS_PATHS = ("/docs", "/docs/oauth2-redirect", "/redoc")
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}
HSTS = "max-age=31536000"  # only on answers sent over TLS (directly, or by a proxy uvicorn trusts)


def security_headers(scope, headers: MutableHeaders) -> None:
    """The security headers an answer to ``scope`` lacks, added to its ``headers``."""
    headers.setdefault("Content-Security-Policy", DOCS_CSP if scope["path"] in DOCS_PATHS else CSP)
    for name, value in SECURITY_HEADERS.items():
        headers.setdefault(name, value)
    if scope.get("scheme") in ("https", "wss"):
        headers.setdefault("Strict-Transport-Security", HSTS)


class GuardAndMeasure:
    """Refuses a malformed or too large declared Content-Length (a body without one is counted as it arrives by
    ``StreamedBodyLimit``), puts the security headers on every answer and Retry-After on a 503, and counts and
    times requests by route. Plain ASGI: Starlette's ``BaseHTTPMiddleware`` cost about a millisecond a request
    (it runs the app in a task of its own and passes the answer on through a stream)."""

    def __init__(self, app, settings: Settings, context: AppContext) -> None:
        self.app = app
        self.limit = settings.max_upload_bytes
        self.context = context

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is not None:
            security_headers(scope, refusal.headers)
            await refusal(scope, receive, send)
            return
        client = scope.get("client")
        audit_log.CLIENT.set(client[0] if client else None)  # for the audit log's entries
        started = time.perf_counter()
        status = 500  # an error that escapes the app is answered 500 by Starlette's outermost middleware

        async def send_with_headers(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                security_headers(scope, headers)
                if status == 503:  # a part is down: tell clients when to try again
                    headers.setdefault("Retry-After", RETRY_AFTER_S)
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            path = getattr(scope.get("route"), "path", "unmatched")
            metrics = self.context.metrics
            metrics.http_requests.labels(scope["method"], path, str(status)).inc()
            metrics.http_latency.labels(scope["method"], path).observe(time.perf_counter() - started)

    def _refusal(self, scope) -> JSONResponse | None:
        length = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if length is None:
            return None
        text = length.decode("latin-1").strip()
        if not re.fullmatch(r"[0-9]+", text):
            return _error(400, "invalid Content-Length")
        # more digits than any limit has is over it (and int() refuses over 4,300 digits)
        if len(text) > len(str(self.limit)) or int(text) > self.limit:
            return _error(413, f"request body over {self.limit:,} bytes")
        return None


def create_app(settings: Settings | None = None, context: AppContext | None = None) -> FastAPI:
    """The service: its parts (``context``, built from ``settings`` when not given) behind the API's routes,
    the dashboard, the guards and the error mapping."""
    settings = settings or Settings()
    c = context or build_context(settings)
    public_docs = settings.docs_access == "public"
    app = FastAPI(
        title="linewatch",
        version=__version__,
        description="Inspection service: score part images, store and review inspections, train models.",
        lifespan=_lifespan(c),
        openapi_url="/openapi.json" if public_docs else None,
        docs_url="/docs" if public_docs else None,
        redoc_url="/redoc" if public_docs else None,
    )
    app.state.ctx = c
    for r in (*ROUTERS, system.router):
        app.include_router(r)
    if settings.docs_access == "auth":
        _add_docs_behind_auth(app)
    mount_dashboard(app)  # the web dashboard at /, outside the API schema
    _add_guards(app, settings, c)
    _add_error_handlers(app)
    return app


def _add_docs_behind_auth(app: FastAPI) -> None:
    """``docs_access=auth``: the schema and its pages answer only a request with a token or an API key."""

    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(principal)])
    def openapi_json():
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=[Depends(principal)])
    def docs():
        return get_swagger_ui_html(openapi_url="/openapi.json", title="linewatch - API")

    @app.get("/redoc", include_in_schema=False, dependencies=[Depends(principal)])
    def redoc():
        return get_redoc_html(openapi_url="/openapi.json", title="linewatch - API")


def _lifespan(c: AppContext):
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        c.live.bind(asyncio.get_running_loop())
        await asyncio.to_thread(start_bus, c)  # events to and from other processes, when a broker is set
        # a job queue (LINEWATCH_QUEUE_URL): `linewatch worker` processes run the jobs; else a thread of ours
        runner = QueueJobs(c) if c.settings.queue_url else JobRunner(c)
        c.jobs = runner
        runner.start()
        await asyncio.to_thread(c.search.start)  # adds what the search index lacks, then saves in the background
        # sensor readings: the ingester, then its inputs (MQTT, NATS) when the settings name a broker
        c.ingester = Ingester(c)
        await asyncio.to_thread(c.ingester.start)
        # the digital twin: live state rebuilt from the stored events; its MQTT state messages share the broker
        c.twin = TwinService(c)
        await asyncio.to_thread(c.twin.start)
        c.twin_inbox = TwinInbox(c, c.twin)
        c.twin_inbox.start()
        c.sources = ReadingSources(c.settings, c.ingester, c.twin_inbox)
        await asyncio.to_thread(c.sources.start)
        c.maintenance = MaintenanceWatcher(c)  # maintenance predictions as cycles of readings complete
        c.maintenance.start()
        c.drift = DriftWatcher(c)  # each station's drift level, stored and published when it changes
        c.drift.start()
        yield
        await asyncio.to_thread(c.drift.stop)
        await asyncio.to_thread(c.maintenance.stop)
        await asyncio.to_thread(c.sources.stop)
        await asyncio.to_thread(c.twin_inbox.stop)
        c.twin.stop()
        await asyncio.to_thread(c.ingester.stop)  # stores what is queued, checkpoints the running models
        runner.stop()
        await asyncio.to_thread(c.search.stop)
        await asyncio.to_thread(c.bus.close)

    return lifespan


def _add_guards(app: FastAPI, settings: Settings, c: AppContext) -> None:
    """Request size limits, security headers, Retry-After on 503, request metrics."""
    # GuardAndMeasure refuses a declared Content-Length over the limit; StreamedBodyLimit, a body without one
    # (chunked). Added first, so it runs inside GuardAndMeasure.
    app.add_middleware(StreamedBodyLimit, limit=settings.max_upload_bytes)
    app.add_middleware(GuardAndMeasure, settings=settings, context=c)


def _add_error_handlers(app: FastAPI) -> None:
    """Errors mapped by class to a status and a JSON body; never a traceback, never a 500 for user input."""
    method_index: list[tuple[re.Pattern, int, set[str]]] = []

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        headers = dict(getattr(exc, "headers", None) or {})
        detail = exc.detail
        if exc.status_code == 405:
            if not method_index:
                method_index.extend(_method_index(app))
            headers["Allow"] = _allowed_methods(method_index, request.url.path) or headers.get("Allow", "")
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=headers or None)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        errors = [
            {"loc": list(e.get("loc", [])), "msg": str(e.get("msg", "")).removeprefix("Value error, ")}
            for e in exc.errors()
        ]
        return JSONResponse({"detail": "invalid request", "errors": errors}, status_code=422)

    @app.exception_handler(BlobStoreUnavailable)
    async def blob_down(request: Request, exc: BlobStoreUnavailable):
        log.warning("image store unavailable: %s", exc)  # its endpoint and error stay in the log
        return _error(503, "image store unavailable, try again")

    @app.exception_handler(OperationalError)
    async def db_operational(request: Request, exc: OperationalError):
        log.warning("database error: %s", exc)
        return _error(503, "database unavailable, try again")

    @app.exception_handler(SQLAlchemyError)
    async def db_other(request: Request, exc: SQLAlchemyError):
        log.error("database error: %s", exc)
        return _error(503, "database error, try again")

    @app.exception_handler(ModelFileError)
    async def model_broken(request: Request, exc: ModelFileError):
        return _error(409, f"the model cannot be loaded: {exc}")

    @app.exception_handler(TwinModelInvalid)
    async def twin_model_invalid(request: Request, exc: TwinModelInvalid):
        return JSONResponse({"detail": [{"path": p, "message": m} for p, m in exc.errors]}, status_code=422)

    @app.exception_handler(TooManyRequests)
    async def too_many(request: Request, exc: TooManyRequests):
        return JSONResponse({"detail": str(exc)}, status_code=429, headers={"Retry-After": str(exc.retry_after)})

    async def user_facing(request: Request, exc: Exception):
        # the most specific class of the error that has a status; its message is the detail
        status = next(STATUS[k] for k in type(exc).__mro__ if k in STATUS)
        return _error(status, str(exc))

    for cls in STATUS:
        app.add_exception_handler(cls, user_facing)
