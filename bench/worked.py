"""Worked cases: what a cached case costs once officers have worked it, and after a replay.

The other benchmarks measure cases just opened (about 10 history events). A case that has
been worked is bigger in the worker: the SDK's core keeps what it needs of every workflow
task, local activity and update for the life of the run, and a case replayed on a new
worker holds more until its next workflow tasks (docs/benchmarks.md, "A cached case grows
as it is worked").

1. Raise `cases` prevention cases (config/sample, nothing falls due during the benchmark) on
   one worker process, on an in-memory dev server; the worker's resident memory (VmRSS)
   per case opened.
2. Send each case `messages` officer updates (hold, then release, its call-back task, in
   turn), at most CONCURRENCY at once; VmRSS per message per case, and the history length.
3. Stop the worker (SIGTERM), start a new one, and query every case's `state`, which replays
   its history on the new worker; the time that takes, and VmRSS per case replayed.
4. Two more messages to every case (two new workflow tasks each); VmRSS per case again.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import (
    REPO,
    SAMPLE_STAFF,
    BenchResult,
    bounded,
    case_client,
    dev_server,
    log,
    store,
    today,
    worker_process,
    worker_trouble,
)
from config_files import load_and_validate
from models.messages import HoldTask, RaiseCase, ReleaseTask
from starter.client import CaseClient
from starter.worker_process import WorkerProcess

TOPIC = "private-tenancy-ending"  # config/sample: a 56-day case target, working-day tasks
TASK = "call-back"
ACTOR = "adviser1"
CONCURRENCY = 20  # raises, messages and replaying queries in flight at once
QUEUE = "bench-worked"
# Cases raised, worked and replayed before each measurement starts, so the worker's warm-up
# (connections, caches, threads, imports) is not counted against the measured cases.
WARMUP = 20


async def _message(client: CaseClient, ref: str, n: int) -> None:
    """Message `n` to case `ref`: even ones hold the call-back task, odd ones release it."""
    if n % 2 == 0:
        release = datetime.now(UTC) + timedelta(days=30)
        await client.hold_task(
            ref,
            HoldTask(
                request_id=f"w{n}", actor=ACTOR, task=TASK, reason="other", planned_release=release
            ),
        )
    else:
        await client.release_task(ref, ReleaseTask(request_id=f"w{n}", actor=ACTOR, task=TASK))


async def _messages(client: CaseClient, refs: list[str], first: int, count: int) -> None:
    async def work(ref: str) -> None:
        for n in range(first, first + count):
            await _message(client, ref, n)

    errors = await bounded(refs, work, CONCURRENCY)
    if errors:
        raise RuntimeError(f"{len(errors)} cases refused a message, e.g. {errors[0]!r}")


def _per_case(before: float | None, after: float | None, cases: int, per: int = 1) -> Any:
    if before is None or after is None or cases == 0:
        return None
    return (after - before) * 1024 / cases / per


async def _run(workdir: Path, cases: int, messages: int) -> BenchResult:
    result = BenchResult(
        "worked",
        "Worked cases: worker memory as officers work them, and after a replay",
        params={"cases": cases, "messages_per_case": messages, "topic": TOPIC},
    )
    config = load_and_validate(REPO / "config" / "sample", today())
    server = dev_server(workdir / "server", persist=False)
    engine, url = store(workdir, config, "sample", SAMPLE_STAFF)

    def new_worker(name: str) -> WorkerProcess:
        return worker_process(
            address=server.address,
            task_queue=QUEUE,
            database_url=url,
            log_file=workdir / f"{name}.log",
        )

    first = new_worker("worker-1")
    second: WorkerProcess | None = None
    try:
        first.start()
        client = await case_client(server.address, QUEUE)
        stamp = datetime.now(UTC).strftime("%H%M%S")
        warm = [f"WU-{stamp}-{i:05d}" for i in range(WARMUP)]
        refs = [f"WK-{stamp}-{i:05d}" for i in range(cases)]

        async def raise_one(ref: str) -> None:
            await client.raise_case(RaiseCase(reference=ref, topic=TOPIC, raised_by=ACTOR))

        async def raise_all(batch: list[str]) -> None:
            errors = await bounded(batch, raise_one, CONCURRENCY)
            if errors:
                raise RuntimeError(f"{len(errors)} raises failed, e.g. {errors[0]!r}")

        await raise_all(warm)
        await _messages(client, warm, 0, messages)
        idle = first.rss_mb()
        log(f"worked: raising {cases} cases")
        await raise_all(refs)
        opened = first.rss_mb()
        result.add(
            "worker memory per case opened (VmRSS growth / cases)",
            _per_case(idle, opened, cases),
            "KiB",
        )
        events_opened = (await client.handle(refs[0]).fetch_history()).events
        result.add("history events of a case just opened", len(events_opened))

        log(f"worked: {messages} messages to each case")
        t0 = time.monotonic()
        await _messages(client, refs, 0, messages)
        worked_in = time.monotonic() - t0
        worked = first.rss_mb()
        result.add("messages carried out per second", cases * messages / worked_in, "/s")
        result.add(
            "worker memory per message per case, cached (VmRSS growth)",
            _per_case(opened, worked, cases, messages),
            "KiB",
        )
        result.add(
            "worker memory per worked case (VmRSS growth from idle / cases)",
            _per_case(idle, worked, cases),
            "KiB",
        )
        events = len((await client.handle(refs[0]).fetch_history()).events)
        result.add("history events of a worked case", events)
        worker_trouble(result, first, "first worker")
        first.stop()

        second = new_worker("worker-2")
        second.start()
        for ref in warm:
            await client.state(ref)
        fresh = second.rss_mb()
        log(f"worked: replaying {cases} cases on a new worker")
        t0 = time.monotonic()

        async def replay(ref: str) -> None:
            await client.state(ref)

        errors = await bounded(refs, replay, CONCURRENCY)
        replay_seconds = time.monotonic() - t0
        if errors:
            result.notes.append(f"{len(errors)} state queries failed, e.g. {errors[0]!r}")
        replayed = second.rss_mb()
        result.add("replay: cases answered per second (new worker)", cases / replay_seconds, "/s")
        result.add(
            "replay: worker memory per replayed case (VmRSS growth / cases)",
            _per_case(fresh, replayed, cases),
            "KiB",
        )
        await _messages(client, warm, messages, 2)
        await _messages(client, refs, messages, 2)
        after = second.rss_mb()
        result.add(
            "  the same after two more messages each (VmRSS growth / cases)",
            _per_case(fresh, after, cases),
            "KiB",
        )
        worker_trouble(result, second, "new worker")
    finally:
        first.stop()
        if second is not None:
            second.stop()
        server.stop()
        engine.dispose()
    return result


def run(workdir: Path, *, cases: int = 300, messages: int = 12) -> BenchResult:
    """`cases` cases each worked with `messages` updates; their memory cached and replayed."""
    workdir.mkdir(parents=True, exist_ok=True)
    return asyncio.run(asyncio.wait_for(_run(workdir, cases, messages), 1800))
