"""Login, the current user, users and API keys."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from linewatch.api import auth
from linewatch.api.deps import Id, admin, ctx, db, principal
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
from linewatch.store.tables import ApiKey, User

router = APIRouter(prefix="/api/v1", tags=["users"])
AUTH = errors(400, 401, 403, 422)


@router.post("/auth/login", response_model=TokenOut, responses=errors(400, 401, 422, e401="wrong name or password"))
def login(body: LoginIn, session: Session = Depends(db), c=Depends(ctx)):
    with session.begin():
        got = auth.login(session, body.username, body.password, c.settings.token_hours)
        if got is None:
            raise HTTPException(401, "wrong user name or password")
        role = session.scalar(select(User.role).where(User.name == body.username))
    token, expires = got
    return TokenOut(access_token=token, expires_at=expires, role=role)


@router.get("/auth/me", response_model=MeOut, responses=errors(401))
def me(who: auth.Principal = Depends(principal)):
    return MeOut(user_id=who.user_id, name=who.name, role=who.role, via=who.via)


@router.get("/users", response_model=list[UserOut], responses=AUTH)
def list_users(_=Depends(admin), session: Session = Depends(db)):
    return session.scalars(select(User).order_by(User.id)).all()


@router.post("/users", response_model=UserOut, status_code=201, responses={**AUTH, **errors(409, e409="name taken")})
def create_user(body: UserIn, _=Depends(admin), session: Session = Depends(db)):
    try:
        with session.begin():
            user = auth.create_user(session, body.name, body.password, body.role)
    except IntegrityError:
        raise HTTPException(409, f"user {body.name!r} already exists") from None
    return user


@router.patch(
    "/users/{user_id}",
    response_model=UserOut,
    responses={**AUTH, **errors(404, 409, e404="no such user", e409="one's own role or access, or the last admin")},
)
def update_user(user_id: Id, body: UserPatch, who: auth.Principal = Depends(admin), session: Session = Depends(db)):
    """Change a user's role, deactivate or reactivate them (a deactivated user's tokens and API keys stop
    working), or set a new password. Admins cannot demote or deactivate themselves, so one always remains."""
    with session.begin():
        user = session.get(User, user_id)
        if user is None:
            raise HTTPException(404, f"no user {user_id}")
        demoted = (body.role is not None and body.role != "admin") or body.active is False
        if demoted and user.id == who.user_id:
            raise HTTPException(409, "you cannot demote or deactivate yourself; another admin can")
        if user.role == "admin" and user.active and demoted:
            admins = session.scalar(
                select(func.count()).select_from(User).where(User.role == "admin", User.active.is_(True))
            )
            if admins <= 1:
                raise HTTPException(409, f"{user.name!r} is the last active admin")
        if body.role is not None:
            user.role = body.role
        if body.active is not None:
            user.active = body.active
        if body.password is not None:
            user.password_hash = auth.hash_password(body.password)
    return user


@router.get("/api-keys", response_model=list[ApiKeyOut], responses=AUTH)
def list_keys(_=Depends(admin), session: Session = Depends(db)):
    return session.scalars(select(ApiKey).order_by(ApiKey.id)).all()


@router.post("/api-keys", response_model=ApiKeyCreated, status_code=201, responses=AUTH)
def create_key(body: ApiKeyIn, who: auth.Principal = Depends(admin), session: Session = Depends(db)):
    with session.begin():
        secret, key = auth.create_api_key(session, body.name, body.role, who.user_id)
    return ApiKeyCreated(**ApiKeyOut.model_validate(key).model_dump(), key=secret)


@router.delete("/api-keys/{key_id}", status_code=204, responses={**AUTH, **errors(404, e404="no such key")})
def revoke_key(key_id: Id, _=Depends(admin), session: Session = Depends(db)):
    with session.begin():
        key = session.get(ApiKey, key_id)
        if key is None:
            raise HTTPException(404, f"no API key {key_id}")
        key.revoked = True
