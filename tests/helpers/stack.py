"""The stack as deployed, for the end-to-end tests: a store (SQLite file or fresh PostgreSQL
schema), its configuration loaded through the command line (`python -m starter`), and the
real worker process (`python worker.py`, configured by environment variables) on a task queue
of its own, against the session's dev server.

The worker process itself is starter.worker_process.WorkerProcess, the same one the
benchmarks use.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import uuid
import warnings
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from starter.devserver import DevServer
from starter.worker_process import WorkerProcess, worker_env
from store.db import make_engine
from tests.helpers import REPO
from tests.helpers.store import postgres_schema

SAMPLE_CONFIG = "config/sample"
BACKENDS = ("sqlite", "postgresql")
# Advisers who are never absent in config/sample (adviser2 is on leave over Christmas 2026,
# adviser5 is disabled): safe to reassign to whatever day the tests run.
AVAILABLE_ADVISERS = ("adviser1", "adviser3", "adviser4")
# How long a worker may take to exit after SIGTERM (it lets running activities finish).
STOP_TIMEOUT = 60.0


# ------------------------------------------------------------------------------ the store


@dataclass
class Store:
    """An empty store, as the processes and the test reach it."""

    backend: str
    url: str  # what the worker and the command line get as DATABASE_URL
    engine: Engine  # the test's own connection, to read what they wrote


@contextmanager
def make_store(backend: str, workdir: Path) -> Iterator[Store]:
    """An empty store: a SQLite file in `workdir`, or a fresh PostgreSQL schema (dropped
    afterwards) named in the URL, so that processes given only DATABASE_URL use it. Skips,
    saying why, when PostgreSQL is unreachable."""
    store_url: AbstractContextManager[str]
    if backend == "sqlite":
        store_url = nullcontext(f"sqlite:///{workdir / 'casework.db'}")
    elif backend == "postgresql":
        store_url = postgres_schema("e2e")
    else:
        raise ValueError(f"unknown backend {backend!r}")
    with store_url as url:
        engine = make_engine(url)
        try:
            yield Store(backend, url, engine)
        finally:
            engine.dispose()


def service_env(server: DevServer, queue: str, database_url: str) -> dict[str, str]:
    """The environment of the worker and the command line: this server, queue and store."""
    return worker_env(server.address, queue, database_url)


# ------------------------------------------------------------------------- the command line


# What CPython prints when it aborts at interpreter shutdown in a process that used the
# Temporal SDK (sdk-python issue 300; see scripts/run_pytest.sh): its work is done by then.
SDK_SHUTDOWN_ABORT = "Python runtime state: finalizing"


@dataclass
class CliRun:
    """One run of `python -m starter`."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    attempts: int = 1  # more than 1 when an earlier run aborted at shutdown after its work

    def json(self) -> Any:
        """stdout, parsed (the command ran with --json)."""
        return json.loads(self.stdout)

    @property
    def message(self) -> str:
        """stderr with whitespace collapsed (rich wraps long messages at 80 columns)."""
        return " ".join(self.stderr.split())

    @property
    def aborted_at_shutdown(self) -> bool:
        """The process aborted at interpreter shutdown (the SDK quirk), after its work."""
        return self.returncode == -signal.SIGABRT and SDK_SHUTDOWN_ABORT in self.stderr

    def __str__(self) -> str:
        return (
            f"`python -m starter {' '.join(self.args)}` exited {self.returncode}\n"
            f"stdout:\n{self.stdout}\nstderr:\n{self.stderr}"
        )


def starter_cli(
    env: dict[str, str], *args: str, retry_abort: bool = True, timeout: float = 120.0
) -> CliRun:
    """Run `python -m starter ARGS`. When the process aborts at interpreter shutdown (the SDK
    quirk above) its exit code is lost: with `retry_abort` (only for idempotent commands:
    reads, refusals, messages with an explicit --request-id to an open case, config load) it
    is run again, with a warning; otherwise the aborted run is returned, for the caller to
    judge by its output."""
    cmd = [sys.executable, "-m", "starter", *args]
    for attempt in range(1, 6):
        proc = subprocess.run(
            cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
        run = CliRun(tuple(args), proc.returncode, proc.stdout, proc.stderr, attempt)
        if run.aborted_at_shutdown:
            then = "ran it again" if retry_abort else "judged by its output"
            warnings.warn(
                f"`python -m starter {' '.join(args)}` aborted at interpreter shutdown after "
                f"its work (SIGABRT, sdk-python issue 300); {then}",
                stacklevel=1,
            )
            if retry_abort:
                continue
        return run
    raise AssertionError(f"`python -m starter {' '.join(args)}` aborted at shutdown 5 times")


async def starter_cli_async(env: dict[str, str], *args: str, retry_abort: bool = True) -> CliRun:
    """`starter_cli` on a thread, so concurrent variants do not wait for each other."""
    return await asyncio.to_thread(starter_cli, env, *args, retry_abort=retry_abort)


# ------------------------------------------------------------------------------- the worker


@contextmanager
def running_worker(env: dict[str, str], log_file: Path) -> Iterator[WorkerProcess]:
    """A started worker; on a clean exit from the block it must stop cleanly: exit code 0 on
    SIGTERM, a JSON log that ends with "worker stopped"."""
    worker = WorkerProcess(env, log_file)
    try:
        worker.start()
        yield worker
    except BaseException:
        worker.stop(STOP_TIMEOUT)
        raise
    code = worker.stop(STOP_TIMEOUT)
    assert not worker.stop_timed_out, (
        f"the worker did not stop within {STOP_TIMEOUT}s of SIGTERM:\n{worker.log_tail()}"
    )
    assert code == 0, f"the worker exited {code} on SIGTERM:\n{worker.log_tail()}"
    events = [e["event"] for e in worker.events()]
    assert events[-1] == "worker stopped", worker.log_tail()


@dataclass
class Stack:
    """One backend's store, configuration, worker and task queue."""

    store: Store
    queue: str
    env: dict[str, str]
    worker: WorkerProcess
    config_version: int


def staff_file(config: str) -> str:
    """The staff export that goes with a configuration: `<folder>/staff.csv`, or
    `<file stem>_staff.csv` next to a single-file configuration."""
    path = Path(config)
    if (REPO / path).is_dir():
        return str(path / "staff.csv")
    return str(path.with_name(f"{path.stem}_staff.csv"))


@contextmanager
def started_stack(
    backend: str,
    server: DevServer,
    workdir: Path,
    config: str = SAMPLE_CONFIG,
    extra_env: dict[str, str] | None = None,
) -> Iterator[Stack]:
    """A store on `backend` with `config` loaded by the command line, its staff imported
    into the directory (`staff_file`), and a worker process (its environment plus
    `extra_env`)."""
    workdir.mkdir(parents=True, exist_ok=True)
    with make_store(backend, workdir) as store:
        queue = f"e2e-{backend}-{uuid.uuid4().hex[:8]}"
        env = {**service_env(server, queue, store.url), **(extra_env or {})}
        # As an operator deploys: the schema first (the worker refuses a store behind it).
        upgraded = starter_cli(env, "--json", "db", "upgrade")
        assert upgraded.returncode == 0, str(upgraded)
        loaded = starter_cli(env, "--json", "config", "load", config)
        assert loaded.returncode == 0, str(loaded)
        version = loaded.json()["version"]
        assert isinstance(version, int)
        staff = starter_cli(env, "staff", "import", staff_file(config))
        assert staff.returncode == 0, str(staff)
        with running_worker(env, workdir / "worker.log") as worker:
            yield Stack(store, queue, env, worker, version)
