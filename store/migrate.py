"""The store's schema, owned by Alembic (store/migrations/): upgrade a database to the code's
schema, say where a database is, refuse to run against one that is behind.

- `upgrade(engine)` brings a database to head: an empty one gets every table; one made by
  `create_all` before migrations existed gets the baseline's tables it lacks (none, for a
  database main wrote) and then every later migration. PostgreSQL upgrades hold an advisory
  lock, so two processes upgrading at once take turns.
- `check(engine)` raises `SchemaNotCurrentError`, naming the command to run, unless the
  database is at the code's head: the worker and the command line call it before anything.
- `new_revision(message)` writes a new migration by comparing the migrations' head with
  `store.schema` (docs/operations.md: `python -m starter db revision -m "what changed"`).

`python -m starter db upgrade` and `db current` are the operator's commands.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import threading
from functools import cache
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text
from sqlalchemy.engine import Connection

from store.schema import Base

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
UPGRADE_COMMAND = "python -m starter db upgrade"
# Any constant: the key of the PostgreSQL advisory lock an upgrade holds.
_PG_UPGRADE_LOCK = 7_142_014
# Alembic's `context` and `op` are module-level proxies, one per process: two migrations
# run at once on threads of one process (the chaos benchmark opens its stores side by side)
# would write through each other's connections. One at a time, then.
_ALEMBIC = threading.Lock()


class SchemaNotCurrentError(RuntimeError):
    """The database is not at the schema this code was written for."""


def _config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@cache
def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def head() -> str:
    """The revision the code's schema is at (the migrations' single head)."""
    heads = _script().get_heads()
    if len(heads) != 1:
        raise RuntimeError(
            f"the store's migrations have {len(heads)} heads ({', '.join(sorted(heads))}): "
            "each migration must revise the one before it (set its down_revision)"
        )
    return heads[0]


def revisions() -> list[str]:
    """Every migration, oldest first."""
    return [s.revision for s in reversed(list(_script().walk_revisions()))]


def _current(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def current(engine: Engine) -> str | None:
    """The revision the database is at; None for an empty or pre-migration database."""
    with engine.connect() as conn:
        return _current(conn)


def describe(revision: str | None) -> str:
    return revision if revision is not None else "no revision (empty, or made before migrations)"


def check(engine: Engine) -> None:
    """Raise `SchemaNotCurrentError`, saying what to do, unless the database is at head."""
    at = current(engine)
    wanted = head()
    if at == wanted:
        return
    if at is not None and at not in revisions():
        raise SchemaNotCurrentError(
            f"the store's schema is at {at}, which this code does not know (a newer release "
            f"upgraded it; this code needs {wanted}): run the newer release"
        )
    raise SchemaNotCurrentError(
        f"the store's schema is at {describe(at)}, this code needs {wanted}: "
        f"run `{UPGRADE_COMMAND}` (DATABASE_URL names the database)"
    )


def upgrade(engine: Engine, target: str = "head") -> str | None:
    """Upgrade the database to `target` (default the code's head); returns the revision it
    was at before. Idempotent: a database at head is left as it is."""
    with _ALEMBIC, engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_UPGRADE_LOCK})
        before = _current(conn)
        if before != head() or target != "head":
            command.upgrade(_config(conn), target)
    return before


def differences(engine: Engine) -> list[object]:
    """What differs between the database's tables and `store.schema` (empty when equal)."""
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))


def new_revision(message: str) -> Path:
    """Write a migration from what `store.schema` has that the migrations' head lacks
    (compared on a scratch SQLite database); returns its path. Review it before committing:
    autogenerate does not see renames (it writes a drop and an add)."""
    from store.db import make_engine

    if not message.strip():
        raise ValueError("a migration needs a message saying what changed (-m)")
    number = max(int(r) for r in revisions() if r.isdigit()) + 1
    with tempfile.TemporaryDirectory() as scratch:
        engine = make_engine(f"sqlite:///{Path(scratch) / 'scratch.db'}")
        try:
            upgrade(engine)
            if not differences(engine):
                raise ValueError("store.schema matches the migrations' head: nothing to migrate")
            with _ALEMBIC, engine.begin() as conn:
                command.revision(
                    _config(conn), message=message, autogenerate=True, rev_id=f"{number:04d}"
                )
        finally:
            engine.dispose()
    _script.cache_clear()
    path = next((MIGRATIONS / "versions").glob(f"{number:04d}_*.py"))
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if Path(ruff).exists():  # the project's style, so `make lint` passes as written
        subprocess.run([ruff, "format", "-q", str(path)], check=False)
        subprocess.run([ruff, "check", "--fix", "-q", str(path)], check=False)
    return path
