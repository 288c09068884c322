"""A case engine on the time-skipping test server: the real workflow, the real activities and
a real SQLite store loaded with the sample configuration, in one worker per test."""

from __future__ import annotations

import concurrent.futures
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from config_files import load_and_validate
from starter.client import CaseClient
from starter.connection import CASE_DATA_CONVERTER
from starter.devserver import DevServer
from store.db import create_schema, make_engine
from store.directory import import_file
from store.repository import save_configuration
from store.schema import InboxAlert
from tests.helpers import REPO, TESTS
from tests.helpers.store import SAMPLE_DAY, STAFF_SINCE, sample_store
from tests.helpers.temporal import start_time_skipping
from worker import build_worker


@dataclass
class CaseEngine:
    env: WorkflowEnvironment
    client: CaseClient
    engine: Engine

    async def sleep_until(self, at: datetime) -> None:
        """Skip the test server's clock to `at` (it only moves forward)."""
        now = await self.env.get_current_time()
        if at > now:
            await self.env.sleep(at - now)

    def alerts(self, reference: str) -> list[tuple[str, str, int, datetime, tuple[str, ...]]]:
        """(task or 'case', indicator, occurrence, indicator instant, recipients), in order."""
        with Session(self.engine) as session:
            rows = session.scalars(
                select(InboxAlert).where(InboxAlert.case_reference == reference)
            ).all()
        grouped: dict[tuple[str, str, int, datetime], list[str]] = {}
        for r in rows:
            key = (r.task_key or "case", r.indicator, r.occurrence, r.indicator_at)
            grouped.setdefault(key, []).append(r.recipient)
        return sorted(
            ((*k, tuple(sorted(v))) for k, v in grouped.items()), key=lambda a: (a[3], a[0], a[1])
        )


@asynccontextmanager
async def case_engine(
    tmp_path: Path,
    config: str = "sample",
    directory_ttl: float = 1.0,
    sandboxed: bool | None = None,
) -> AsyncIterator[CaseEngine]:
    """A fresh time-skipping server, store and worker (each test needs its own clock).
    `directory_ttl`: how stale the worker's copy of the staff directory may be (0: none);
    `sandboxed`: run the workflow in the SDK's sandbox (default: as production does,
    `worker.workflow_runner`)."""
    env = await start_time_skipping()
    engine = make_engine(f"sqlite:///{tmp_path / 'casework.db'}")
    create_schema(engine)
    save_configuration(engine, load_and_validate(REPO / "config" / config, SAMPLE_DAY), "t")
    import_file(engine, REPO / "config" / config / "staff.csv", on=STAFF_SINCE)
    queue = f"test-{uuid.uuid4().hex[:8]}"
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=50) as executor:
            async with build_worker(
                env.client,
                engine,
                queue,
                executor,
                directory_ttl=directory_ttl,
                sandboxed=sandboxed,
            ):
                # The time-skipping server answers a history long poll only after about 20 s.
                client = CaseClient(env.client, queue, history_long_poll=False)
                yield CaseEngine(env=env, client=client, engine=engine)
    finally:
        engine.dispose()
        await env.shutdown()


async def wait_open(handle: WorkflowHandle[object, object]) -> None:
    """Wait until the case has pinned its definition and allocated its owners."""
    import asyncio

    for _ in range(200):
        if await handle.query("state") is not None:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the case did not open")


# Recorded histories, one folder per released version (tests/histories/<version>/): CI
# replays every version's, since cases opened on any release may still be running.
HISTORIES = TESTS / "histories"


async def keep_history(handle: WorkflowHandle[object, object], name: str) -> None:
    """With RECORD_HISTORIES=1, save the case's history for tests/test_replay.py, under this
    release's version (pyproject.toml): a change to the workflow that would break running
    cases then fails replay in CI."""
    import os
    from importlib.metadata import version

    if os.environ.get("RECORD_HISTORIES") != "1":
        return
    history = await handle.fetch_history()
    folder = HISTORIES / version("housing-options-casework")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(history.to_json())


@dataclass
class LiveCases:
    """A worker on the real dev server (real clock), its store and a client for its queue."""

    client: Client
    cases: CaseClient
    engine: Engine
    queue: str


@asynccontextmanager
async def live_cases(
    tmp_path: Path,
    server: DevServer,
    executor: concurrent.futures.Executor,
    prefix: str,
) -> AsyncIterator[LiveCases]:
    """A SQLite store loaded with the sample configuration as of today, and an in-process
    worker on its own task queue of `server`, for tests that need the real server (continue
    as new, payload limits) rather than the time-skipping one."""
    engine = sample_store(tmp_path)
    client = await Client.connect(server.address, data_converter=CASE_DATA_CONVERTER)
    queue = f"{prefix}-{uuid.uuid4().hex[:8]}"
    try:
        async with build_worker(client, engine, queue, executor):
            yield LiveCases(client, CaseClient(client, queue), engine, queue)
    finally:
        engine.dispose()
