"""The worker: runs case workflows and their activities.

    python worker.py            # settings from the environment (see starter/connection.py)

Stops cleanly on SIGINT/SIGTERM: it stops polling, lets running activities finish, and exits.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import signal
from collections.abc import Callable, Sequence
from datetime import timedelta

import structlog
from sqlalchemy import Engine
from temporalio.client import Client
from temporalio.worker import PatchActivationInput, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities import CaseworkActivities
from activities.notifiers import InboxNotifier, Notifier
from starter.connection import TemporalSettings, connect
from starter.logs import configure_logging
from store.db import create_schema, database_url, make_engine
from workflows.case_workflow import HousingOptionsCase

log = structlog.get_logger("worker")

# Our pure modules are deterministic: import them once per process rather than once per run.
PASSTHROUGH = ("domain", "models", "pydantic", "pydantic_core", "annotated_types")


def notifiers(engine: Engine) -> list[Notifier]:
    """The channels alerts go out on, one line each: the inbox (the record and the outbox
    the others deliver from), then any further channel (see `activities.notifiers`)."""
    return [
        InboxNotifier(engine),
    ]


def build_worker(
    client: Client,
    engine: Engine,
    task_queue: str,
    executor: concurrent.futures.Executor,
    *,
    max_concurrent_activities: int = 50,
    max_cached_workflows: int | None = None,
    extra_workflows: Sequence[type] = (),
    directory_ttl: float = 1.0,
    patch_activation_callback: Callable[[PatchActivationInput], bool] | None = None,
) -> Worker:
    """A worker for the case workflow and its activities on `task_queue`. `directory_ttl`:
    how stale (seconds) the worker's copy of the staff directory may be.
    `patch_activation_callback` (tests): which new `workflow.patched` ids to take, so a test
    can run a case as the code before a patch did."""
    acts = CaseworkActivities(engine, notifiers=notifiers(engine), directory_ttl=directory_ttl)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[HousingOptionsCase, *extra_workflows],
        activities=acts.all(),
        activity_executor=executor,
        max_concurrent_activities=max_concurrent_activities,
        max_concurrent_local_activities=max_concurrent_activities,
        # On SIGTERM, give running activities (an alert being written) time to finish.
        graceful_shutdown_timeout=timedelta(seconds=30),
        # Cases whose timers fire together (a thundering herd of ambers) must not evict each
        # other from the cache, or every alert costs a replay of the case's history. About
        # 0.5 MiB a cached case (docs/benchmarks.md); WORKER_MAX_CACHED_WORKFLOWS sets it.
        max_cached_workflows=max_cached_workflows
        if max_cached_workflows is not None
        else int(os.environ.get("WORKER_MAX_CACHED_WORKFLOWS", "1500")),
        workflow_runner=SandboxedWorkflowRunner(
            restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH)
        ),
        patch_activation_callback=patch_activation_callback,
    )


async def run(settings: TemporalSettings | None = None) -> None:
    settings = settings or TemporalSettings.from_env()
    engine = make_engine(database_url())
    create_schema(engine)
    client = await connect(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    with concurrent.futures.ThreadPoolExecutor(max_workers=50) as executor:
        worker = build_worker(client, engine, settings.task_queue, executor)
        log.info(
            "worker started",
            address=settings.address,
            namespace=settings.namespace,
            task_queue=settings.task_queue,
            database=engine.url.get_backend_name(),
        )
        async with worker:
            await stop.wait()
            log.info("worker stopping")
    engine.dispose()
    log.info("worker stopped")


def main() -> None:
    configure_logging()
    asyncio.run(run())


if __name__ == "__main__":
    main()
