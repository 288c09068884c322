"""Fault injection on the deployed stack (issue 10): the real dev server, the real worker
process (`python worker.py`) and the store, broken on purpose while an alert herd falls due.

    python -m bench.chaos                          # every scenario, 200 cases each, one by one
    python -m bench.chaos --cases 20 --parallel    # what CI runs (tests/chaos/), ~2 minutes
    python -m bench.chaos --only worker-kill --cases 2000 --outage 60

Each scenario raises N cases whose amber falls at one instant (the herd-window calendar of
bench/bench_config/herd: minutes on a working calendar whose open hours begin after every
case has opened, so every case's amber falls due at opening + 1 minute), breaks one part of
the stack around that instant, lets it recover, and counts the inbox rows:

- worker-kill: the worker is killed with SIGKILL as the first alerts of the herd are written
  (alerts in flight: written but not reported, or not yet written), and a new worker started;
- server-kill: the dev server is killed with SIGKILL a few seconds before the herd, kept down
  for `--outage` seconds, and restarted on its database file; the worker keeps running;
- store-outage: PostgreSQL refuses the worker's role (NOLOGIN, its connections terminated)
  from a few seconds before the herd for `--outage` seconds;
- sqlite-locked: another process holds the SQLite store's write lock over the same stretch.

Reported for each: alerts expected and written, lost and doubled (both must be 0), and how
late the alerts were: after their instant, and after the stack recovered. Exit status 1 when
anything was lost or doubled, or a scenario failed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, select, text

from bench.common import (
    REPO,
    BenchResult,
    bounded,
    case_client,
    log,
    percentile,
    print_table,
    render_config,
    seed_staff,
    today,
    worker_process,
    write_json,
)
from bench.herd import amber_placeholder, window_values
from config_files import load_and_validate
from models.config import Configuration
from models.messages import RaiseCase
from starter.devserver import DevServer, start_dev_server
from starter.worker_process import WorkerProcess
from store.db import create_schema, make_engine, normalise_url
from store.repository import save_configuration
from store.schema import InboxAlert

SCENARIOS = ("worker-kill", "server-kill", "store-outage", "sqlite-locked")
TOPIC = "herd-bench"
RAISED_BY = "adviser1"  # the task owner: one inbox row per amber
TASK = "burst-check"
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://root@127.0.0.1:5432/test")
# How long the alerts may take to arrive after recovery before the missing ones count as
# lost: an alert activity in flight on a killed worker is retried after its start-to-close
# timeout (30 s), store activities back off up to a minute.
DRAIN_SECONDS = 150.0
# Seconds between the last case opening and the herd window opening.
OPEN_MARGIN = 5.0
# How soon before the herd the fault begins (server-kill, store-outage, sqlite-locked).
LEAD_SECONDS = 3.0


class ScenarioSkipped(Exception):
    """The scenario cannot run here (PostgreSQL unreachable); says why."""


@dataclass(frozen=True)
class Written:
    """One inbox row, as the measure needs it."""

    key: tuple[str, str, str, int, str]  # case, task, indicator, occurrence, recipient
    indicator_at: datetime
    created_at: datetime


class Inbox:
    """Reads the inbox without taking any lock from the worker: SQLite through a plain
    driver connection (the store's own engine begins every transaction with BEGIN
    IMMEDIATE), PostgreSQL as the administrator (the worker's role may be refused)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sqlite_path = url.removeprefix("sqlite:///") if url.startswith("sqlite") else None
        self.engine = None if self.sqlite_path else create_engine(normalise_url(url))

    def rows(self) -> list[Written]:
        """Every inbox row of the herd task."""
        if self.sqlite_path is not None:
            with closing(
                sqlite3.connect(f"file:{self.sqlite_path}?mode=ro", uri=True, timeout=5)
            ) as conn:
                found = conn.execute(
                    "SELECT case_reference, task_key, indicator, occurrence, recipient, "
                    "indicator_at, created_at FROM inbox WHERE task_key = ?",
                    (TASK,),
                ).fetchall()
            return [
                Written(
                    (c, t, i, o, r),
                    _utc(datetime.fromisoformat(a)),
                    _utc(datetime.fromisoformat(w)),
                )
                for c, t, i, o, r, a, w in found
            ]
        assert self.engine is not None
        with self.engine.connect() as conn:
            result = conn.execute(select(InboxAlert).where(InboxAlert.task_key == TASK))
            return [
                Written(
                    (r.case_reference, r.task_key, r.indicator, r.occurrence, r.recipient),
                    _utc(r.indicator_at),
                    _utc(r.created_at),
                )
                for r in result
            ]

    def count(self) -> int:
        try:
            return len(self.rows())
        except Exception:  # locked or refused while the fault lasts: not yet
            return -1

    def dispose(self) -> None:
        if self.engine is not None:
            self.engine.dispose()


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# ------------------------------------------------------------------------------ the store


@contextmanager
def sqlite_store(workdir: Path) -> Iterator[tuple[str, str, Callable[[], None]]]:
    """(worker URL, reader URL, nothing to clean up)."""
    url = f"sqlite:///{workdir / 'casework.db'}"
    yield url, url, lambda: None


@contextmanager
def postgres_store(workdir: Path) -> Iterator[tuple[str, str, Callable[[], None]]]:
    """A role and a schema of its own for the worker, so that its logins alone can be
    refused: (worker URL, administrator's URL into that schema, cleanup)."""
    admin = create_engine(normalise_url(POSTGRES_URL), connect_args={"connect_timeout": 3})
    try:
        with admin.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as err:
        admin.dispose()
        raise ScenarioSkipped(f"PostgreSQL not reachable at {POSTGRES_URL}: {err}") from None
    name = f"chaos_{uuid.uuid4().hex[:10]}"
    with admin.begin() as conn:
        conn.execute(text(f'CREATE ROLE "{name}" LOGIN'))
        conn.execute(text(f'CREATE SCHEMA "{name}" AUTHORIZATION "{name}"'))
    base, _, query = POSTGRES_URL.partition("?")
    scheme, _, rest = base.partition("://")
    host = rest.split("@", 1)[-1]
    opts = f"options=-csearch_path%3D{name}"
    worker_url = f"{scheme}://{name}@{host}?{opts}"
    reader_url = f"{POSTGRES_URL}{'&' if query else '?'}{opts}"
    try:
        yield worker_url, reader_url, lambda: None
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'ALTER ROLE "{name}" LOGIN'))
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = :n"),
                {"n": name},
            )
            conn.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
            conn.execute(text(f'DROP ROLE "{name}"'))
        admin.dispose()


