"""Database engine, sessions and migrations. SQLite by default, PostgreSQL in production."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, event, make_url, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from linewatch.errors import LinewatchError

MIGRATIONS = Path(__file__).parent / "migrations"
PG_CONNECT_TIMEOUT_S = 5  # seconds to give up on connecting to PostgreSQL: a request answers 503, not hangs
# A statement (or a wait for a lock) that runs longer than this is cancelled by the server: a request answers 503
# instead of holding a connection of the pool for as long as the database is stuck. Migrations are exempt.
PG_STATEMENT_TIMEOUT_MS = 30_000
# TCP keepalives and a user timeout: a connection whose server vanished (host down, network cut) is declared dead
# in about 20 s instead of the kernel's default of hours.
PG_KEEPALIVE = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 3, "keepalives_count": 3}
PG_TCP_USER_TIMEOUT_MS = 20_000
# The advisory lock key that linewatch's migrations take on PostgreSQL (any 64-bit number no other program uses).
PG_MIGRATION_LOCK = 0x6C696E6577617463  # "linewatc"
SQLITE_BUSY_TIMEOUT_S = 30  # how long a SQLite statement waits for another process's lock


class DatabaseError(LinewatchError):
    """The database is unreachable or at a schema this code does not know."""


def make_engine(url: str) -> Engine:
    try:
        return _make_engine(url)
    except (ArgumentError, NoSuchModuleError, ValueError, ImportError) as e:  # ImportError: a driver not installed
        shown = f"{url.split('://', 1)[0]}://..." if "://" in url else repr(url[:40])  # no password in the message
        raise DatabaseError(
            f"the database URL {shown} cannot be used ({_one_line(e)}): expected sqlite:///PATH or "
            "postgresql+psycopg://USER@HOST:PORT/DATABASE"
        ) from None


def _make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_S})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # WAL: readers do not block the writer
            cur = dbapi_conn.cursor()
            _wal(cur)
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    connect_args = {}
    parsed = make_url(url)
    # libpq waits for an unanswering server for minutes (psycopg 3: 130 s): a database that hangs would hang
    # every request. A ``connect_timeout`` in the URL wins.
    libpq = parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() in ("psycopg", "psycopg2")
    if libpq:
        # parameters given in the URL win
        defaults = {
            "connect_timeout": PG_CONNECT_TIMEOUT_S,
            "options": f"-c statement_timeout={PG_STATEMENT_TIMEOUT_MS} -c lock_timeout={PG_STATEMENT_TIMEOUT_MS}",
            "tcp_user_timeout": PG_TCP_USER_TIMEOUT_MS,
            **PG_KEEPALIVE,
        }
        connect_args |= {k: v for k, v in defaults.items() if k not in parsed.query}
    return create_engine(
        url, pool_pre_ping=True, pool_size=10, max_overflow=20, pool_timeout=10, connect_args=connect_args
    )


def _wal(cur) -> None:
    """Switch a SQLite file to WAL. On a fresh file that several processes open at once (a service and its workers
    starting together), the switch needs the file to itself, and SQLite answers "database is locked" at once, without
    its busy wait, to the process that would otherwise deadlock: wait for the other and try again, as a busy wait
    would."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_S
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "database is locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return cfg


def _no_statement_timeout(conn) -> None:
    """For this transaction: a migration may rewrite big tables, which takes as long as it takes."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL statement_timeout = 0; SET LOCAL lock_timeout = 0")


@contextmanager
def _migration_transaction(engine: Engine) -> Iterator[Connection]:
    """The transaction a migration runs in, held by one process at a time. Service instances and workers started
    together each migrate at start; without the turn, all of them would find the schema behind and the second to
    create a table would fail. PostgreSQL: a transaction-scoped advisory lock. A SQLite file (a service and its
    worker on one data dir): an exclusive lock on a file beside it, taken before the transaction, since SQLite runs
    Alembic's DDL outside one. The lock file that cannot be opened is a DatabaseError, not a traceback."""
    path = engine.url.database if engine.dialect.name == "sqlite" else None
    with ExitStack() as stack:
        if path and path != ":memory:" and not path.startswith("file:"):
            lock = f"{path}.migrate-lock"
            try:
                f = stack.enter_context(open(lock, "a+b"))
            except OSError as e:
                raise DatabaseError(f"cannot take the migration lock {lock}: {e.strerror or e}") from None
            stack.enter_context(_file_lock(f))
        conn = stack.enter_context(engine.begin())
        _no_statement_timeout(conn)
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({PG_MIGRATION_LOCK})")
        yield conn


@contextmanager
def _file_lock(f) -> Iterator[None]:
    """An exclusive lock on the open file ``f`` while the block runs; waits for another process holding it."""
    if os.name == "nt":  # pragma: no cover - Windows plant PCs; this machine runs Linux
        import errno
        import msvcrt

        while True:
            try:
                msvcrt.locking(f.fileno(), msvcrt.LK_LOCK, 1)  # gives up after 10 s of another's lock: try again
                break
            except OSError as e:
                if e.errno != errno.EDEADLOCK:
                    raise
        try:
            yield
        finally:
            f.seek(0)
            msvcrt.locking(f.fileno(), msvcrt.LK_UNLCK, 1)
    else:
        import fcntl

        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def migrate(engine: Engine) -> str:
    """Bring the schema to this code's head revision; refuse a database migrated by newer code. Processes migrating
    one database at once take turns (an advisory lock on PostgreSQL, a file lock beside a SQLite file): the first
    upgrades, the others then find it at the head."""
    cfg = _alembic_config(engine)
    script = ScriptDirectory.from_config(cfg)
    head = script.get_current_head()
    try:
        with engine.connect() as conn:
            _no_statement_timeout(conn)
            current = MigrationContext.configure(conn).get_current_revision()
        _refuse_newer(script, current, head)
        if current != head:
            with _migration_transaction(engine) as conn:
                current = MigrationContext.configure(conn).get_current_revision()  # another process may have run it
                _refuse_newer(script, current, head)
                if current != head:
                    cfg.attributes["connection"] = conn
                    command.upgrade(cfg, "head")
    except OperationalError as e:
        raise DatabaseError(f"cannot reach the database at {engine.url!r}: {_one_line(e.orig)}") from None
    except SQLAlchemyError as e:  # reached, but not a database (a SQLite file of other bytes), or refusing the schema
        raise DatabaseError(
            f"the database at {engine.url!r} cannot be used: {_one_line(getattr(e, 'orig', None) or e)}"
        ) from None
    return head


def _refuse_newer(script: ScriptDirectory, current: str | None, head: str) -> None:
    if current is None or current == head:
        return
    try:
        script.get_revision(current)
    except Exception:
        raise DatabaseError(
            f"the database is at schema revision {current}, newer than this linewatch knows (head "
            f"{head}): upgrade linewatch, or point LINEWATCH_DATABASE_URL at another database"
        ) from None


def _one_line(error: object) -> str:
    """A driver's message on one line (libpq's span several)."""
    return " ".join(str(error).split())


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    with factory() as session, session.begin():
        yield session


def ping(engine: Engine) -> None:
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as e:
        raise DatabaseError(f"database unreachable: {type(e).__name__}") from None
