"""Request dependencies: the app context, a database session, the authenticated principal and its role."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from linewatch.api.schemas import LINE, MAX_ID
from linewatch.services.accounts import Principal, key_digest, principal_from_api_key, principal_from_token
from linewatch.services.context import AppContext

# Path parameters: an id a row can have, a name without control characters (else 422, not a database error).
Id = Annotated[int, Path(ge=1, le=MAX_ID)]
Name = Annotated[str, Path(min_length=1, max_length=100, pattern=LINE)]

bearer = HTTPBearer(auto_error=False, description="token from POST /api/v1/auth/login")
api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key for machines")


def ctx(request: Request) -> AppContext:
    return request.app.state.ctx


def db(request: Request) -> Iterator[Session]:
    with request.app.state.ctx.sessions() as session:
        yield session


def lookup_api_key(c: AppContext, key: str) -> Principal | None:
    """The API key's principal from the database (blocking: run it off the event loop), None if it is not valid."""
    with c.sessions() as session, session.begin():
        return principal_from_api_key(session, key)


def lookup_token(c: AppContext, token: str) -> Principal | None:
    """The login token's principal from the database (blocking), None if it is not valid."""
    with c.sessions() as session, session.begin():
        return principal_from_token(session, token)


async def principal(
    request: Request,
    creds: HTTPAuthorizationCredentials | None = Depends(bearer),
    key: str | None = Depends(api_key_header),
) -> Principal:
    if creds is None and not key:
        raise HTTPException(
            401,
            "authentication required: a Bearer token or an X-API-Key header",
            headers={"WWW-Authenticate": "Bearer"},
        )
    c: AppContext = request.app.state.ctx
    if creds is None:  # an API key: a camera's every request; the cache spares a transaction per image
        digest = key_digest(key)
        who = c.keys.get(digest)
        if who is None:
            generation = c.keys.generation()
            who = await run_in_threadpool(lookup_api_key, c, key)
            if who is not None:
                c.keys.put(digest, who, generation)
    else:
        who = await run_in_threadpool(lookup_token, c, creds.credentials)
    if who is None:
        raise HTTPException(401, "invalid or expired credentials", headers={"WWW-Authenticate": "Bearer"})
    return who


def require(role: str):
    def check(who: Principal = Depends(principal)) -> Principal:
        if not who.can(role):
            raise HTTPException(403, f"this needs the {role} role or higher; you are {who.role}")
        return who

    return check


def station_allowed(who: Principal, station: str) -> None:
    """403 for an API key scoped to other stations."""
    if not who.may_use_station(station):
        raise HTTPException(403, f"this API key may be used at {', '.join(sorted(who.stations or ()))} only")


viewer = require("viewer")
operator = require("operator")
engineer = require("engineer")
admin = require("admin")


# What a route declares instead of repeating ``Depends``: its database session, the service's parts, and the
# least role it needs (the principal, checked).
DB = Annotated[Session, Depends(db)]
Ctx = Annotated[AppContext, Depends(ctx)]
Viewer = Annotated[Principal, Depends(viewer)]
Operator = Annotated[Principal, Depends(operator)]
Engineer = Annotated[Principal, Depends(engineer)]
Admin = Annotated[Principal, Depends(admin)]
