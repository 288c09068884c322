"""The worker: runs case workflows and their activities.

    python worker.py            # settings from the environment (see starter/connection.py)

At start it installs (or updates) its task queue's reconciliation schedule
(starter.reconcile; RECONCILE_EVERY_MINUTES, default 5, 0 for none). Stops cleanly on
SIGINT/SIGTERM: it stops polling, lets running activities finish, and exits.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import os
import signal
from collections.abc import Callable, Sequence
from datetime import timedelta

import structlog
from sqlalchemy import Engine
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.worker import (
    PatchActivationInput,
    UnsandboxedWorkflowRunner,
    Worker,
    WorkflowRunner,
)
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities import CaseworkActivities
from activities.channels import ChannelNotifier, ChannelSettings, SettingsError, senders
from activities.delivery import DeliveryLoop
from activities.metrics import CaseMetrics
from activities.notifiers import InboxNotifier, Notifier
from activities.recipients import directory_for
from activities.reconcile import ReconcileActivities
from starter.codec import PayloadKeyError
from starter.connection import TemporalSettings, connect, reads_compact_payloads
from starter.gc_watch import CollectionWatch
from starter.logs import configure_logging
from starter.observability import HealthMonitor, ObservabilityServer, ObservabilitySettings, build
from starter.reconcile import install_schedule, interval_from_env
from store.db import database_url, make_engine
from store.directory import DirectoryCache
from store.migrate import SchemaNotCurrentError
from store.migrate import check as check_schema
from store.repository import open_cases_by_sla_status
from workflows.case_workflow import HousingOptionsCase
from workflows.reconcile import ReconcileCases

log = structlog.get_logger("worker")

# Our pure modules are deterministic: import them once per process rather than once per run.
PASSTHROUGH = ("domain", "models", "pydantic", "pydantic_core", "annotated_types")

# "1": run workflows in the SDK's sandbox (see `workflow_runner`).
SANDBOX_ENV = "WORKER_WORKFLOW_SANDBOX"


class TuningError(ValueError):
    """A worker tuning variable that is not a number in its range (the message names it)."""


def _env_int(name: str, default: int, low: int, high: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise TuningError(f"{name} must be a whole number from {low} to {high}, not {text!r}")
    return value


def max_cached_workflows_from_env() -> int:
    """`WORKER_MAX_CACHED_WORKFLOWS` (default 5000): cases a worker process keeps in memory.
    A cached case takes its next workflow task without replaying its history; each costs
    about 100-110 KiB (about 50 of them the SDK's, what any cached workflow costs) and
    130 objects the garbage collector tracks, and a full collection stops every activation for its
    length: 0.12 ms a cached case on the benchmark machine, so about 0.6 s at 5,000 and
    1.17 s measured at 10,000 (0 workflow tasks failed or over 5 s there, but past the 1 s at
    which the worker warns, `CollectionWatch`; the SDK fails an activation as deadlocked at
    2 s). Hold more open cases with more worker processes (`starter.worker_pool`), or raise
    this where the memory and the pauses are acceptable (docs/operations.md)."""
    return _env_int("WORKER_MAX_CACHED_WORKFLOWS", 5000, 1, 1_000_000)


def sticky_timeout_from_env() -> timedelta:
    """`WORKER_STICKY_QUEUE_TIMEOUT_SECONDS` (default 30): how long a case's workflow task
    waits for the worker that has the case cached before the server offers it to any worker
    (which replays the case's history to take it). At 17:00 every case's day-based ambers
    fall due at once, and one worker works through them for tens of seconds: with the SDK's
    default of 10 s, most of a herd's tasks timed out on the sticky queue and were replayed
    elsewhere, which cost more CPU than the alerts (docs/benchmarks.md). The price: after a
    worker is killed without shutting down, its cases' next tasks wait this long."""
    return timedelta(seconds=_env_int("WORKER_STICKY_QUEUE_TIMEOUT_SECONDS", 30, 1, 600))


def sandboxed_runner() -> SandboxedWorkflowRunner:
    """The SDK's workflow sandbox with our pure modules passed through: what CI replays every
    recorded history in, and what `WORKER_WORKFLOW_SANDBOX=1` runs workflows in."""
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH)
    )


