"""Database connections as the service makes them."""

import contextlib
import threading

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from linewatch.store import db


def test_postgres_sessions_have_statement_and_lock_timeouts(postgres):
    with postgres.database("lw_db") as url:
        engine = db.make_engine(url)
        try:
            with engine.connect() as conn:
                assert conn.execute(text("SHOW statement_timeout")).scalar() == "30s"
                assert conn.execute(text("SHOW lock_timeout")).scalar() == "30s"
                params = conn.connection.dbapi_connection.info.get_parameters()
                assert params["keepalives_idle"] == "10" and params["tcp_user_timeout"] == "20000"
        finally:
            engine.dispose()
        # settings in the URL win over the defaults
        engine = db.make_engine(url + "?options=-c%20statement_timeout%3D150")
        try:
            with engine.connect() as conn:
                assert conn.execute(text("SHOW statement_timeout")).scalar() == "150ms"
                with pytest.raises(OperationalError, match="statement timeout"):
                    conn.execute(text("SELECT pg_sleep(5)"))
        finally:
            engine.dispose()


def test_a_lock_wait_ends_in_an_error_not_a_hang(postgres, monkeypatch):
    monkeypatch.setattr(db, "PG_STATEMENT_TIMEOUT_MS", 300)
    with postgres.database("lw_db") as url:
        engine = db.make_engine(url)
        try:
            with engine.begin() as conn:
                conn.execute(text("CREATE TABLE t (id int primary key)"))
                conn.execute(text("INSERT INTO t VALUES (1)"))
            holding, release = threading.Event(), threading.Event()

            def hold():
                with engine.begin() as conn:
                    conn.execute(text("UPDATE t SET id = 1 WHERE id = 1"))
                    holding.set()
                    release.wait(10)

            holder = threading.Thread(target=hold)
            holder.start()
            holding.wait(10)
            try:
                with pytest.raises(OperationalError, match="timeout"), engine.begin() as conn:
                    conn.execute(text("UPDATE t SET id = 1 WHERE id = 1"))
            finally:
                release.set()
                holder.join()
        finally:
            engine.dispose()


def test_migrations_run_without_the_statement_timeout(postgres, monkeypatch):
    """A migration rewriting a big table may take minutes: its transaction has no statement or lock timeout."""
    from alembic import command

    seen = []
    upgrade = command.upgrade

    def spy(cfg, revision):
        conn = cfg.attributes["connection"]
        seen.append(
            (
                conn.exec_driver_sql("SHOW statement_timeout").scalar(),
                conn.exec_driver_sql("SHOW lock_timeout").scalar(),
            )
        )
        return upgrade(cfg, revision)

    monkeypatch.setattr(command, "upgrade", spy)
    with postgres.database("lw_db") as url:
        engine = db.make_engine(url)
        try:
            head = db.migrate(engine)
            assert seen == [("0", "0")]
            with engine.connect() as conn:  # other transactions keep the timeouts
                assert conn.execute(text("SHOW statement_timeout")).scalar() == "30s"
            assert db.migrate(engine) == head and len(seen) == 1  # at the head: nothing to run
        finally:
            engine.dispose()


