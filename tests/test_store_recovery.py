"""The store recovers by itself, with no restart, from a database that was read-only, locked,
unavailable or restarted, as soon as it is back (store/db.py, "Recovery").

Real databases only: a SQLite file in tmp_path made read-only the way an operator or a full
disk would (chmod; for root, whom permissions do not bind, the immutable attribute), and the
PostgreSQL of tests/helpers/store.py with its backends terminated and a role refused logins.
The PostgreSQL cases are skipped, saying why, when the server cannot be reached.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import threading
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, exc, make_url, text

from models.activities import Alert, AlertInput
from models.case import Owner
from models.config import EscalationRuleConfig
from store import db
from store.db import create_schema, make_engine, sqlite_connection_is_stale
from store.repository import inbox, insert_alerts
from tests.helpers.store import POSTGRES_URL, postgres_schema

T0 = datetime(2026, 11, 25, 9, 30, tzinfo=UTC)
ADVISER = Owner(kind="user", key="adviser1")


class Alerts:
    """Distinct alerts for one case, one per call: each write is a new row."""

    def __init__(self) -> None:
        self.sent = 0

    def next(self) -> Alert:
        self.sent += 1
        alert = AlertInput(
            case_reference="HO-RECOVERY",
            case_topic="homeless-tonight",
            task="emergency-interview",
            task_name="Emergency interview",
            indicator="target_exceeded",
            occurrence=self.sent,
            indicator_at=T0,
            task_due_at=T0,
            task_owner=ADVISER,
            case_owner=ADVISER,
            rule=EscalationRuleConfig(key="task-owner", name="Task owner", task_owner=True),
        )
        return Alert.of(alert, ["adviser1"])


def _inserts(engine: Engine, alerts: Alerts, count: int) -> list[bool]:
    """`count` inserts in turn, as an activity and its retries would make them: whether each
    succeeded (and wrote its row)."""
    outcomes = []
    for _ in range(count):
        try:
            outcomes.append(insert_alerts(engine, alerts.next()) == 1)
        except exc.OperationalError:
            outcomes.append(False)
    return outcomes


# ------------------------------------------------------------------------------ SQLite


@contextmanager
def _not_writable(path: Path) -> Iterator[None]:
    """`path` (a file or a directory) not writable until the block ends. Skips when this
    machine cannot make it so."""
    as_root = os.geteuid() == 0
    if as_root:
        if shutil.which("chattr") is None:
            pytest.skip("running as root, and chattr (to make a file immutable) is missing")
        made = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
        if made.returncode != 0:
            pytest.skip(f"running as root, and chattr +i failed: {made.stderr.strip()}")
    else:
        mode = path.stat().st_mode
        path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        probe = path / "probe" if path.is_dir() else path
        try:
            os.close(os.open(probe, os.O_RDWR | os.O_CREAT))
        except PermissionError:
            pass
        else:
            pytest.skip(f"cannot make {path.name} read-only on this file system")
        yield
    finally:
        if as_root:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        else:
            path.chmod(mode)


def _use_connections(engine: Engine, count: int) -> None:
    """Check out `count` connections at once and read with each, so the pool holds that
    many opened now (a pool grows under load, whatever state the file is in)."""
    with ExitStack() as stack:
        for _ in range(count):
            try:
                conn = stack.enter_context(engine.connect())
                conn.execute(text("SELECT count(*) FROM inbox")).scalar_one()
            except exc.OperationalError:
                pass  # a connection that cannot even be opened is not pooled


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[tuple[Engine, Path]]:
    """A store in a SQLite file of a directory of its own, and the file's path."""
    folder = tmp_path / "store"
    folder.mkdir()
    path = folder / "casework.db"
    engine = make_engine(f"sqlite:///{path}")
    create_schema(engine)
    try:
        yield engine, path
    finally:
        engine.dispose()


@pytest.mark.parametrize("what", ["file", "directory"])
def test_sqlite_writes_again_once_the_file_is_writable(
    sqlite_store: tuple[Engine, Path], what: str
) -> None:
    engine, path = sqlite_store
    alerts = Alerts()
    assert _inserts(engine, alerts, 1) == [True]
    # Every connection is (re)opened in the bad window, as after a worker start or a pool
    # that grew in it. SQLite then opens the file read-only, silently, for the connection's
    # life: before the fix such a pooled connection failed every write until a restart.
    engine.dispose()
    with _not_writable(path if what == "file" else path.parent):
        _use_connections(engine, 3)
        assert _inserts(engine, alerts, 2) == [False, False]
        _use_connections(engine, 3)
    # Back: the next insert succeeds, at the latest at its first retry (the write that meets
    # a connection opened read-only fails, and throws away every connection pooled so far).
    outcomes = _inserts(engine, alerts, 10)
    assert outcomes[1:] == [True] * 9, outcomes
    assert len(inbox(engine, "adviser1")) == 1 + outcomes.count(True)


def test_sqlite_waits_for_a_lock_and_writes_again_after_one_outlasting_the_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "SQLITE_BUSY_TIMEOUT_SECONDS", 1)
    path = tmp_path / "casework.db"
    engine = make_engine(f"sqlite:///{path}")
    create_schema(engine)
    alerts = Alerts()
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        # A lock shorter than the busy timeout: the write waits for it.
        holder.execute("BEGIN IMMEDIATE")
        threading.Timer(0.4, holder.rollback).start()
        assert _inserts(engine, alerts, 1) == [True]
        # A lock that outlasts it: the write fails ("database is locked") and the next one,
        # once the lock is gone, succeeds on the same pool.
        holder.execute("BEGIN IMMEDIATE")
        assert _inserts(engine, alerts, 1) == [False]
        holder.rollback()
        assert _inserts(engine, alerts, 3) == [True, True, True]
    finally:
        holder.close()
        engine.dispose()
    assert len(inbox(make_engine(f"sqlite:///{path}"), "adviser1")) == 4