def refuse_logins(role_url: str, refuse: bool) -> None:
    """PostgreSQL refuses (or accepts again) the worker's role; refusing also ends the
    connections it holds, as a database restart or failover does."""
    role = role_url.split("://", 1)[1].split("@", 1)[0]
    admin = create_engine(normalise_url(POSTGRES_URL))
    try:
        with admin.begin() as conn:
            conn.execute(text(f'ALTER ROLE "{role}" {"NOLOGIN" if refuse else "LOGIN"}'))
            if refuse:
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = :n"
                    ),
                    {"n": role},
                )
    finally:
        admin.dispose()


class SqliteLock:
    """Holds the SQLite store's write lock from another connection, as a backup tool or a
    long report would, until released."""

    def __init__(self, path: str) -> None:
        self.conn = sqlite3.connect(path, timeout=30, isolation_level=None)
        self.conn.execute("BEGIN EXCLUSIVE")

    def release(self) -> None:
        self.conn.execute("ROLLBACK")
        self.conn.close()


# ------------------------------------------------------------------------------ a scenario


def herd_config(workdir: Path, opening: datetime) -> Configuration:
    """bench/bench_config/herd with the herd at opening + 1 minute; the spread task's and the
    targets' instants fall well after any scenario is over."""
    values: dict[str, object] = {
        **window_values(opening),
        "spread_target": 120,
        "spread_amber": amber_placeholder(60),
        "burst_target": 30,
        "burst_amber": amber_placeholder(29),
    }
    return load_and_validate(render_config("herd", workdir / "config", values), today())


def _wait_until(at: datetime) -> None:
    delay = (at - datetime.now(UTC)).total_seconds()
    if delay > 0:
        time.sleep(delay)


