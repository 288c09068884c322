"""Throughput against the stack's own limit.

On one dev server, for the same length of time and with the same number of concurrent
starters (each a loop: start a workflow, drive it to its end, start the next):

(a) a trivial workflow with one activity (bench/trivial_workflow.py): what this dev server,
    one Python worker process and this machine can do at all;
(b) reference prevention-duty cases (config/sample): raise, then complete every path task
    in path order with updates as each opens, so the case completes by itself. SLA timers are
    armed and replaced as tasks open and close, and the reporting copy is recorded on every
    change, as in production.

Reported: workflows per second, history events per workflow (from the histories of a sample),
history events per second, and the ratio (b)/(a) of history events per second. History events
are what a Temporal cluster spends its time on; the goal is a ratio of at least 0.8, i.e. the
case workflow spends the stack's capacity about as efficiently as the simplest workflow does.

One change to config/sample: version 2 of the prevention duty starts the plan review four
weeks after the plan (a lag), and the outcome waits for every earlier task, so a real case
cannot complete within a benchmark. The benchmark removes that lag (and only that) so every
path task opens, is timed and is completed; the configuration is otherwise the sample's.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle

from bench.common import (
    REPO,
    SAMPLE_STAFF,
    BenchResult,
    CpuMeter,
    case_client,
    dev_server,
    log,
    percentile,
    store,
    today,
    worker_process,
    worker_trouble,
)
from bench.trivial_workflow import WORKFLOW_NAME
from config_files import load_and_validate
from domain.config_validation import validate_configuration
from models.config import Configuration
from models.messages import CompleteTask, RaiseCase
from starter.client import CaseClient, RequestRefusedError

TOPIC = "private-tenancy-ending"  # prevention duty
WORKFLOW_TYPE = "prevention-duty"
RAISED_BY = "adviser1"  # the case creator owns the case and every task
GOAL_RATIO = 0.8
HISTORY_SAMPLE = 5
# One workflow driven to its end should take seconds; a stuck worker must not hang the run.
WORKFLOW_TIMEOUT = 120.0


def reference_configuration() -> Configuration:
    """config/sample with the prevention duty's plan-review lag removed (see the module doc)."""
    config = load_and_validate(REPO / "config" / "sample", today())
    types = []
    for wt in config.workflow_types:
        if wt.key == WORKFLOW_TYPE:
            path = [s.model_copy(update={"lag": None}) if s.lag else s for s in wt.path]
            wt = wt.model_copy(update={"path": path})
        types.append(wt)
    config = config.model_copy(update={"workflow_types": types})
    validate_configuration(config, today())
    return config


def path_order(config: Configuration) -> list[str]:
    """The task keys of the prevention duty version in force today, in path order."""
    versions = [
        w for w in config.workflow_types if w.key == WORKFLOW_TYPE and w.in_force_on(today())
    ]
    wt = max(versions, key=lambda w: w.version)
    return [s.task for s in wt.path]


@dataclass
class Phase:
    """One closed-loop run: `concurrency` starters for `seconds` after `warmup`."""

    label: str
    completed: int = 0
    failed: int = 0
    durations: list[float] = field(default_factory=list)
    handles: list[WorkflowHandle[Any, Any]] = field(default_factory=list)
    retries: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)
    events_per_workflow: float | None = None
    event_types: dict[str, float] = field(default_factory=dict)

    @property
    def per_second(self) -> float:
        return self.completed / self.seconds if self.seconds else 0.0

    @property
    def events_per_second(self) -> float | None:
        if self.events_per_workflow is None:
            return None
        return self.per_second * self.events_per_workflow


