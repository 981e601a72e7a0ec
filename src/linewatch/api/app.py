"""The FastAPI application: ``create_app(settings)``."""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from linewatch import __version__
from linewatch.api.context import AppContext, Conflict, NotFound
from linewatch.api.events import EventHub
from linewatch.api.jobs import JobRunner
from linewatch.api.metrics import Metrics
from linewatch.api.routes import datasets, inspections, jobs, stations, system, users
from linewatch.config import Settings
from linewatch.errors import ImageError, LinewatchError, ModelFileError
from linewatch.store.blobs import BlobNotFound, BlobStoreUnavailable, open_blob_store
from linewatch.store.db import DatabaseError, make_engine, migrate, session_factory

log = logging.getLogger("linewatch.api")


def build_context(settings: Settings) -> AppContext:
    """Connect to the parts and migrate the database (raises DatabaseError with a clear message)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.models_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.db_url)
    migrate(engine)
    blobs = open_blob_store(
        settings.blobs,
        endpoint_url=settings.s3_endpoint_url,
        access_key=settings.s3_access_key,
        secret_key=settings.s3_secret_key,
        region=settings.s3_region,
    )
    return AppContext(settings, engine, session_factory(engine), blobs, EventHub(settings.event_queue_size), Metrics())


def _error(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


def create_app(settings: Settings | None = None, context: AppContext | None = None) -> FastAPI:
    settings = settings or Settings()
    c = context or build_context(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        c.events.bind(asyncio.get_running_loop())
        runner = JobRunner(c)
        c.jobs = runner
        runner.start()
        yield
        runner.stop()

    app = FastAPI(
        title="linewatch",
        version=__version__,
        description="Inspection service: score part images, store and review inspections, train models.",
        lifespan=lifespan,
    )
    app.state.ctx = c
    for r in (users.router, stations.router, datasets.router, jobs.router, inspections.router, system.router):
        app.include_router(r)

    @app.middleware("http")
    async def guard_and_measure(request: Request, call_next):
        length = request.headers.get("content-length")
        if length is not None:
            try:
                too_big = int(length) > settings.max_upload_bytes
            except ValueError:
                return _error(400, "invalid Content-Length")
            if too_big:
                return _error(413, f"request body over {settings.max_upload_bytes:,} bytes")
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        c.metrics.http_requests.labels(request.method, path, str(response.status_code)).inc()
        c.metrics.http_latency.labels(request.method, path).observe(time.perf_counter() - started)
        return response

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        errors = [{"loc": list(e.get("loc", [])), "msg": str(e.get("msg", ""))} for e in exc.errors()]
        return JSONResponse({"detail": "invalid request", "errors": errors}, status_code=422)

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound):
        return _error(404, str(exc))

    @app.exception_handler(Conflict)
    async def conflict(request: Request, exc: Conflict):
        return _error(409, str(exc))

    @app.exception_handler(ImageError)
    async def bad_image(request: Request, exc: ImageError):
        status = 413 if "limit" in str(exc) or "too large" in str(exc) else 400
        return _error(status, str(exc))

    @app.exception_handler(BlobNotFound)
    async def blob_missing(request: Request, exc: BlobNotFound):
        return _error(404, str(exc))

    @app.exception_handler(BlobStoreUnavailable)
    async def blob_down(request: Request, exc: BlobStoreUnavailable):
        return _error(503, f"image store unavailable, try again: {exc}")

    @app.exception_handler(DatabaseError)
    async def db_down(request: Request, exc: DatabaseError):
        return _error(503, str(exc))

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

    @app.exception_handler(LinewatchError)
    async def user_error(request: Request, exc: LinewatchError):
        return _error(400, str(exc))

    return app