def workflow_runner(sandboxed: bool | None = None) -> WorkflowRunner:
    """How the worker runs workflow code: outside the SDK's sandbox unless `sandboxed` (default:
    `WORKER_WORKFLOW_SANDBOX=1` in the environment).

    The sandbox re-executes the workflow module for every run it creates (a cached case kept
    its own copy of `workflows/case_workflow.py`, its class and its decorated handlers: about
    120 KiB and 330 Python objects a cached case) and enters itself, compiling a small block
    of code, on every activation and every payload's serialization context (about a fifth of
    the worker's Python time per alert). What it guards against is checked elsewhere: the
    workflow module imports only the standard library, temporalio and our pure modules
    (tests/test_workflow_imports.py), those modules are already passed through (unchecked by
    the sandbox whichever runner runs), and CI replays every recorded history, and runs the
    workflow tests' cases, in the sandbox too (tests/test_replay.py), so a non-deterministic
    call added to the workflow module fails there. docs/benchmarks.md has the figures."""
    if sandboxed is None:
        sandboxed = sandbox_from_env()
    return sandboxed_runner() if sandboxed else UnsandboxedWorkflowRunner()


def sandbox_from_env() -> bool:
    """Whether `WORKER_WORKFLOW_SANDBOX=1` asks for the SDK's sandbox."""
    return os.environ.get(SANDBOX_ENV, "0").strip() == "1"


def notifiers(
    engine: Engine, channels: ChannelSettings | None = None, staff: DirectoryCache | None = None
) -> list[Notifier]:
    """The channels alerts go out on, one line each: the inbox (the record and the outbox
    the others deliver from), then any further channel (see `activities.notifiers`): email
    and webhook when their settings are present (`activities.channels.ChannelSettings`)."""
    channels = channels or ChannelSettings.from_env()
    directory = directory_for(staff or DirectoryCache(engine))
    return [
        InboxNotifier(engine),
        *(ChannelNotifier(engine, channel, directory) for channel in channels.channels),
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
    metrics: CaseMetrics | None = None,
    channels: ChannelSettings | None = None,
    directory_ttl: float = 1.0,
    patch_activation_callback: Callable[[PatchActivationInput], bool] | None = None,
    sandboxed: bool | None = None,
) -> Worker:
    """A worker for the case workflow and its activities on `task_queue`, and the
    reconciliation (`ReconcileCases`) of its store; `metrics` records the product's metrics
    (activities.metrics); `channels` the email and webhook settings (default: from the
    environment); `directory_ttl`: how stale (seconds) the worker's copy of the staff
    directory may be for alerts and allocation (a message's check always sees the latest).
    `patch_activation_callback` (tests): which new `workflow.patched` ids to take, so a test
    can run a case as the code before a patch did. `sandboxed`: run workflow code in the SDK's
    sandbox (`workflow_runner`; default from the environment). Raises ValueError when
    `client` does not use the product's payload converter (`starter.connection.connect` and
    `data_converter` give it): the case sends its local activities compressed inputs that
    only it reads, so a worker without it would retry each of them for ever."""
    if not reads_compact_payloads(client):
        raise ValueError(
            "the worker's client must use the product's data converter "
            "(starter.connection.data_converter(), as connect() gives it): cases send their "
            "local activities json/zlib payloads, which its payload converter does not read"
        )
    staff = DirectoryCache(engine, ttl=directory_ttl)
    acts = CaseworkActivities(
        engine, notifiers=notifiers(engine, channels, staff), metrics=metrics, directory=staff
    )
    reconcile = ReconcileActivities(engine)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[HousingOptionsCase, ReconcileCases, *extra_workflows],
        activities=[*acts.all(), *reconcile.all()],
        activity_executor=executor,
        max_concurrent_activities=max_concurrent_activities,
        max_concurrent_local_activities=max_concurrent_activities,
        # On SIGTERM, give running activities (an alert being written) time to finish.
        graceful_shutdown_timeout=timedelta(seconds=30),
        # Cases whose timers fire together (a thundering herd of ambers) must not evict each
        # other from the cache, or every alert costs a replay of the case's history
        # (`max_cached_workflows_from_env`).
        max_cached_workflows=max_cached_workflows
        if max_cached_workflows is not None
        else max_cached_workflows_from_env(),
        sticky_queue_schedule_to_start_timeout=sticky_timeout_from_env(),
        workflow_runner=workflow_runner(sandboxed),
        patch_activation_callback=patch_activation_callback,
    )


