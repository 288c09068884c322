"""Connecting to the store: SQLite by default (no server for a new user), PostgreSQL in
production (`DATABASE_URL`).

SQLite notes. The standard `sqlite3` driver, in its legacy mode, does not begin a transaction
before a SELECT, so a read followed by a write in one "transaction" is not isolated: two
allocations could read the same round-robin counter. We take transaction control from the
driver and begin every transaction with `BEGIN IMMEDIATE`, which takes SQLite's single write
lock up front: transactions are serialised (SQLite allows one writer at a time anyway) and
the busy timeout makes the others wait rather than fail. WAL mode lets readers outside a
transaction proceed meanwhile.

Recovery. The store must come back by itself, with no worker restart, once a database that
was unavailable, locked or read-only is back:

- SQLite opens a file it may not write *read-only, silently*, and such a connection stays
  read-only for life: pooled, it answered "attempt to write a readonly database" long after
  the file was writable again (measured: over five minutes, until the worker restarted).
  SQLAlchemy's SQLite dialect counts only "closed database" as a disconnect, so it handed
  that connection out again and again. We count the errors that say the connection itself
  may be stale (read-only, I/O error, cannot open: `_SQLITE_STALE_CONNECTION_CODES`) as a
  disconnect: the connection is discarded and so is every connection pooled before it (any
  of them may have been opened in the same bad window). The write that met the error fails;
  the next one (an activity's retry) gets a fresh connection. Reopening a SQLite file is
  cheap, so a pool that throws away a good connection now and then costs nothing worth
  counting; we keep the pool (rather than NullPool, a connection per checkout) because each
  new connection repeats the PRAGMAs below. Busy and locked are not disconnects: the
  connection is sound, the busy timeout has already waited, and the retry waits again.
- PostgreSQL: `pool_pre_ping` tests a pooled connection before handing it out, so a
  connection the server closed (restart, `pg_terminate_backend`, a failover) is replaced
  rather than failing the next statement; a server refusing logins fails only the attempts
  made while it refuses (nothing broken is pooled).

`tests/test_store_recovery.py` checks both with real databases.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection, ExceptionContext, make_url

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SQLITE_PATH = REPO / "var" / "casework.db"

# How long a SQLite connection waits for the write lock before "database is locked".
SQLITE_BUSY_TIMEOUT_SECONDS = 30

# SQLite's primary result codes (the low byte of an extended code such as
# SQLITE_READONLY_DBMOVED) after which a connection may be stale: opened read-only while the
# file was not writable, or left in a failed state by the file system. See "Recovery" above.
_SQLITE_STALE_CONNECTION_CODES = frozenset(
    {
        8,  # SQLITE_READONLY: opened read-only, or the file moved or was replaced (DBMOVED)
        10,  # SQLITE_IOERR: the file system failed under the connection
        14,  # SQLITE_CANTOPEN: its journal or WAL files could not be opened
    }
)


def database_url() -> str:
    """The store's URL: `DATABASE_URL`, else a SQLite file in `<repo>/var/` (created)."""
    url = os.environ.get("DATABASE_URL", "").strip()
    if url:
        return url
    DEFAULT_SQLITE_PATH.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{DEFAULT_SQLITE_PATH}"


def normalise_url(url: str) -> str:
    """`postgresql://` and `postgres://` URLs name the psycopg 3 driver explicitly
    (SQLAlchemy's default PostgreSQL driver is psycopg2, which is not installed)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for `url`, tuned per backend. Extra keyword arguments go to
    `sqlalchemy.create_engine` (`connect_args` are merged with ours)."""
    url = normalise_url(url)
    backend = make_url(url).get_backend_name()
    connect_args: dict[str, Any] = {}
    options: dict[str, Any] = {}
    if backend == "sqlite":
        # The worker runs activities on a thread pool; pooled connections move between threads.
        connect_args = {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_SECONDS}
    elif backend == "postgresql":
        # The worker runs up to 50 activities at once; most hold a connection briefly.
        options = {"pool_size": 10, "max_overflow": 40, "pool_pre_ping": True}
    connect_args.update(kwargs.pop("connect_args", {}))
    options.update(kwargs)
    engine = create_engine(url, connect_args=connect_args, **options)
    if backend == "sqlite":
        _configure_sqlite(engine)
    return engine


def sqlite_connection_is_stale(error: BaseException) -> bool:
    """Whether a sqlite3 error means the connection that raised it should be thrown away
    (see "Recovery" in the module docstring)."""
    code = getattr(error, "sqlite_errorcode", None)
    return (
        isinstance(error, sqlite3.Error)
        and isinstance(code, int)
        and code & 0xFF in _SQLITE_STALE_CONNECTION_CODES
    )


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "handle_error")
    def _on_error(context: ExceptionContext) -> None:
        # A stale connection counts as a disconnect: SQLAlchemy invalidates it and the pool.
        if sqlite_connection_is_stale(context.original_exception):
            context.is_disconnect = True

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver: we emit BEGIN ourselves (below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            if engine.url.database not in (None, "", ":memory:"):
                cursor.execute("PRAGMA journal_mode=WAL")
                # Durable at each checkpoint; the usual setting with WAL.
                cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_SECONDS * 1000}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def create_schema(engine: Engine) -> None:
    """Upgrade the database to the code's schema (idempotent): Alembic's migrations
    (`store.migrate.upgrade`), never `create_all`, so a database made here is one the next
    release's migrations know. For the demo and tests; operators run
    `python -m starter db upgrade`, and the worker and command line refuse a database behind
    the code's schema (`store.migrate.check`)."""
    from store.migrate import upgrade

    upgrade(engine)
