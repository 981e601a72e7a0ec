"""Login, the current user, users and API keys."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool

from linewatch.api.deps import DB, Admin, Ctx, Id, principal
from linewatch.api.schemas import (
    ApiKeyCreated,
    ApiKeyIn,
    ApiKeyOut,
    LoginIn,
    MeOut,
    TokenOut,
    UserIn,
    UserOut,
    UserPatch,
    errors,
)
from linewatch.services import accounts
from linewatch.services.accounts import Principal

router = APIRouter(prefix="/api/v1", tags=["users"])
AUTH = errors(400, 401, 403, 422)


@router.post(
    "/auth/login",
    response_model=TokenOut,
    responses=errors(
        400, 401, 422, 429, e401="wrong name or password", e429="too many failed sign-ins; see Retry-After"
    ),
)
async def login(body: LoginIn, request: Request, c: Ctx):
    """A login token for a user name and password. Failed sign-ins are limited per user name and per client
    address (``login_failures_per_user``, ``login_failures_per_client`` in ``login_window_s``): past them the
    answer is 429 with Retry-After, whatever the password."""
    client = request.client.host if request.client else None
    async with c.logins.turn(body.username, client):  # 429 past the limits; few password checks at once
        got = await run_in_threadpool(c.logins.sign_in, c, body.username, body.password, client)
    if got is None:
        raise HTTPException(401, "wrong user name or password")
    token, expires, role = got
    return TokenOut(access_token=token, expires_at=expires, role=role)


@router.post("/auth/logout", status_code=204, responses=errors(401, 409, e409="an API key cannot sign out"))
def logout(session: DB, who: Principal = Depends(principal)):
    """End the login token of this request (the dashboard's Sign out)."""
    accounts.sign_out(session, who)


@router.get("/auth/me", response_model=MeOut, responses=errors(401))
def me(who: Principal = Depends(principal)):
    return MeOut(
        user_id=who.user_id,
        name=who.name,
        role=who.role,
        via=who.via,
        stations=sorted(who.stations) if who.stations is not None else None,
    )


@router.get("/users", response_model=list[UserOut], responses=AUTH)
def list_users(_: Admin, session: DB):
    return accounts.list_users(session)


@router.post("/users", response_model=UserOut, status_code=201, responses={**AUTH, **errors(409, e409="name taken")})
def create_user(body: UserIn, who: Admin, session: DB):
    return accounts.add_user(session, body.name, body.password, body.role, who)


@router.patch(
    "/users/{user_id}",
    response_model=UserOut,
    responses={**AUTH, **errors(404, 409, e404="no such user", e409="one's own role or access, or the last admin")},
)
def update_user(user_id: Id, body: UserPatch, who: Admin, session: DB, c: Ctx):
    """Change a user's role, deactivate or reactivate them, or set a new password. A new role applies at once to
    the user's tokens and API keys (a key never acts above its owner's current role); a deactivated user's tokens
    and API keys stop working; a password change, deactivation and reactivation end every login token of the
    user. Admins cannot demote or deactivate themselves, so one always remains. (Another server process sharing
    the database sees a change to a user's API keys within 2 s: it keeps keys it checked that long.)"""
    try:
        return accounts.update_user(session, who, user_id, body.role, body.active, body.password)
    finally:
        c.keys.clear()


@router.get("/api-keys", response_model=list[ApiKeyOut], responses=AUTH)
def list_keys(_: Admin, session: DB):
    return accounts.list_keys(session)


@router.post(
    "/api-keys",
    response_model=ApiKeyCreated,
    status_code=201,
    responses={**AUTH, **errors(404, e404="a station named does not exist")},
)
def create_key(body: ApiKeyIn, who: Admin, session: DB):
    """A key for a machine (a camera, a script). It acts with its role but never above its owner's current role
    (a demoted owner's keys are demoted too); with ``stations`` it inspects and searches at those stations only."""
    secret, key = accounts.add_api_key(session, body.name, body.role, who, body.stations)
    return ApiKeyCreated(**ApiKeyOut.model_validate(key).model_dump(), key=secret)


@router.delete("/api-keys/{key_id}", status_code=204, responses={**AUTH, **errors(404, e404="no such key")})
def revoke_key(key_id: Id, who: Admin, session: DB, c: Ctx):
    try:
        accounts.revoke_key(session, key_id, who)
    finally:
        c.keys.clear()