async def run(settings: TemporalSettings | None = None) -> None:
    settings = settings or TemporalSettings.from_env()
    every = interval_from_env()
    observe = ObservabilitySettings.from_env()
    this_build = build()
    channels = ChannelSettings.from_env()
    engine = make_engine(database_url())
    # Never migrate here: an operator upgrades the schema (`python -m starter db upgrade`)
    # before starting workers of a new release; a worker behind or ahead refuses to start.
    check_schema(engine)
    client = await connect(settings, runtime=observe.sdk_runtime())
    if every is not None:
        await _install_reconciliation(client, settings.task_queue, every)
    metrics = CaseMetrics()
    metrics.build_info.labels(this_build.version, this_build.build_id).set(1)
    metrics.watch_open_cases(lambda: open_cases_by_sla_status(engine))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    with concurrent.futures.ThreadPoolExecutor(max_workers=50) as executor:
        worker = build_worker(
            client, engine, settings.task_queue, executor, metrics=metrics, channels=channels
        )
        health = HealthMonitor(
            client,
            engine,
            settings.task_queue,
            this_build,
            worker_running=lambda: worker.is_running,
        )
        server = (
            ObservabilityServer(observe.host, observe.metrics_port, metrics.registry, health)
            if observe.metrics_port is not None
            else None
        )
        # The email and webhook deliveries go out from this loop, beside the worker.
        delivery = DeliveryLoop(engine, senders(channels), channels.delivery)
        delivering = asyncio.create_task(delivery.run(stop)) if channels.channels else None
        # What start-up made (modules, the sandbox's imports, configuration) lives as long as
        # the process: moved out of the collector's generations, so a full collection walks
        # only what the cached cases keep, and pauses the worker for less.
        gc.collect()
        gc.freeze()
        # Each full collection's pause, logged and counted (what bounds the cache's size).
        watching = asyncio.create_task(CollectionWatch(metrics.registry).run(stop))
        async with worker:
            checks = asyncio.create_task(health.run(stop))
            if server is not None:
                server.start()
            log.info(
                "worker started",
                address=settings.address,
                namespace=settings.namespace,
                task_queue=settings.task_queue,
                database=engine.url.get_backend_name(),
                version=this_build.version,
                build_id=this_build.build_id,
                metrics_port=observe.metrics_port,
                sdk_metrics_port=observe.sdk_metrics_port,
                channels=["inbox", *channels.channels],
                # How workflows run here (docs/operations.md, "Worker tuning").
                max_cached_workflows=max_cached_workflows_from_env(),
                sticky_queue_timeout_seconds=sticky_timeout_from_env().total_seconds(),
                workflow_sandbox=sandbox_from_env(),
            )
            await stop.wait()
            log.info("worker stopping")
            await checks
            await watching
            if server is not None:
                server.stop()
        if delivering is not None:
            await delivering
    engine.dispose()
    log.info("worker stopped")


async def _install_reconciliation(client: Client, task_queue: str, every: timedelta) -> None:
    """The reconciliation schedule of this queue (starter.reconcile); a cluster that refuses
    it (no permission to manage schedules) still gets a worker, with a warning."""
    try:
        created = await install_schedule(client, task_queue, every)
    except RPCError as err:
        log.warning("reconciliation schedule not installed", error=err.message)
        return
    log.info(
        "reconciliation schedule installed" if created else "reconciliation schedule updated",
        every_minutes=every.total_seconds() / 60,
    )


def main() -> None:
    configure_logging()
    try:
        ChannelSettings.from_env()
        max_cached_workflows_from_env()
        sticky_timeout_from_env()
    except (SettingsError, TuningError, OSError) as e:
        # A setting (email or webhook channel, tuning) is wrong: say which, without a traceback.
        raise SystemExit(f"error: {e}") from None
    try:
        asyncio.run(run())
    except (SchemaNotCurrentError, PayloadKeyError) as e:
        log.error("worker refused to start", reason=str(e))
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
