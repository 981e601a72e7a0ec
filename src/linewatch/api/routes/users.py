"""Login, the current user, users and API keys."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException

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


@router.post("/auth/login", response_model=TokenOut, responses=errors(400, 401, 422, e401="wrong name or password"))
def login(body: LoginIn, session: DB, c: Ctx):
    got = accounts.sign_in(session, body.username, body.password, c.settings.token_hours)
    if got is None:
        raise HTTPException(401, "wrong user name or password")
    token, expires, role = got
    return TokenOut(access_token=token, expires_at=expires, role=role)


@router.get("/auth/me", response_model=MeOut, responses=errors(401))
def me(who: Principal = Depends(principal)):
    return MeOut(user_id=who.user_id, name=who.name, role=who.role, via=who.via)


@router.get("/users", response_model=list[UserOut], responses=AUTH)
def list_users(_: Admin, session: DB):
    return accounts.list_users(session)


@router.post("/users", response_model=UserOut, status_code=201, responses={**AUTH, **errors(409, e409="name taken")})
def create_user(body: UserIn, _: Admin, session: DB):
    return accounts.add_user(session, body.name, body.password, body.role)


@router.patch(
    "/users/{user_id}",
    response_model=UserOut,
    responses={**AUTH, **errors(404, 409, e404="no such user", e409="one's own role or access, or the last admin")},
)
def update_user(user_id: Id, body: UserPatch, who: Admin, session: DB):
    """Change a user's role, deactivate or reactivate them (a deactivated user's tokens and API keys stop
    working), or set a new password. Admins cannot demote or deactivate themselves, so one always remains."""
    return accounts.update_user(session, who, user_id, body.role, body.active, body.password)


@router.get("/api-keys", response_model=list[ApiKeyOut], responses=AUTH)
def list_keys(_: Admin, session: DB):
    return accounts.list_keys(session)


@router.post("/api-keys", response_model=ApiKeyCreated, status_code=201, responses=AUTH)
def create_key(body: ApiKeyIn, who: Admin, session: DB):
    secret, key = accounts.add_api_key(session, body.name, body.role, who)
    return ApiKeyCreated(**ApiKeyOut.model_validate(key).model_dump(), key=secret)


@router.delete("/api-keys/{key_id}", status_code=204, responses={**AUTH, **errors(404, e404="no such key")})
def revoke_key(key_id: Id, _: Admin, session: DB):
    accounts.revoke_key(session, key_id)
