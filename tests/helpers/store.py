"""The store for tests: an `engine` on each backend, fresh PostgreSQL schemas, and the sample
configuration.

A pytest plugin (registered by tests/conftest.py), so a test asks for `engine` or
`sample_config` by name. SQLite is a real file in tmp_path; PostgreSQL is `TEST_POSTGRES_URL`
(default `postgresql://root@127.0.0.1:5432/test`, trust authentication), each test in a
schema of its own that is dropped afterwards. The PostgreSQL cases are skipped, saying why,
when the server cannot be reached.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from config_files import load_and_validate
from domain.planner import local_date
from models.config import Configuration
from store.db import create_schema, make_engine
from store.directory import import_file
from store.repository import save_configuration
from tests.helpers import REPO

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://root@127.0.0.1:5432/test")
# The day the sample configuration is validated on.
SAMPLE_DAY = date(2026, 11, 25)
# The day the sample staff (config/sample/staff.csv) joined their roles, in tests.
STAFF_SINCE = date(2026, 1, 1)


@cache
def postgres_unreachable() -> str | None:
    """Why PostgreSQL cannot be used (None when it can): asked once per test run."""
    probe = make_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
    try:
        with probe.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as e:
        return f"PostgreSQL not reachable at {POSTGRES_URL} (set TEST_POSTGRES_URL): {e}"
    finally:
        probe.dispose()
    return None


@contextmanager
def postgres_schema(prefix: str = "test") -> Iterator[str]:
    """A fresh, empty PostgreSQL schema, dropped afterwards; yields a URL whose connections
    use it (`options=-csearch_path=...` in the URL itself, so a process given only the URL
    as DATABASE_URL uses it too). Skips the test, saying why, when PostgreSQL is
    unreachable."""
    reason = postgres_unreachable()
    if reason is not None:
        pytest.skip(reason)
    schema = f"{prefix}_{uuid.uuid4().hex[:16]}"
    admin = make_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A store with the schema created, on each backend."""
    if request.param == "sqlite":
        eng = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
        create_schema(eng)
        try:
            yield eng
        finally:
            eng.dispose()
        return

    with postgres_schema() as url:
        eng = make_engine(url)
        try:
            create_schema(eng)
            yield eng
        finally:
            eng.dispose()


def sample_store(folder: Path) -> Engine:
    """A real SQLite store in `folder` (`casework.db`) with the sample configuration in force
    today and the sample staff in its directory (the caller disposes of the engine)."""
    engine = make_engine(f"sqlite:///{folder / 'casework.db'}")
    create_schema(engine)
    today = local_date(datetime.now(UTC))
    save_configuration(engine, load_and_validate(REPO / "config" / "sample", today), "t")
    seed_sample_staff(engine)
    return engine


def seed_sample_staff(engine: Engine, config: str = "sample") -> None:
    """The staff of config/<config>/staff.csv in the directory of `engine` (the
    configuration must be stored first: memberships name its roles)."""
    import_file(engine, REPO / "config" / config / "staff.csv", on=STAFF_SINCE)


@pytest.fixture(scope="session")
def sample_config() -> Configuration:
    """config/sample, validated."""
    return load_and_validate(REPO / "config" / "sample", SAMPLE_DAY)