def run_scenario(
    name: str, workdir: Path, *, cases: int, outage: float, open_rate: float = 15.0
) -> BenchResult:
    """Run scenario `name` with `cases` cases; its figures (see the module docstring)."""
    workdir.mkdir(parents=True, exist_ok=True)
    result = BenchResult(
        f"chaos {name}",
        f"Fault injection: {name}",
        params={"cases": cases, "outage_s": outage},
    )
    t_start = time.monotonic()
    open_window = max(5.0, cases / open_rate)
    opening = datetime.now(UTC).replace(microsecond=0) + timedelta(
        seconds=15 + open_window + OPEN_MARGIN
    )
    herd_at = opening + timedelta(minutes=1)
    result.params["herd_at"] = herd_at.isoformat()
    config = herd_config(workdir, opening)
    backend = "postgresql" if name == "store-outage" else "sqlite"
    make = postgres_store if backend == "postgresql" else sqlite_store
    with make(workdir) as (worker_url, reader_url, _):
        engine = make_engine(worker_url)
        create_schema(engine)
        save_configuration(engine, config, source=f"chaos-{name}")
        seed_staff(engine)
        engine.dispose()
        inbox = Inbox(reader_url)
        server = start_dev_server(workdir=workdir / "server", persist=True)
        queue = f"chaos-{name}"
        workers: list[WorkerProcess] = []

        def new_worker() -> WorkerProcess:
            w = worker_process(
                address=server.address,
                task_queue=queue,
                database_url=worker_url,
                log_file=workdir / "worker.log",
            )
            w.start()
            workers.append(w)
            return w

        try:
            new_worker()
            raised = asyncio.run(_raise_cases(server, queue, cases, name))
            result.add("cases raised", raised)
            if datetime.now(UTC) > opening:
                result.notes.append("the cases took longer to open than the window allowed")
            recovered_at = _inject(
                name,
                herd_at,
                outage,
                server,
                workers,
                new_worker,
                inbox,
                worker_url,
                reader_url,
                result,
            )
            _measure(result, inbox, raised, herd_at, recovered_at)
        finally:
            for w in workers:
                w.stop(30)
            server.stop()
            inbox.dispose()
    result.seconds = time.monotonic() - t_start
    return result


async def _raise_cases(server: DevServer, queue: str, cases: int, name: str) -> int:
    client = await case_client(server.address, queue)
    stamp = uuid.uuid4().hex[:6]

    async def one(i: int) -> None:
        ref = f"CH-{stamp}-{i:05d}"
        await client.raise_case(RaiseCase(reference=ref, topic=TOPIC, raised_by=RAISED_BY))

    errors = await bounded(range(cases), one, 50)
    for err in errors[:3]:
        log(f"chaos {name}: raise failed: {type(err).__name__}: {err}")
    return cases - len(errors)


def _inject(
    name: str,
    herd_at: datetime,
    outage: float,
    server: DevServer,
    workers: list[WorkerProcess],
    new_worker: Callable[[], WorkerProcess],
    inbox: Inbox,
    worker_url: str,
    reader_url: str,
    result: BenchResult,
) -> datetime:
    """Break the stack around the herd; when it was whole again."""
    if name == "worker-kill":
        # Kill as the first alerts land: some written, others in flight or not begun.
        _wait_until(herd_at - timedelta(seconds=1))
        give_up = herd_at + timedelta(seconds=5)
        while inbox.count() <= 0 and datetime.now(UTC) < give_up:
            time.sleep(0.02)
        workers[-1].kill()
        before = max(inbox.count(), 0)
        result.add("alerts written before the kill", before)
        log(f"chaos {name}: worker killed with {before} alerts written")
        new_worker()
        return datetime.now(UTC)
    _wait_until(herd_at - timedelta(seconds=LEAD_SECONDS))
    if name == "server-kill":
        assert server.process is not None
        server.process.kill()
        server.process.wait()
        log(f"chaos {name}: dev server killed; down for {outage:.0f} s")
        time.sleep(outage)
        server.process = None
        server.start()
        return datetime.now(UTC)
    if name == "store-outage":
        refuse_logins(worker_url, True)
        log(f"chaos {name}: PostgreSQL refuses the worker for {outage:.0f} s")
        try:
            time.sleep(outage)
        finally:
            refuse_logins(worker_url, False)
        return datetime.now(UTC)
    if name == "sqlite-locked":
        assert inbox.sqlite_path is not None
        lock = SqliteLock(inbox.sqlite_path)
        log(f"chaos {name}: SQLite write lock held for {outage:.0f} s")
        try:
            time.sleep(outage)
        finally:
            lock.release()
        return datetime.now(UTC)
    raise ValueError(f"unknown scenario {name!r}")


