"""Scale: many open cases with long targets, then a worker crash.

1. Raise 10,000 prevention-duty cases (config/sample: 56-day case target, working-day task
   targets, so nothing falls due during the benchmark) on a dev server that keeps its state
   in an SQLite file. Raising is throttled to keep at most a few hundred cases waiting for the
   worker, so "raised" means raised and opened (definition pinned, owners allocated, reporting
   copy written); if the budget runs out first, the rate is measured and reported instead.
2. Report the dev server's database size (with its -wal and -shm files), the store's size,
   and the worker process's resident memory (VmRSS).
3. Raise a few extra cases (bench/bench_config/herd) whose amber falls due a minute after
   they open, kill the worker with SIGKILL, start a new one, and report the time until a
   sampled case answers its `state` query and until the extra cases' ambers are written.
   Nothing may be lost: every case still running, every amber written once.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.common import (
    REPO,
    SAMPLE_STAFF,
    BenchResult,
    case_client,
    dev_server,
    file_size,
    log,
    percentile,
    render_config,
    store,
    today,
    worker_process,
    worker_trouble,
)
from bench.herd import Timeline, _window_zone, window_values
from config_files import load_and_validate
from models.messages import RaiseCase
from starter.client import CaseClient
from starter.worker_process import WorkerProcess
from store.repository import save_configuration
from worker import max_cached_workflows_from_env

TOPIC = "private-tenancy-ending"
RAISED_BY = "adviser1"
BATCH = 100  # starts in flight at once
BACKLOG = 400  # raised but not yet opened, at most
SAMPLES = 5  # cases queried after the restart
CONFIG_VERSION_TTL = 2.0  # CaseworkActivities caches the configuration version this long
STALL_SECONDS = 60.0  # no case opened for this long while cases wait: the worker is stuck
# worker.py's default WORKER_MAX_CACHED_WORKFLOWS (the benchmark leaves it unset).
CACHE_DEFAULT = max_cached_workflows_from_env()
EXTRA_TARGET, EXTRA_AMBER = 30, 29  # extra cases: amber 1 minute after they open


def _read(db: Path) -> closing[sqlite3.Connection]:
    """A read-only connection to the store's file: the store's own engine begins every
    transaction with BEGIN IMMEDIATE, which would take the write lock from the worker."""
    return closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5))


def _count(db: Path, sql: str) -> int:
    with _read(db) as conn:
        return int(conn.execute(sql).fetchone()[0] or 0)


async def raise_throttled(
    client: CaseClient, db: Path, prefix: str, cases: int, budget: float
) -> tuple[int, int, float, list[tuple[float, int]]]:
    """Raise up to `cases`, keeping at most BACKLOG unopened, for at most `budget` seconds;
    then wait for the backlog to open. Returns (raised, opened, seconds, progress samples)."""
    raised = 0
    opened = 0
    failures = 0
    progress: list[tuple[float, int]] = []
    t0 = time.monotonic()

    async def one(i: int) -> bool:
        try:
            await client.raise_case(
                RaiseCase(reference=f"{prefix}-{i:06d}", topic=TOPIC, raised_by=RAISED_BY)
            )
            return True
        except Exception as err:
            log(f"scale: raise {i} failed: {err!r}")
            return False

    while raised < cases and time.monotonic() - t0 < budget:
        opened = _count(db, "SELECT COUNT(*) FROM cases")
        progress.append((time.monotonic() - t0, opened))
        if stalled(progress):
            break
        room = min(BATCH, cases - raised, BACKLOG - (raised - opened))
        if room <= 0:
            await asyncio.sleep(0.2)
            continue
        done = await asyncio.gather(*(one(raised + k) for k in range(room)))
        failures += done.count(False)
        raised += room
    # The backlog: at most BACKLOG cases, a few seconds' work.
    while opened < raised - failures and time.monotonic() - t0 < budget + 120:
        await asyncio.sleep(0.2)
        opened = _count(db, "SELECT COUNT(*) FROM cases")
        progress.append((time.monotonic() - t0, opened))
        if stalled(progress):
            break
    return raised - failures, opened, time.monotonic() - t0, progress


def stalled(progress: list[tuple[float, int]], seconds: float = STALL_SECONDS) -> bool:
    """No case opened for `seconds` (cases were waiting: the caller only asks then)."""
    if not progress or progress[-1][0] < seconds:
        return False
    now, count = progress[-1]
    before = next((c for t, c in reversed(progress) if t <= now - seconds), None)
    return before is not None and before == count


def _rate(progress: list[tuple[float, int]], lo: float, hi: float) -> float | None:
    """Cases opened per second between fractions `lo` and `hi` of the cases opened."""
    if not progress:
        return None
    total = progress[-1][1]
    a = next((p for p in progress if p[1] >= total * lo), None)
    b = next((p for p in progress if p[1] >= total * hi), None)
    if a is None or b is None or b[0] <= a[0]:
        return None
    return (b[1] - a[1]) / (b[0] - a[0])


async def timed_query(client: CaseClient, ref: str, since: float) -> float:
    """Seconds from `since` until case `ref` answers its state query."""
    while True:
        try:
            state = await client.state(ref)
            if state.reference != ref:
                raise RuntimeError(f"{ref}: answered for {state.reference}")
            return time.monotonic() - since
        except Exception as err:
            if time.monotonic() - since > 120:
                raise TimeoutError(f"{ref}: no answer to the state query: {err!r}") from err
            await asyncio.sleep(0.1)


async def _run(workdir: Path, cases: int, budget: float, quick: bool) -> BenchResult:
    result = BenchResult(
        "scale",
        "Scale: open cases, storage, worker memory, and a worker crash",
        params={"cases": cases, "raise_budget_seconds": budget},
    )
    sample_config = load_and_validate(REPO / "config" / "sample", today())
    server = dev_server(workdir / "server", persist=True)
    assert server.db_file is not None
    engine, url = store(workdir, sample_config, "sample", SAMPLE_STAFF)
    db = workdir / "casework.db"
    log_file = workdir / "worker.log"
    worker = worker_process(
        address=server.address, task_queue="bench-scale", database_url=url, log_file=log_file
    )
    restarted: WorkerProcess | None = None
    try:
        worker.start()
        idle_rss = worker.rss_mb()
        client = await case_client(server.address, "bench-scale")
        prefix = f"SC-{datetime.now(UTC):%H%M%S}"
        log(f"scale: raising up to {cases} cases within {budget:.0f} s")
        raised, opened, seconds, progress = await raise_throttled(client, db, prefix, cases, budget)
        rate = opened / seconds if seconds else 0.0
        stuck = stalled(progress)
        result.add(
            "worker stalled while raising", "yes" if stuck else "no", goal="no", met=not stuck
        )
        if stuck:
            result.notes.append(
                f"The worker stopped opening cases for {STALL_SECONDS:.0f} s with "
                f"{raised - opened} waiting; raising stopped there. See its deadlock-detector "
                "failures below; the crash test then restarts it."
            )
            # The rate counts up to the stall: when the last case opened.
            seconds = min((t for t, c in progress if c == opened), default=seconds)
            rate = opened / seconds if seconds > 0 else 0.0
        if opened < raised:
            result.notes.append(f"{raised - opened} cases were raised but had not opened in time")
        result.add("cases raised and opened", opened, goal=f"{cases:,}", met=opened >= cases)
        result.add("time to raise and open them", seconds, "s")
        result.add("raise rate (raised and opened)", rate, "/s")
        result.add("  rate over the first third", _rate(progress, 0.0, 1 / 3), "/s")
        result.add("  rate over the last third", _rate(progress, 2 / 3, 1.0), "/s")
        if opened < cases and rate and not stuck:
            projected = cases / rate
            result.notes.append(
                f"{cases:,} cases could not be raised within the {budget:.0f} s budget: "
                f"{opened:,} were, at {rate:.1f} a second, so {cases:,} would take about "
                f"{projected / 60:.1f} minutes on this machine."
            )
        server_bytes = file_size(server.db_file)
        store_bytes = file_size(db)
        rss = worker.rss_mb()
        result.add("dev server database (with -wal, -shm)", server_bytes / 2**20, "MiB")
        result.add("  per open case", server_bytes / max(opened, 1) / 1024, "KiB")
        result.add("store database (SQLite)", store_bytes / 2**20, "MiB")
        result.add("worker resident memory (VmRSS), idle at start", idle_rss, "MiB")
        result.add("worker resident memory (VmRSS), cases open", rss, "MiB")
        cached = min(opened, CACHE_DEFAULT)
        per_case = (rss - idle_rss) * 1024 / cached if rss and idle_rss and cached else None
        result.add(
            f"  per cached case (growth / min(open, cache of {CACHE_DEFAULT:,}))",
            per_case,
            "KiB",
            goal="<= 100 KiB",
            met=per_case is not None and per_case <= 100,
        )
        running = await client.client.count_workflows("ExecutionStatus = 'Running'")
        result.add("workflows running before the crash", running.count)

        # Extra cases whose amber falls due a minute after they open. Quick: an amber cannot
        # fall sooner than a minute (the smallest unit, and shorter than its target), so
        # their burst check has a zero target on a window that opens 15 s from now, after
        # the kill below: its target is exceeded at the opening.
        now = datetime.now(UTC)
        if quick:
            window = window_values(now.replace(microsecond=0) + timedelta(seconds=15))
            timeline = Timeline(EXTRA_TARGET, EXTRA_AMBER, 0, None)
            task, indicator = "burst-check", "target_exceeded"
        else:
            # Local time about midday; the window is long past.
            window = {"time_zone": _window_zone(now), "opening": "01:00:00", "closing": "01:30:00"}
            timeline = Timeline(EXTRA_TARGET, EXTRA_AMBER, 10, 9)
            task, indicator = "spread-check", "amber"
        extra_config = load_and_validate(
            render_config("herd", workdir / "config-extra", {**window, **timeline.values()}),
            today(),
        )
        # All sample cases are open (pinned), so a newer configuration changes none of them.
        save_configuration(engine, extra_config, source="bench-scale-extra")
        # The worker reads the version in force at most every 2 s (activities/casework.py).
        await asyncio.sleep(CONFIG_VERSION_TTL + 1)
        extras = 5 if quick else 20
        extra_refs = [f"{prefix}-X{i:03d}" for i in range(extras)]
        await asyncio.gather(
            *(
                client.raise_case(RaiseCase(reference=r, topic="herd-bench", raised_by=RAISED_BY))
                for r in extra_refs
            )
        )
        waited = time.monotonic()
        while _count(db, "SELECT COUNT(*) FROM cases") < opened + extras:
            if time.monotonic() - waited > 60:
                result.notes.append("the extra cases had not opened before the kill")
                break
            await asyncio.sleep(0.1)
        worker_trouble(result, worker, "first worker")
        rss_before = worker.rss_mb()
        worker.kill()
        t_kill = time.monotonic()
        killed_at = datetime.now(UTC)
        log("scale: worker killed with SIGKILL; starting a new one")
        restarted = worker_process(
            address=server.address, task_queue="bench-scale", database_url=url, log_file=log_file
        )
        startup = restarted.start()
        t_ready = time.monotonic()
        result.add("new worker ready (process start to polling)", startup, "s")
        rng = random.Random(7)
        samples = [f"{prefix}-{rng.randrange(opened):06d}" for _ in range(SAMPLES)]
        # Both measured from the kill, at once: a case that last ran on the killed worker (an
        # extra case: the server may first offer the query to that worker's sticky queue)
        # and one raised long before (evicted from the killed worker's cache).
        recent, old = await asyncio.gather(
            timed_query(client, extra_refs[0], t_kill), timed_query(client, samples[0], t_kill)
        )
        result.add("state query answered after the kill: case just run", recent, "s")
        result.add("state query answered after the kill: older case", old, "s")
        others = [await timed_query(client, ref, time.monotonic()) for ref in samples[1:]]
        result.add("  further state queries (replay), median", percentile(others, 50), "s")

        # The extra cases' ambers, due about a minute after the kill.
        deadline = time.monotonic() + (120 if quick else 240)
        rows: list[tuple[str, str, str]] = []
        while time.monotonic() < deadline:
            with _read(db) as conn:
                rows = conn.execute(
                    "SELECT case_reference, indicator_at, created_at FROM inbox "
                    "WHERE task_key = ? AND indicator = ?",
                    (task, indicator),
                ).fetchall()
            if len(rows) >= extras:
                break
            await asyncio.sleep(0.25)

        def utc(text: str) -> datetime:
            return datetime.fromisoformat(text).replace(tzinfo=UTC)

        due = [utc(a) for _, a, _ in rows]
        written = [utc(c) for _, _, c in rows]
        late = [(c - a).total_seconds() for a, c in zip(due, written, strict=True)]
        lost = extras - len({r[0] for r in rows})
        if rows:
            result.add(
                "extra cases' ambers: due after the kill",
                (min(due) - killed_at).total_seconds(),
                "s",
            )
            result.add(
                "  all written, after the kill", (max(written) - killed_at).total_seconds(), "s"
            )
            result.add("  lateness max", max(late), "s")
        result.add("  ambers written (expected)", f"{len(rows)} ({extras})")
        result.add("  lost", lost, goal="0", met=lost == 0)
        running_after = await client.client.count_workflows("ExecutionStatus = 'Running'")
        lost_cases = raised + extras - running_after.count
        result.add(
            "cases lost in the crash (not running)", lost_cases, goal="0", met=lost_cases == 0
        )
        result.add("new worker resident memory after the queries", restarted.rss_mb(), "MiB")
        worker_trouble(result, restarted, "new worker")
        result.params.update(
            {
                "worker_rss_before_kill_mib": rss_before,
                "restart_ready_after_kill_s": t_ready - t_kill,
                "sampled_cases": samples,
                "extra_cases": extras,
            }
        )
    finally:
        worker.stop()
        if restarted is not None:
            restarted.stop()
        server.stop()
        engine.dispose()
    return result


def run(
    workdir: Path, *, cases: int = 10_000, budget: float = 180, quick: bool = False
) -> BenchResult:
    """Raise up to `cases` long-running cases within `budget` seconds, measure, crash, recover."""
    workdir.mkdir(parents=True, exist_ok=True)
    return asyncio.run(asyncio.wait_for(_run(workdir, cases, budget, quick), budget + 900))
