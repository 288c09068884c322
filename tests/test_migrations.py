"""Alembic owns the store's schema (store/migrate.py, store/migrations/).

- A store written by main's code before migrations existed (tests/fixtures/main_store.sqlite,
  and main_store_postgresql.sql: a pg_dump of the same rows written by the same code on
  PostgreSQL) upgrades to head and keeps every row, readable through the repository.
- The migrations' head is exactly `store.schema`'s metadata on both backends: a table or
  column added to the models without its migration fails here.
- The worker and the command line refuse a store behind the code, naming the command; `db
  upgrade` and `db current` do what they say.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Column, Engine, Integer, String, Table, text

from store import migrate
from store.db import create_schema, make_engine
from store.directory import StaffDirectory, load_directory
from store.repository import (
    case_audit,
    configuration,
    inbox,
    latest_configuration,
    load_case,
    record_case,
)
from store.schema import Base
from tests.helpers import REPO
from tests.helpers.store import POSTGRES_URL, postgres_schema, postgres_unreachable

FIXTURES = REPO / "tests" / "fixtures"
# What tests/fixtures/make_main_store.py wrote, table by table.
MAIN_ROWS = {
    "config_versions": 1,
    "inbox": 4,
    "cases": 2,
    "case_tasks": 4,
    "case_audit": 6,
    "case_references": 1,
    "allocations": 2,
    "round_robin": 1,
}


def _counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            t: int(conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()) for t in MAIN_ROWS
        }


@pytest.fixture(params=["sqlite", "postgresql"])
def main_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A store as main's code left it (no alembic_version table), on each backend."""
    if request.param == "sqlite":
        path = tmp_path / "main_store.sqlite"
        shutil.copy(FIXTURES / "main_store.sqlite", path)
        engine = make_engine(f"sqlite:///{path}")
        try:
            yield engine
        finally:
            engine.dispose()
        return
    reason = postgres_unreachable()
    if reason is not None:
        pytest.skip(reason)
    schema = f"main_{uuid.uuid4().hex[:12]}"
    dump = (FIXTURES / "main_store_postgresql.sql").read_text().replace("main_store", schema)
    admin = make_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.exec_driver_sql(dump)  # creates the schema, its tables and rows
    sep = "&" if "?" in POSTGRES_URL else "?"
    engine = make_engine(f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}")
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def test_a_store_written_by_main_upgrades_to_head_and_keeps_every_row(main_store: Engine) -> None:
    assert migrate.current(main_store) is None
    assert _counts(main_store) == MAIN_ROWS
    with pytest.raises(migrate.SchemaNotCurrentError, match="python -m starter db upgrade"):
        migrate.check(main_store)

    assert migrate.upgrade(main_store) is None
    assert migrate.current(main_store) == migrate.head()
    migrate.check(main_store)
    assert migrate.differences(main_store) == []
    assert _counts(main_store) == MAIN_ROWS

    # Every row reads back through the repository as main wrote it.
    version, config = latest_configuration(main_store)
    assert version == 1 and configuration(main_store, 1) == config
    assert {t.key for t in config.topics} >= {"homeless-tonight"}
    open_case, closed_case = load_case(main_store, "HO-0001"), load_case(main_store, "HO-0002")
    assert open_case is not None and closed_case is not None
    assert (open_case.status, open_case.revision, closed_case.revision) == ("open", 3, 7)
    assert closed_case.close_reason == "Accommodation secured"
    assert [t.key for t in open_case.tasks] == ["assess", "triage"]
    assert open_case.created_at.isoformat() == "2026-11-25T09:30:00+00:00"
    audit = case_audit(main_store, "HO-0001")
    assert [(a.action, a.outcome) for a in audit] == [
        ("raise", "accepted"),
        ("complete_task", "accepted"),
        ("complete_task", "refused"),
    ]
    alerts = inbox(main_store, "manager1")
    assert sorted(a.indicator for a in alerts) == ["amber", "target_exceeded"]

    # The staff of the configuration in force are in the live directory (0005), with the
    # same roles, absences and disabled accounts, each change recorded as the migration's.
    snapshot = load_directory(main_store)
    assert config.users and set(snapshot.staff) == {u.key for u in config.users}
    for user in config.users:
        member = snapshot.staff[user.key]
        assert (member.display_name, member.disabled) == (user.display_name, user.disabled)
        assert list(member.absences) == list(user.absences)
        day = open_case.created_at.date()
        assert member.roles_on(day) == sorted(r.key for r in config.roles if user.key in r.members)
    history = StaffDirectory(main_store).history()
    assert history and {h.changed_by for h in history} == {"migration.0005"}

    # And the upgraded store takes new writes of today's code.
    assert record_case(main_store, open_case.model_copy(update={"revision": 4, "audit": []}))
    upgraded_again = migrate.upgrade(main_store)
    assert upgraded_again == migrate.head()  # idempotent: at head, nothing to do


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_migrations_head_is_exactly_store_schema(backend: str, tmp_path: Path) -> None:
    """Fails when a table, column, index or type is in store/schema.py without a migration
    (or a migration without the model): `python -m starter db revision -m ...` writes it."""
    if backend == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
        try:
            create_schema(engine)
            assert migrate.differences(engine) == []
        finally:
            engine.dispose()
        return
    with postgres_schema("migrations") as url:
        engine = make_engine(url)
        try:
            create_schema(engine)
            assert migrate.current(engine) == migrate.head()
            assert migrate.differences(engine) == []
        finally:
            engine.dispose()


