"""Passwords (argon2), login tokens and API keys (random, stored as sha256), roles."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from linewatch.services.errors import Conflict, NotFound
from linewatch.store.tables import ROLES, ApiKey, Token, User, now

RANK = {"viewer": 0, "operator": 1, "engineer": 2, "admin": 3}
_hasher = PasswordHasher()
API_KEY_PREFIX = "lwk_"


@dataclass(frozen=True)
class Principal:
    user_id: int
    name: str
    role: str
    via: str  # "token" or "api_key"

    def can(self, role: str) -> bool:
        return RANK[self.role] >= RANK[role]


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def check_role(role: str) -> str:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}: one of {', '.join(ROLES)}")
    return role


def create_user(session: Session, name: str, password: str, role: str) -> User:
    if len(password) < 8:
        raise ValueError("password must have at least 8 characters")
    user = User(name=name, password_hash=hash_password(password), role=check_role(role))
    session.add(user)
    session.flush()
    return user


def login(session: Session, name: str, password: str, hours: float) -> tuple[str, dt.datetime] | None:
    user = session.scalar(select(User).where(User.name == name, User.active.is_(True)))
    if user is None:
        _hasher.hash(password)  # same work whether or not the user exists
        return None
    if not verify_password(user.password_hash, password):
        return None
    token = secrets.token_urlsafe(32)
    expires = now() + dt.timedelta(hours=hours)
    session.add(Token(user_id=user.id, token_hash=_digest(token), expires_at=expires))
    return token, expires


def create_api_key(session: Session, name: str, role: str, created_by: int) -> tuple[str, ApiKey]:
    secret = API_KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(name=name, prefix=secret[:10], key_hash=_digest(secret), role=check_role(role), created_by=created_by)
    session.add(key)
    session.flush()
    return secret, key


def principal_from_token(session: Session, token: str) -> Principal | None:
    row = session.execute(
        select(Token, User).join(User, User.id == Token.user_id).where(Token.token_hash == _digest(token))
    ).first()
    if row is None:
        return None
    tok, user = row
    expires = tok.expires_at if tok.expires_at.tzinfo else tok.expires_at.replace(tzinfo=dt.UTC)
    if expires < now() or not user.active:
        return None
    return Principal(user.id, user.name, user.role, "token")


LAST_USED_RESOLUTION = dt.timedelta(minutes=1)


def principal_from_api_key(session: Session, secret: str) -> Principal | None:
    row = session.execute(
        select(ApiKey, User).join(User, User.id == ApiKey.created_by).where(ApiKey.key_hash == _digest(secret))
    ).first()
    if row is None:
        return None
    key, user = row
    if key.revoked or not user.active:
        return None
    t = now()
    last = key.last_used_at
    if last is not None and last.tzinfo is None:
        last = last.replace(tzinfo=dt.UTC)
    if last is None or t - last > LAST_USED_RESOLUTION:  # a write per minute, not per request (a camera's)
        key.last_used_at = t
    return Principal(user.id, f"{user.name}/{key.name}", key.role, "api_key")


# -- managing users and keys (admin) ------------------------------------------------------------------------------
def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.id)).all())


def add_user(session: Session, name: str, password: str, role: str) -> User:
    """A new user; Conflict when the name is taken."""
    try:
        with session.begin():
            return create_user(session, name, password, role)
    except IntegrityError:
        raise Conflict(f"user {name!r} already exists") from None


def update_user(
    session: Session,
    by: Principal,
    user_id: int,
    role: str | None = None,
    active: bool | None = None,
    password: str | None = None,
) -> User:
    """Change a user's role, deactivate or reactivate them, or set a new password. Admins cannot demote or
    deactivate themselves, and the last active admin stays one, so an admin always remains."""
    with session.begin():
        user = session.get(User, user_id)
        if user is None:
            raise NotFound(f"no user {user_id}")
        demoted = (role is not None and role != "admin") or active is False
        if demoted and user.id == by.user_id:
            raise Conflict("you cannot demote or deactivate yourself; another admin can")
        if user.role == "admin" and user.active and demoted:
            admins = session.scalar(
                select(func.count()).select_from(User).where(User.role == "admin", User.active.is_(True))
            )
            if admins <= 1:
                raise Conflict(f"{user.name!r} is the last active admin")
        if role is not None:
            user.role = role
        if active is not None:
            user.active = active
        if password is not None:
            user.password_hash = hash_password(password)
    return user


def list_keys(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.id)).all())


def add_api_key(session: Session, name: str, role: str, by: Principal) -> tuple[str, ApiKey]:
    with session.begin():
        return create_api_key(session, name, role, by.user_id)


def revoke_key(session: Session, key_id: int) -> None:
    with session.begin():
        key = session.get(ApiKey, key_id)
        if key is None:
            raise NotFound(f"no API key {key_id}")
        key.revoked = True


def sign_in(session: Session, name: str, password: str, hours: float) -> tuple[str, dt.datetime, str] | None:
    """(token, expiry, role) for a right name and password, else None."""
    with session.begin():
        got = login(session, name, password, hours)
        if got is None:
            return None
        role = session.scalar(select(User.role).where(User.name == name))
    return got[0], got[1], role
