"""Passwords (argon2), login tokens and API keys (random, stored as sha256), roles, sign-in throttling.

Credentials are checked at every use against the user's current state: a token acts with its user's current role,
an API key with the lower of its own role and its owner's current one, and neither works for a deactivated user.
A password change, a deactivation and a reactivation end every login token of the user."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import math
import re
import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from linewatch.services import audit
from linewatch.services.errors import Conflict, NotFound, TooManyRequests
from linewatch.store.tables import ROLES, ApiKey, Token, User, now

if TYPE_CHECKING:
    from linewatch.config import Settings
    from linewatch.services.context import AppContext

RANK = {"viewer": 0, "operator": 1, "engineer": 2, "admin": 3}
_hasher = PasswordHasher()
API_KEY_PREFIX = "lwk_"


@dataclass(frozen=True)
class Principal:
    user_id: int
    name: str
    role: str
    via: str  # "token" or "api_key"
    stations: frozenset[str] | None = None  # an API key scoped to stations: the only ones it may inspect at
    credential_id: int | None = None  # the token's or the API key's row

    def can(self, role: str) -> bool:
        return RANK[self.role] >= RANK[role]

    def may_use_station(self, station: str) -> bool:
        return self.stations is None or station in self.stations


def lower_role(a: str, b: str) -> str:
    return a if RANK[a] <= RANK[b] else b


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


#: what a user name may hold (the API's schema and the command line alike): it is shown in logs, audit rows and URLs
USER_NAME = r"^[A-Za-z0-9_.@-]+$"


def create_user(session: Session, name: str, password: str, role: str) -> User:
    if not re.fullmatch(USER_NAME, name) or len(name) > 100:
        raise ValueError(
            f"user name {name[:40]!r} must be 1 to 100 letters, digits, dots, dashes, underscores or @, nothing else"
        )
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


def create_api_key(
    session: Session, name: str, role: str, created_by: int, stations: list[str] | None = None
) -> tuple[str, ApiKey]:
    secret = API_KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        name=name,
        prefix=secret[:10],
        key_hash=_digest(secret),
        role=check_role(role),
        created_by=created_by,
        stations=sorted(set(stations)) if stations is not None else None,
    )
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
    return Principal(user.id, user.name, user.role, "token", credential_id=tok.id)


LAST_USED_RESOLUTION = dt.timedelta(minutes=1)


def key_digest(secret: str) -> str:
    """What an API key is stored and looked up by (never the secret itself)."""
    return _digest(secret)


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
    # never above its owner's current role: a demoted owner's keys are demoted with them
    role = lower_role(key.role, user.role)
    stations = frozenset(key.stations) if key.stations is not None else None
    return Principal(user.id, f"{user.name}/{key.name}", role, "api_key", stations, key.id)


# -- managing users and keys (admin) ------------------------------------------------------------------------------
def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.id)).all())


def add_user(session: Session, name: str, password: str, role: str, by: Principal | None = None) -> User:
    """A new user; Conflict when the name is taken."""
    try:
        with session.begin():
            user = create_user(session, name, password, role)
            audit.record(session, "user.create", by, target=f"user {name}", role=role)
            return user
    except IntegrityError:
        raise Conflict(f"user {name!r} already exists") from None


def revoke_tokens(session: Session, user_id: int) -> int:
    """End every login token of the user (signed out everywhere); how many there were."""
    return session.execute(delete(Token).where(Token.user_id == user_id)).rowcount or 0


def update_user(
    session: Session,
    by: Principal,
    user_id: int,
    role: str | None = None,
    active: bool | None = None,
    password: str | None = None,
) -> User:
    """Change a user's role, deactivate or reactivate them, or set a new password. Admins cannot demote or
    deactivate themselves, and the last active admin stays one, so an admin always remains. A new role applies to
    the user's tokens and API keys at their next request; a new password, a deactivation and a reactivation end
    every login token the user has."""
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
        changes: dict[str, object] = {}
        if role is not None and role != user.role:
            changes["role"] = [user.role, role]
            user.role = role
        if active is not None and active != user.active:
            changes["active"] = [user.active, active]
            user.active = active
        if password is not None:
            changes["password"] = "changed"
            user.password_hash = hash_password(password)
        if active is not None or password is not None:  # set, even to what it was: a fresh start
            changes["tokens_revoked"] = revoke_tokens(session, user.id)
        audit.record(session, "user.update", by, target=f"user {user.name}", **changes)
    return user


def list_keys(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.id)).all())


def add_api_key(
    session: Session, name: str, role: str, by: Principal, stations: list[str] | None = None
) -> tuple[str, ApiKey]:
    """A new API key acting for ``by`` (never above ``by``'s role, now or later), at ``stations`` only when
    given (each must exist: NotFound otherwise)."""
    from linewatch.store.tables import Station

    if RANK[role] > RANK[by.role]:
        raise Conflict(f"a key cannot have a role above yours ({by.role})")
    with session.begin():
        if stations is not None:
            known = set(session.scalars(select(Station.name).where(Station.name.in_(stations))))
            missing = sorted(set(stations) - known)
            if missing:
                raise NotFound(f"unknown station {missing[0]!r}")
        secret, key = create_api_key(session, name, role, by.user_id, stations)
        audit.record(session, "api_key.create", by, target=f"api key {key.id} {name}", role=role, stations=stations)
        return secret, key


def revoke_key(session: Session, key_id: int, by: Principal | None = None) -> None:
    with session.begin():
        key = session.get(ApiKey, key_id)
        if key is None:
            raise NotFound(f"no API key {key_id}")
        if not key.revoked:
            key.revoked = True
            audit.record(session, "api_key.revoke", by, target=f"api key {key.id} {key.name}")


def sign_in(session: Session, name: str, password: str, hours: float) -> tuple[str, dt.datetime, str] | None:
    """(token, expiry, role) for a right name and password, else None; either way an audit entry."""
    with session.begin():
        got = login(session, name, password, hours)
        if got is None:
            audit.record(session, "auth.login_failed", actor=name, via="password")
            return None
        user = session.scalar(select(User).where(User.name == name))
        audit.record(session, "auth.login", actor=user.name, actor_id=user.id, via="password")
    return got[0], got[1], user.role


def sign_out(session: Session, who: Principal) -> None:
    """End the login token ``who`` signed in with (an API key is revoked by an admin instead)."""
    if who.via != "token" or who.credential_id is None:
        raise Conflict("only a login token can sign out; an admin revokes an API key")
    with session.begin():
        session.execute(delete(Token).where(Token.id == who.credential_id))
        audit.record(session, "auth.logout", who)


class LoginThrottle:
    """Failed sign-ins counted per user name and per client address over a sliding window: past the limit, sign-
    ins are refused (429 with Retry-After) without checking the password, until the oldest counted failure is
    ``window_s`` old. A success clears the user name's failures. In memory, per process (every instance of the
    service counts its own); at most ``max_keys`` names and addresses are tracked, the least recently failing
    forgotten first."""

    def __init__(self, per_user: int, per_client: int, window_s: float, max_keys: int = 100_000):
        self.limits = {"user": per_user, "client": per_client}
        self.window_s = window_s
        self.max_keys = max_keys
        self._failures: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _keys(self, user: str, client: str | None) -> list[tuple[str, str]]:
        keys = [("user", user.lower())]
        if client:
            keys.append(("client", client))
        return keys

    def retry_after(self, user: str, client: str | None) -> int | None:
        """Seconds until a sign-in as ``user`` from ``client`` is taken again; None when it is taken now."""
        t = time.monotonic()
        wait = 0.0
        with self._lock:
            for key in self._keys(user, client):
                times = self._failures.get(key)
                if not times:
                    continue
                while times and times[0] <= t - self.window_s:
                    times.popleft()
                if len(times) >= self.limits[key[0]]:
                    wait = max(wait, times[0] + self.window_s - t)
        return max(1, math.ceil(wait)) if wait > 0 else None

    def failed(self, user: str, client: str | None) -> bool:
        """Count a failed sign-in; True when it reached a limit (the next ones are refused)."""
        t = time.monotonic()
        reached = False
        with self._lock:
            for key in self._keys(user, client):
                times = self._failures.setdefault(key, deque(maxlen=self.limits[key[0]]))
                while times and times[0] <= t - self.window_s:
                    times.popleft()
                times.append(t)
                reached |= len(times) == self.limits[key[0]]
                self._failures.move_to_end(key)
            while len(self._failures) > self.max_keys:
                self._failures.popitem(last=False)
        return reached

    def succeeded(self, user: str) -> None:
        with self._lock:
            self._failures.pop(("user", user.lower()), None)


class SignIns:
    """Sign-in admission: the throttle, and a bound on password checks running at once (argon2 takes tens of
    milliseconds of CPU and 64 MiB each: 40 at once would slow every other request). Waiting for a turn happens on
    the event loop, holding no worker thread."""

    def __init__(self, settings: Settings):
        self.throttle = LoginThrottle(
            settings.login_failures_per_user, settings.login_failures_per_client, settings.login_window_s
        )
        self.concurrency = settings.login_concurrency
        self._slots: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}

    def _check(self, user: str, client: str | None) -> None:
        wait = self.throttle.retry_after(user, client)
        if wait is not None:
            raise TooManyRequests(f"too many failed sign-ins: try again in {wait} s", wait)

    @asynccontextmanager
    async def turn(self, user: str, client: str | None) -> AsyncIterator[None]:
        """A turn to check a password; TooManyRequests (429) past the limits, before and after waiting."""
        self._check(user, client)
        loop = asyncio.get_running_loop()
        slots = self._slots.get(loop)
        if slots is None:
            self._slots = {loop: asyncio.Semaphore(self.concurrency)}  # one loop serves; a new one replaces it
            slots = self._slots[loop]
        async with slots:
            self._check(user, client)  # failures counted while this one waited
            yield

    def sign_in(self, c: AppContext, user: str, password: str, client: str | None):
        """``sign_in`` counted by the throttle; (token, expiry, role) or None."""
        with c.sessions() as session:
            got = sign_in(session, user, password, c.settings.token_hours)
        if got is not None:
            self.throttle.succeeded(user)
        elif self.throttle.failed(user, client):
            with c.sessions() as session, session.begin():
                window = self.throttle.window_s
                audit.record(session, "auth.login_throttled", actor=user, via="password", window_s=window)
        return got