def _measure(
    result: BenchResult, inbox: Inbox, expected: int, herd_at: datetime, recovered: datetime
) -> None:
    deadline = time.monotonic() + DRAIN_SECONDS
    while inbox.count() < expected and time.monotonic() < deadline:
        time.sleep(0.25)
    time.sleep(2)  # a late retry that would write a second row has its chance
    rows = inbox.rows()
    keys = [r.key for r in rows]
    distinct = set(keys)
    lost = expected - len(distinct)
    doubled = len(keys) - len(distinct)
    late = [(r.created_at - r.indicator_at).total_seconds() for r in rows]
    after = [(r.created_at - max(r.indicator_at, recovered)).total_seconds() for r in rows]
    wrong_instant = sum(1 for r in rows if r.indicator_at != herd_at)
    result.add("alerts expected", expected)
    result.add("alerts written", len(keys))
    result.add("lost", lost, goal="0", met=lost == 0)
    result.add("doubled", doubled, goal="0", met=doubled == 0)
    result.add("alerts for another instant", wrong_instant, goal="0", met=wrong_instant == 0)
    result.add("recovered, after the herd instant", (recovered - herd_at).total_seconds(), "s")
    result.add("lateness p50", percentile(late, 50), "s")
    result.add("lateness max", max(late) if late else None, "s")
    result.add("lateness after recovery p50", percentile(after, 50), "s")
    result.add("lateness after recovery max", max(after) if after else None, "s")


def failed(result: BenchResult) -> bool:
    """Whether the scenario lost or doubled alerts, or did not run."""
    return result.error is not None or any(f.met is False for f in result.figures)


def run_all(
    names: tuple[str, ...], root: Path, *, cases: int, outage: float, parallel: bool
) -> list[BenchResult]:
    """Run the scenarios (each with a stack of its own), at once or one after another."""
    results: dict[str, BenchResult] = {}

    def one(name: str) -> None:
        try:
            results[name] = run_scenario(name, root / name, cases=cases, outage=outage)
        except ScenarioSkipped as skipped:
            r = BenchResult(f"chaos {name}", f"Fault injection: {name}")
            r.notes.append(f"skipped: {skipped}")
            results[name] = r
        except Exception as err:
            traceback.print_exc()
            results[name] = BenchResult(
                f"chaos {name}", f"Fault injection: {name}", error=f"{type(err).__name__}: {err}"
            )
        log(f"chaos {name}: done")

    if parallel:
        threads = [threading.Thread(target=one, args=(n,)) for n in names]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    else:
        for n in names:
            one(n)
    return [results[n] for n in names]


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.split("\n")[0])
    p.add_argument("--only", action="append", choices=SCENARIOS)
    p.add_argument("--cases", type=int, default=200, help="cases per scenario")
    p.add_argument("--outage", type=float, default=10.0, help="seconds a fault lasts")
    p.add_argument("--parallel", action="store_true", help="run the scenarios at once")
    p.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "chaos.json")
    p.add_argument("--keep", action="store_true", help="keep the work folder (logs, DBs)")
    args = p.parse_args(argv)
    names = tuple(n for n in SCENARIOS if not args.only or n in args.only)
    root = Path(tempfile.mkdtemp(prefix="chaos-"))
    log(f"chaos: {', '.join(names)}; {args.cases} cases each; work folder {root}")
    results = run_all(names, root, cases=args.cases, outage=args.outage, parallel=args.parallel)
    print_table(results)
    for r in results:
        for note in r.notes:
            print(f"{r.name}: {note}")
    write_json(
        args.json,
        {"cases": args.cases, "outage": args.outage, "results": [r.to_json() for r in results]},
    )
    if args.keep:
        log(f"kept {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)
    return 1 if any(failed(r) for r in results) else 0


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # the SDK may abort at interpreter shutdown (sdk-python issue 300)