def test_the_migrations_are_one_line() -> None:
    revisions = migrate.revisions()
    assert revisions[0] == "0001" and migrate.head() == revisions[-1]
    assert revisions == sorted(revisions), revisions


def test_a_forgotten_migration_is_found_and_the_one_liner_writes_it(tmp_path: Path) -> None:
    """A table added to the models with no migration: the head no longer matches the
    metadata, and `migrate.new_revision` (`python -m starter db revision -m`) writes the
    migration that creates it."""
    Table(
        "forgotten_table",
        Base.metadata,
        Column("id", Integer, primary_key=True),
        Column("name", String(50)),
    )
    written: Path | None = None
    try:
        engine = make_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
        create_schema(engine)
        assert [d for d in migrate.differences(engine) if "forgotten_table" in str(d)]
        engine.dispose()
        written = migrate.new_revision("add forgotten table")
        source = written.read_text()
        assert 'op.create_table(\n        "forgotten_table"' in source, source
        assert f'down_revision: str | Sequence[str] | None = "{migrate.revisions()[-2]}"' in source
    finally:
        Base.metadata.remove(Base.metadata.tables["forgotten_table"])
        if written is not None:
            written.unlink()
        migrate._script.cache_clear()
    with pytest.raises(ValueError, match="nothing to migrate"):
        migrate.new_revision("nothing changed")


def test_an_empty_database_upgrades_and_a_newer_one_is_refused(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        with pytest.raises(migrate.SchemaNotCurrentError, match="no revision"):
            migrate.check(engine)
        create_schema(engine)
        create_schema(engine)  # idempotent
        migrate.check(engine)
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        with pytest.raises(migrate.SchemaNotCurrentError, match="a newer release"):
            migrate.check(engine)
    finally:
        engine.dispose()


def _env(database_url: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("TEMPORAL_") and k not in ("DATABASE_URL", "DEMO_DIR")
    }
    env.update(DATABASE_URL=database_url, DEMO_DIR="/nonexistent", LOG_FORMAT="json")
    return env


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )


def test_the_worker_and_the_command_line_refuse_a_store_behind_the_code(tmp_path: Path) -> None:
    path = tmp_path / "main_store.sqlite"
    shutil.copy(FIXTURES / "main_store.sqlite", path)
    env = _env(f"sqlite:///{path}")

    worker = _run({**env, "TEMPORAL_ADDRESS": "127.0.0.1:1"}, "worker.py")
    assert worker.returncode == 2, worker
    refusal = json.loads(worker.stderr.strip().splitlines()[-1])
    assert refusal["event"] == "worker refused to start"
    assert "run `python -m starter db upgrade`" in refusal["reason"]

    inbox_run = _run(env, "-m", "starter", "--json", "inbox", "manager1")
    assert inbox_run.returncode == 1, inbox_run
    error = json.loads(inbox_run.stderr)["error"]
    assert error["code"] == "schema_not_current"
    assert "python -m starter db upgrade" in error["message"]

    behind = _run(env, "-m", "starter", "--json", "db", "current")
    assert behind.returncode == 1 and json.loads(behind.stdout)["current"] is None, behind

    upgraded = _run(env, "-m", "starter", "--json", "db", "upgrade")
    assert upgraded.returncode == 0, upgraded
    assert json.loads(upgraded.stdout)["to"] == migrate.head()
    now = _run(env, "-m", "starter", "--json", "db", "current")
    assert now.returncode == 0 and json.loads(now.stdout)["up_to_date"] is True, now
    inbox_run = _run(env, "-m", "starter", "--json", "inbox", "manager1")
    assert inbox_run.returncode == 0, inbox_run
    assert len(json.loads(inbox_run.stdout)) == 2


def test_postgresql_upgrades_serialise(tmp_path: Path) -> None:
    """Two processes upgrading one PostgreSQL store at once take turns (advisory lock)."""
    with postgres_schema("concurrent") as url:
        env = _env(url)
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "starter", "--json", "db", "upgrade"],
                cwd=REPO,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        results = [(*p.communicate(timeout=120), p.returncode) for p in procs]
        assert [r[2] for r in results] == [0, 0], results
        engine = make_engine(url)
        try:
            assert migrate.current(engine) == migrate.head()
            assert migrate.differences(engine) == []
        finally:
            engine.dispose()


def test_upgrades_on_threads_of_one_process_do_not_mix(tmp_path: Path) -> None:
    """Alembic's proxies are per process: stores upgraded side by side on threads (as the
    chaos benchmark does) each get their own tables, once."""
    engines = [make_engine(f"sqlite:///{tmp_path / f's{i}.db'}") for i in range(6)]
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
            list(pool.map(create_schema, engines))
        for engine in engines:
            assert migrate.current(engine) == migrate.head()
            assert migrate.differences(engine) == []
    finally:
        for engine in engines:
            engine.dispose()