async def closed_loop(
    phase: Phase,
    one: Callable[[int], Awaitable[WorkflowHandle[Any, Any]]],
    *,
    concurrency: int,
    seconds: float,
    warmup: float,
    meter: CpuMeter,
) -> None:
    """`concurrency` loops, each running `one(i)` back to back. Workflows that finish inside
    the measured window (after the warm-up) count; the loops stop starting new ones at its end
    and the ones in flight are allowed to finish (not counted)."""
    t_start = time.monotonic()
    window_start = t_start + warmup
    window_end = window_start + seconds
    counter = iter(range(10**9))
    fallback: list[WorkflowHandle[Any, Any]] = []

    async def loop() -> None:
        while time.monotonic() < window_end:
            i = next(counter)
            t0 = time.monotonic()
            try:
                handle = await asyncio.wait_for(one(i), WORKFLOW_TIMEOUT)
            except Exception as err:
                phase.failed += 1
                log(f"{phase.label}: workflow {i} failed: {err!r}")
                continue
            t1 = time.monotonic()
            if window_start <= t1 <= window_end:
                phase.completed += 1
                phase.durations.append(t1 - t0)
                if len(phase.handles) < HISTORY_SAMPLE and t0 >= window_start:
                    phase.handles.append(handle)
            if not fallback:
                fallback.append(handle)  # for a very short run where none qualifies

    async def start_meter() -> None:
        await asyncio.sleep(warmup)
        meter.start()

    meter_task = asyncio.create_task(start_meter())
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    await meter_task
    if not phase.handles:
        phase.handles = fallback
    phase.seconds = seconds
    phase.cpu = meter.shares()
    # meter.shares() measured until the stragglers finished; good enough as a share of cores.


async def sample_history(phase: Phase) -> None:
    counts: list[int] = []
    types: Counter[str] = Counter()
    for handle in phase.handles:
        history = await handle.fetch_history()
        counts.append(len(history.events))
        types.update(
            EventType.Name(e.event_type).removeprefix("EVENT_TYPE_") for e in history.events
        )
    if counts:
        phase.events_per_workflow = statistics.mean(counts)
        phase.event_types = {k: v / len(counts) for k, v in types.most_common()}


async def run_trivial(
    client: Client,
    task_queue: str,
    *,
    concurrency: int,
    seconds: float,
    warmup: float,
    meter: CpuMeter,
) -> Phase:
    phase = Phase("trivial")

    async def one(i: int) -> WorkflowHandle[Any, Any]:
        handle: WorkflowHandle[Any, Any] = await client.start_workflow(
            WORKFLOW_NAME, i, id=f"bench-trivial-{i}", task_queue=task_queue
        )
        await handle.result()
        return handle

    await closed_loop(
        phase, one, concurrency=concurrency, seconds=seconds, warmup=warmup, meter=meter
    )
    return phase


async def wait_opened(handle: WorkflowHandle[Any, Any]) -> None:
    """Until the case's first workflow task completed (its definition pinned, owners
    allocated: it accepts updates from then on). A long poll on the history, answered by the
    server alone: polling the case itself (a query, or an update it refuses) would spend the
    worker's time, which is what is being measured."""
    async for event in handle.fetch_history_events(wait_new_event=True):
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            return


async def complete_when_open(client: CaseClient, ref: str, task: str, phase: Phase) -> None:
    """Complete `task` as soon as it is open. Right after a raise the case has not opened yet
    (its definition is being pinned), and the validator refuses the update; try again."""
    delay = 0.05
    for _ in range(200):
        try:
            await client.complete_task(
                ref,
                CompleteTask(
                    request_id=f"{ref}-{task}", actor=RAISED_BY, task=task, late_reason="workload"
                ),
            )
            return
        except RequestRefusedError as refused:
            if refused.code not in ("CaseNotOpen", "task_not_open"):
                raise
            phase.retries[refused.code] += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
    raise TimeoutError(f"{ref}: task {task} never opened")


async def run_cases(
    client: CaseClient,
    tasks: list[str],
    run_id: str,
    *,
    concurrency: int,
    seconds: float,
    warmup: float,
    meter: CpuMeter,
) -> Phase:
    phase = Phase("cases")

    async def one(i: int) -> WorkflowHandle[Any, Any]:
        ref = f"TP-{run_id}-{i:06d}"
        handle = await client.raise_case(RaiseCase(reference=ref, topic=TOPIC, raised_by=RAISED_BY))
        await wait_opened(handle)
        for task in tasks:
            await complete_when_open(client, ref, task, phase)
        state = await handle.result()
        if state.status != "completed":
            raise RuntimeError(f"{ref} ended {state.status}")
        return handle

    await closed_loop(
        phase, one, concurrency=concurrency, seconds=seconds, warmup=warmup, meter=meter
    )
    return phase