@contextlib.contextmanager
def _engine(backend: str, request, tmp_path, name: str, at: str | None = None):
    """The engine of a fresh database of ``backend`` (a SQLite file in ``tmp_path``, or a PostgreSQL database of its
    own), its schema migrated up to revision ``at`` when given; disposed, and the database dropped, at the end."""
    from alembic import command

    with contextlib.ExitStack() as stack:
        if backend == "postgresql":
            url = stack.enter_context(request.getfixturevalue("postgres").database(name))
        else:
            url = f"sqlite:///{tmp_path / (name + '.db')}"
        engine = db.make_engine(url)
        stack.callback(engine.dispose)
        if at is not None:
            cfg = db._alembic_config(engine)
            with engine.begin() as conn:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, at)
        yield engine


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migrations_build_exactly_the_tables_the_code_declares(backend, tmp_path, request):
    """The hand-written migrations and the SQLAlchemy tables agree: autogenerate finds nothing to change."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from linewatch.store.tables import Base

    with _engine(backend, request, tmp_path, "lw_schema") as engine:
        db.migrate(engine)
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == []


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_upgrading_fills_the_reviewed_defect_type(backend, tmp_path, request):
    """Migration 0004 copies each reviewed inspection's latest review's defect type onto it."""
    with _engine(backend, request, tmp_path, "lw_upgrade", at="0003") as engine:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO stations (id, name, created_at) VALUES (1, 's', CURRENT_TIMESTAMP)"))
            conn.execute(
                text(
                    "INSERT INTO model_versions (id, name, method, backbone, image_size, status, created_at) "
                    "VALUES (1, 'm', 'patchcore', 'b', 64, 'ready', CURRENT_TIMESTAMP)"
                )
            )
            for iid, reviewed in ((1, True), (2, False)):
                conn.execute(
                    text(
                        "INSERT INTO inspections (id, station_id, model_id, image_sha256, image_phash, "
                        "heatmap_sha256, width, height, score, normalized_score, verdict, regions, latency_ms, "
                        "reviewed, created_at) VALUES (:id, 1, 1, 'a', '0', 'a', 1, 1, 0, 0, 'anomalous', '[]', "
                        "0, :rv, CURRENT_TIMESTAMP)"
                    ),
                    {"id": iid, "rv": reviewed},
                )
            for rid, dtype in ((1, "scratch"), (2, "chip")):
                conn.execute(
                    text(
                        "INSERT INTO reviews (id, inspection_id, verdict, defect_type, note, created_at) "
                        "VALUES (:id, 1, 'anomalous', :t, '', CURRENT_TIMESTAMP)"
                    ),
                    {"id": rid, "t": dtype},
                )
        db.migrate(engine)
        with engine.connect() as conn:
            got = dict(conn.execute(text("SELECT id, defect_type FROM inspections ORDER BY id")).all())
    assert got == {1: "chip", 2: None}


def test_fingerprints_are_stored_uncompressed_on_postgres_and_back_after_a_downgrade(postgres):
    """Migration 0011: PostgreSQL keeps the repeat fingerprints (pixel windows pglz cannot shrink) without trying to
    compress them; the downgrade restores the default."""
    from alembic import command

    def storage(conn) -> str:
        return conn.execute(
            text(
                "SELECT attstorage FROM pg_attribute WHERE attrelid = 'inspections'::regclass "
                "AND attname = 'image_fingerprint'"
            )
        ).scalar_one()

    with postgres.database("lw_storage") as url:
        engine = db.make_engine(url)
        try:
            db.migrate(engine)
            with engine.connect() as conn:
                assert storage(conn) == "e"
            cfg = db._alembic_config(engine)
            with engine.begin() as conn:
                cfg.attributes["connection"] = conn
                command.downgrade(cfg, "0010")
            with engine.connect() as conn:
                assert storage(conn) == "x"
        finally:
            engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_upgrading_links_drift_changes_and_keeps_one_prediction_per_cycle(backend, tmp_path, request):
    """Migration 0013: each stored drift change names the one it follows (0 for a station's first), and maintenance
    predictions that two service processes stored twice are kept once (the first), so the unique indexes hold."""
    with _engine(backend, request, tmp_path, "lw_upgrade13", at="0012") as engine:
        with engine.begin() as conn:
            run = conn.execute
            for sid in (1, 2):
                run(text(f"INSERT INTO stations (id, name, created_at) VALUES ({sid}, 's{sid}', CURRENT_TIMESTAMP)"))
            for did, sid, level in ((1, 1, "ok"), (2, 2, "ok"), (3, 1, "drift"), (4, 1, "ok")):
                run(
                    text(
                        "INSERT INTO station_drift (id, station_id, level, recent, reason, created_at) "
                        "VALUES (:id, :s, :l, 50, '', CURRENT_TIMESTAMP)"
                    ),
                    {"id": did, "s": sid, "l": level},
                )
            run(text("INSERT INTO lines (id, name, description, created_at) VALUES (1, 'L', '', CURRENT_TIMESTAMP)"))
            run(
                text(
                    "INSERT INTO machines (id, name, line_id, type, description, stations, created_at) "
                    "VALUES (1, 'm', 1, '', '', '[]', CURRENT_TIMESTAMP)"
                )
            )
            run(
                text(
                    "INSERT INTO machine_models (id, machine_id, version, kind, method, params, sensors, status, "
                    "source, created_at) VALUES (1, 1, 1, 'rul', 'x', '{}', '[]', 'ready', '{}', CURRENT_TIMESTAMP)"
                )
            )
            # cycles 1 and 2, each stored twice by two processes; cycle 1 once more by a deleted model (NULL)
            for pid, cycle, model in ((1, 1, 1), (2, 2, 1), (3, 1, 1), (4, 2, 1), (5, 1, None)):
                run(
                    text(
                        "INSERT INTO maintenance_predictions (id, machine_id, model_id, time, cycle, rul, "
                        "created_at) VALUES (:id, 1, :m, :t, :c, 1.0, CURRENT_TIMESTAMP)"
                    ),
                    {"id": pid, "m": model, "t": f"2026-12-07 00:0{cycle}:00", "c": cycle},
                )
        db.migrate(engine)
        with engine.connect() as conn:
            follows = dict(conn.execute(text("SELECT id, follows_id FROM station_drift")).all())
            kept = [r[0] for r in conn.execute(text("SELECT id FROM maintenance_predictions ORDER BY id"))]
    assert follows == {1: 0, 2: 0, 3: 1, 4: 3}
    assert kept == [1, 2, 5]


MIGRATE_WHEN_TOLD = """
import pathlib, sys, time
from linewatch.store import db
engine = db.make_engine(sys.argv[1])
here = pathlib.Path(sys.argv[2])
(here / f"ready-{sys.argv[3]}").touch()
while not (here / "go").exists():
    time.sleep(0.005)
print(db.migrate(engine))
"""


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_processes_migrating_one_database_at_once_take_turns(backend, request, tmp_path):
    """Service instances and workers started together each migrate at start: the first upgrades a fresh database,
    the others wait for it and find the schema at the head, where without the lock they failed creating tables."""
    import subprocess
    import sys
    import time

    starters = 4
    with contextlib.ExitStack() as stack:
        if backend == "postgresql":
            url = stack.enter_context(request.getfixturevalue("postgres").database("lw_together"))
        else:
            url = f"sqlite:///{tmp_path / 'data' / 'linewatch.db'}"
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", MIGRATE_WHEN_TOLD, url, str(tmp_path), str(i)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(starters)
        ]
        deadline = time.monotonic() + 60
        while len(list(tmp_path.glob("ready-*"))) < starters and time.monotonic() < deadline:
            time.sleep(0.01)
        (tmp_path / "go").touch()  # all at once, as pods of a deployment start
        outcomes = [(p.wait(120), *p.communicate()) for p in procs]
        engine = db.make_engine(url)
        try:
            with engine.connect() as conn:
                versions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        finally:
            engine.dispose()
    assert [code for code, _, _ in outcomes] == [0] * starters, [err[-600:] for _, _, err in outcomes]
    assert {out.strip() for _, out, _ in outcomes} == set(versions) and len(versions) == 1


def test_a_migration_lock_that_cannot_be_taken_is_a_one_line_error(tmp_path, request):
    """A SQLite database behind the code's schema, and its lock file not openable (here a folder in its place): the
    user gets a DatabaseError naming the lock, not an OSError's traceback."""
    with _engine("sqlite", request, tmp_path, "lw_locked", at="0012") as engine:
        (tmp_path / "lw_locked.db.migrate-lock").mkdir()
        with pytest.raises(db.DatabaseError, match=r"cannot take the migration lock .*lw_locked\.db\.migrate-lock"):
            db.migrate(engine)


def test_a_fresh_sqlite_file_another_process_is_writing_waits_to_switch_to_wal(tmp_path):
    """Several processes opening a fresh SQLite file at once (a service and its workers starting together) each switch
    it to WAL. SQLite answers "database is locked" at once, without its busy wait, to one whose switch would deadlock
    with another's write: here another connection holds the file's write lock, as that other process would, and lets
    go a moment later; the connection waits for it instead of failing the start."""
    import sqlite3

    path = tmp_path / "fresh.db"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE t (x INTEGER)")
    other.execute("BEGIN IMMEDIATE")  # holds the write lock, in the rollback journal mode of a fresh file
    threading.Timer(0.3, lambda: other.execute("COMMIT")).start()
    engine = db.make_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    finally:
        engine.dispose()
        other.close()