def test_sqlite_writes_again_once_the_database_is_back(sqlite_store: tuple[Engine, Path]) -> None:
    engine, path = sqlite_store
    alerts = Alerts()
    assert _inserts(engine, alerts, 1) == [True]
    engine.dispose()
    # The volume is gone (unmounted, renamed): nothing can be opened.
    away = path.parent.with_name("elsewhere")
    path.parent.rename(away)
    try:
        assert _inserts(engine, alerts, 2) == [False, False]
    finally:
        away.rename(path.parent)
    assert _inserts(engine, alerts, 3) == [True, True, True]


def test_only_stale_connection_errors_discard_a_sqlite_connection() -> None:
    def error(code: int) -> sqlite3.OperationalError:
        e = sqlite3.OperationalError("test")
        e.sqlite_errorcode = code
        return e

    readonly, readonly_dbmoved, ioerr_write, cantopen = 8, 8 | (4 << 8), 10 | (3 << 8), 14
    busy, locked = 5, 6
    assert all(
        sqlite_connection_is_stale(error(c)) for c in (readonly, readonly_dbmoved, ioerr_write)
    )
    assert sqlite_connection_is_stale(error(cantopen))
    # The connection is sound: the busy timeout waited, and a retry waits again.
    assert not any(sqlite_connection_is_stale(error(c)) for c in (busy, locked))
    assert not sqlite_connection_is_stale(sqlite3.OperationalError("no code"))
    assert not sqlite_connection_is_stale(ValueError("not sqlite"))


# -------------------------------------------------------------------------- PostgreSQL


def _schema_of(url: str) -> str:
    found = re.search(r"search_path%3D(\w+)", url)
    assert found is not None, url
    return found.group(1)


def _terminate(admin: Engine, where: str, **params: str) -> int:
    """Terminate the server backends matching `where` (of pg_stat_activity), as a server
    restart or an operator would: how many there were."""
    with admin.begin() as conn:
        return len(
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    f"WHERE pid <> pg_backend_pid() AND {where}"
                ),
                params,
            ).all()
        )


def test_postgresql_writes_again_after_its_connections_were_terminated() -> None:
    with postgres_schema("recovery") as url:
        name = f"recovery-{uuid.uuid4().hex[:12]}"
        engine = make_engine(url, connect_args={"application_name": name})
        admin = make_engine(POSTGRES_URL)
        try:
            create_schema(engine)
            alerts = Alerts()
            assert _inserts(engine, alerts, 1) == [True]
            _use_connections(engine, 3)
            # Every pooled connection is dead (a restart, a failover): the pre-ping replaces
            # each one as it is checked out, so not even the next write fails.
            assert _terminate(admin, "application_name = :name", name=name) == 3
            assert _inserts(engine, alerts, 5) == [True] * 5
            # Killed in the middle of a write: that write fails, the next one succeeds.
            failed = False
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
                _terminate(admin, "application_name = :name", name=name)
                try:
                    conn.execute(text("SELECT 1"))
                except exc.OperationalError:
                    failed = True
            assert failed
            assert _inserts(engine, alerts, 3) == [True] * 3
            assert len(inbox(engine, "adviser1")) == 9
        finally:
            engine.dispose()
            admin.dispose()


def test_postgresql_writes_again_once_it_accepts_logins() -> None:
    with postgres_schema("recovery") as url:
        schema = _schema_of(url)
        role = f"recovery_{uuid.uuid4().hex[:12]}"
        admin = make_engine(POSTGRES_URL)
        setup = make_engine(url)
        create_schema(setup)
        setup.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'CREATE ROLE "{role}" LOGIN'))
            conn.execute(text(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"'))
            conn.execute(text(f'GRANT ALL ON ALL TABLES IN SCHEMA "{schema}" TO "{role}"'))
            conn.execute(text(f'GRANT ALL ON ALL SEQUENCES IN SCHEMA "{schema}" TO "{role}"'))
        as_role = make_url(db.normalise_url(url)).set(username=role)
        engine = make_engine(as_role.render_as_string(hide_password=False))
        try:
            alerts = Alerts()
            assert _inserts(engine, alerts, 1) == [True]
            # The server restarts and refuses logins for a while (maintenance, a connection
            # limit): nothing can be written, and nothing broken stays pooled.
            with admin.begin() as conn:
                conn.execute(text(f'ALTER ROLE "{role}" NOLOGIN'))
            assert _terminate(admin, "usename = :role", role=role) >= 1
            assert _inserts(engine, alerts, 2) == [False, False]
            with admin.begin() as conn:
                conn.execute(text(f'ALTER ROLE "{role}" LOGIN'))
            assert _inserts(engine, alerts, 3) == [True] * 3
            assert len(inbox(engine, "adviser1")) == 4
        finally:
            engine.dispose()
            _terminate(admin, "usename = :role", role=role)
            with admin.begin() as conn:
                conn.execute(text(f'DROP OWNED BY "{role}"'))
                conn.execute(text(f'DROP ROLE "{role}"'))
            admin.dispose()