async def _run(
    workdir: Path, seconds: float, concurrency: int, warmup: float, persist: bool
) -> BenchResult:
    result = BenchResult(
        "throughput",
        "Throughput: case workflow against a trivial one-activity workflow",
        params={
            "seconds": seconds,
            "concurrency": concurrency,
            "warmup_seconds": warmup,
            "dev_server_persisted": persist,
        },
    )
    config = reference_configuration()
    tasks = path_order(config)
    server = dev_server(workdir / "server", persist=persist)
    engine, url = store(workdir, config, "bench-reference", SAMPLE_STAFF)
    try:
        # (a) the trivial workflow, its own worker process.
        trivial_queue = "bench-trivial"
        trivial_worker = worker_process(
            address=server.address,
            task_queue=trivial_queue,
            database_url=url,
            log_file=workdir / "trivial-worker.log",
            argv=[sys.executable, "-c", "from bench.trivial_workflow import main; main()"],
        )
        trivial_worker.start()
        cases = await case_client(server.address, "bench-cases")
        log(f"throughput (a): trivial workflow, {concurrency} starters, {seconds:.0f} s")
        try:
            a = await run_trivial(
                cases.client,
                trivial_queue,
                concurrency=concurrency,
                seconds=seconds,
                warmup=warmup,
                meter=CpuMeter(trivial_worker, server),
            )
        finally:
            trivial_worker.stop()
        await sample_history(a)

        # (b) reference cases, the product's worker process.
        case_worker = worker_process(
            address=server.address,
            task_queue="bench-cases",
            database_url=url,
            log_file=workdir / "case-worker.log",
        )
        case_worker.start()
        log(f"throughput (b): reference cases, {concurrency} starters, {seconds:.0f} s")
        try:
            b = await run_cases(
                cases,
                tasks,
                str(int(time.time())),
                concurrency=concurrency,
                seconds=seconds,
                warmup=warmup,
                meter=CpuMeter(case_worker, server),
            )
        finally:
            case_worker.stop()
        worker_trouble(result, trivial_worker, "trivial worker")
        worker_trouble(result, case_worker, "case worker")
        await sample_history(b)
    finally:
        server.stop()
        engine.dispose()

    for phase, what in ((a, "trivial"), (b, "case")):
        result.add(f"{what}: workflows per second", phase.per_second, "wf/s")
        result.add(f"{what}: history events per workflow", phase.events_per_workflow, "events")
        result.add(f"{what}: history events per second", phase.events_per_second, "events/s")
        p50 = percentile(phase.durations, 50)
        result.add(f"{what}: time per workflow, p50", p50, "s")
        result.add(
            f"{what}: cores used (worker / dev server / load)",
            " / ".join(f"{phase.cpu.get(k, 0):.2f}" for k in ("worker", "dev_server", "benchmark")),
        )
        if phase.failed:
            result.add(f"{what}: failed workflows", phase.failed)
    if b.per_second:
        result.add("case: tasks completed per second (updates)", b.per_second * len(tasks), "/s")
    ratio = (
        b.events_per_second / a.events_per_second
        if a.events_per_second and b.events_per_second
        else None
    )
    result.add(
        "ratio (b)/(a), history events per second",
        ratio,
        goal=f">= {GOAL_RATIO}",
        met=ratio is not None and ratio >= GOAL_RATIO,
    )
    result.params.update(
        {
            "path": tasks,
            "update_retries": dict(b.retries),
            "event_types_trivial": a.event_types,
            "event_types_case": b.event_types,
            "completed": {"trivial": a.completed, "case": b.completed},
        }
    )
    return result


def run(
    workdir: Path,
    *,
    seconds: float = 60,
    concurrency: int = 50,
    warmup: float = 5,
    persist: bool = False,
) -> BenchResult:
    """Run both phases; returns the figures. The dev server keeps its state in memory unless
    `persist` (its SQLite file's fsyncs then bound the trivial workflow on a slow disk)."""
    workdir.mkdir(parents=True, exist_ok=True)
    cap = 2 * (seconds + warmup + WORKFLOW_TIMEOUT) + 300
    return asyncio.run(asyncio.wait_for(_run(workdir, seconds, concurrency, warmup, persist), cap))
