"""Health, readiness, Prometheus metrics and the live event stream."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, HTTPException, Request, WebSocket, WebSocketDisconnect
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import SQLAlchemyError

from linewatch.api.deps import lookup_api_key, lookup_token, principal
from linewatch.services.jobqueue import QueueUnavailable, ping_broker
from linewatch.store.db import DatabaseError, ping

router = APIRouter(tags=["system"])
QUEUE_PING_TIMEOUT_S = 2.0  # /readyz: connecting to the job queue's broker, and its answer


@router.get("/healthz")
def healthz():
    """The process is alive."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "a part is unreachable"}})
async def readyz(request: Request):
    """Database, blob store and job queue reachable."""
    c = request.app.state.ctx
    checks = {}
    try:
        await run_in_threadpool(ping, c.engine)
        checks["database"] = "ok"
    except DatabaseError as e:
        checks["database"] = str(e)
    try:
        await run_in_threadpool(c.blobs.ping)
        checks["blobs"] = "ok"
    except Exception as e:
        checks["blobs"] = f"{type(e).__name__}: {e}"
    thread = getattr(c.jobs, "_thread", None)
    checks["jobs"] = "ok" if thread is not None and thread.is_alive() else "job worker not running"
    broker = getattr(c.jobs, "broker", None)
    if c.settings.queue_url and broker is not None:  # jobs go through a queue: its broker must answer
        try:
            answer = run_in_threadpool(ping_broker, broker, c.settings.queue_url, QUEUE_PING_TIMEOUT_S)
            await asyncio.wait_for(answer, QUEUE_PING_TIMEOUT_S * 2)
            checks["queue"] = "ok"
        except QueueUnavailable as e:
            checks["queue"] = str(e)
        except TimeoutError:
            checks["queue"] = f"the job queue did not answer within {QUEUE_PING_TIMEOUT_S * 2:g} s"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks}, status_code=200 if ready else 503
    )


async def metrics_access(request: Request) -> None:
    """The ``metrics_access`` setting: public (the default), auth (a token or an API key of any role), off. (The
    headers are read here, not declared: the schema documents /metrics as the default installation has it.)"""
    access = request.app.state.ctx.settings.metrics_access
    if access == "off":
        raise HTTPException(404, "Not Found")
    if access == "auth":
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        creds = HTTPAuthorizationCredentials(scheme=scheme, credentials=token) if scheme.lower() == "bearer" else None
        await principal(request, creds, request.headers.get("x-api-key"))


@router.get(
    "/metrics",
    response_class=Response,
    dependencies=[Depends(metrics_access)],
    responses={401: {"description": "metrics_access=auth and no valid token or API key"}},
)
def metrics(request: Request):
    """Prometheus exposition format. Public unless the ``metrics_access`` setting is ``auth`` (then a token or an
    API key, e.g. Prometheus's ``authorization`` or ``http_headers`` with ``X-API-Key``) or ``off`` (404)."""
    c = request.app.state.ctx
    c.metrics.ws_clients.set(c.live.clients)
    return Response(generate_latest(c.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def _ws_principal(c, token: str | None, key: str | None):
    if not token and not key:
        return None
    return lookup_token(c, token) if token else lookup_api_key(c, key)


@router.websocket("/api/v1/events")
async def events(ws: WebSocket):
    """Inspection results and job progress as they happen. Authenticate with ``?token=`` (or an
    ``Authorization: Bearer`` / ``X-API-Key`` header). A client that falls behind loses its oldest events
    and receives ``{"type": "dropped", "count": n}``."""
    c = ws.app.state.ctx
    token = ws.query_params.get("token")
    auth = ws.headers.get("authorization", "")
    key = ws.headers.get("x-api-key")
    if not token and auth.lower().startswith("bearer "):
        token = auth[7:]
    try:
        who = await run_in_threadpool(_ws_principal, c, token, key)  # off the event loop: the database may hang
    except SQLAlchemyError:
        await ws.close(code=1013, reason="database unavailable, try again")  # 1013: try again later
        return
    if who is None:
        await ws.close(code=4401, reason="authentication required")
        return
    await ws.accept()
    sub = c.live.subscribe()

    async def client_gone() -> None:
        # the client closing (or the server shutting down) ends the loop below even when no event comes
        while (await ws.receive())["type"] != "websocket.disconnect":
            pass

    gone = asyncio.create_task(client_gone())
    try:
        await ws.send_json({"type": "hello", "user": who.name, "role": who.role})
        while True:
            getter = asyncio.ensure_future(sub.queue.get())
            await asyncio.wait({getter, gone}, return_when=asyncio.FIRST_COMPLETED)
            if not getter.done():
                getter.cancel()
                break
            event = getter.result()
            if sub.dropped:
                n, sub.dropped = sub.dropped, 0
                c.metrics.ws_dropped.inc(n)
                await ws.send_json({"type": "dropped", "count": n})
            await ws.send_json(event)
    except (WebSocketDisconnect, RuntimeError, asyncio.CancelledError):
        pass
    finally:
        gone.cancel()
        c.live.unsubscribe(sub)
