"""The bare reference for the herd benchmark: a workflow that only sleeps to an instant and
then runs one activity that writes one row to an SQLite file. The herd benchmark starts
thousands of them with the same instant, on the same dev server as its cases and with a
worker process of the same shape, and compares the case engine's drain rate with theirs: what
is left between the two is the case workflow's own work per alert.

Its worker mirrors `worker.build_worker` as bench/trivial_workflow.py does: the same sandboxed
runner and passthrough modules, a synchronous activity on a thread pool of 50, 50 concurrent
activities, the same cache size, logs configured the same way. The row is written as the
store writes (WAL, synchronous=NORMAL, BEGIN IMMEDIATE, a busy timeout), one connection per
activity thread, with `created_at` taken before the write as the inbox takes it.

    python -m bench.bare_herd      # a worker; settings from the environment, BARE_HERD_DB

Only temporalio is imported at module level: the sandbox re-imports this module for every run.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from temporalio import activity, workflow

WORKFLOW_NAME = "BenchBareAlert"
DB_ENV = "BARE_HERD_DB"
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS alerts (id INTEGER PRIMARY KEY, workflow_id TEXT NOT NULL "
    "UNIQUE, due_at TEXT NOT NULL, created_at TEXT NOT NULL)"
)


@dataclass
class BareAlert:
    """Sleep until `due_at` (ISO 8601, UTC), then write one row for `key`."""

    key: str
    due_at: str


_local = threading.local()


def _connection() -> sqlite3.Connection:
    conn: sqlite3.Connection | None = getattr(_local, "conn", None)
    if conn is None:
        conn = sqlite3.connect(os.environ[DB_ENV], timeout=30, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        _local.conn = conn
    return conn


@activity.defn(name="bench_bare_alert")
def write_alert(alert: BareAlert) -> None:
    """One row, once: a retry after a lost completion finds the row and writes nothing."""
    created = datetime.now(UTC).isoformat()
    conn = _connection()
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            "INSERT OR IGNORE INTO alerts (workflow_id, due_at, created_at) VALUES (?, ?, ?)",
            (alert.key, alert.due_at, created),
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


@workflow.defn(name=WORKFLOW_NAME)
class BareAlertWorkflow:
    @workflow.run
    async def run(self, alert: BareAlert) -> None:
        due = datetime.fromisoformat(alert.due_at)
        delay = due - workflow.now()
        if delay > timedelta(0):
            await workflow.sleep(delay)
        await workflow.execute_activity(
            write_alert, alert, start_to_close_timeout=timedelta(seconds=30)
        )


def create_schema(path: str) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(SCHEMA)


async def _run() -> None:
    import asyncio
    import concurrent.futures
    import signal

    import structlog
    from temporalio.worker import Worker

    from starter.connection import TemporalSettings, connect
    from worker import max_cached_workflows_from_env, sticky_timeout_from_env, workflow_runner

    settings = TemporalSettings.from_env()
    create_schema(os.environ[DB_ENV])
    client = await connect(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    with concurrent.futures.ThreadPoolExecutor(max_workers=50) as executor:
        worker = Worker(
            client,
            task_queue=settings.task_queue,
            workflows=[BareAlertWorkflow],
            activities=[write_alert],
            activity_executor=executor,
            max_concurrent_activities=50,
            max_concurrent_local_activities=50,
            max_cached_workflows=max_cached_workflows_from_env(),
            sticky_queue_schedule_to_start_timeout=sticky_timeout_from_env(),
            # The product's runner, so the reference differs from the case only in its code.
            workflow_runner=workflow_runner(),
        )
        structlog.get_logger("worker").info("worker started", task_queue=settings.task_queue)
        async with worker:
            await stop.wait()


def main() -> None:
    import asyncio

    from starter.logs import configure_logging

    configure_logging()
    asyncio.run(_run())


if __name__ == "__main__":
    main()
