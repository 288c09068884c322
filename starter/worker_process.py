"""A worker in a process of its own, started, watched and stopped the way a service manager
does it: `python worker.py` configured by environment variables, its JSON log in a file.

The one implementation behind everything that needs a real worker process beside it: the
end-to-end tests (tests/helpers/stack.py) and the benchmarks (bench/common.py). It lives in
the product's `starter` package, not under tests/, so the benchmarks can use it without
importing test code. Nothing in the worker or the command line imports it.

The log file is opened for appending and each process reads only its own part of it, so a
worker started again after a crash can share its predecessor's log.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
WORKER_SCRIPT = REPO / "worker.py"
# What the worker logs once it is polling, as it appears in its JSON log (the quotes keep a
# message that merely mentions it from counting).
READY_TEXT = '"worker started"'


def worker_env(
    address: str,
    task_queue: str,
    database_url: str,
    *,
    namespace: str = "default",
    log_level: str = "INFO",
    reconcile_every_minutes: float = 0,
) -> dict[str, str]:
    """The environment of a worker (or of `python -m starter`) on this server, namespace,
    task queue and store, logging JSON. The caller's own TEMPORAL_* variables are dropped:
    a developer's settings must not redirect the process to another server.

    The worker installs no reconciliation schedule by default here (0): a schedule outlives
    the worker, and would keep starting runs on the queue of a test or benchmark long gone."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEMPORAL_")}
    env.update(
        TEMPORAL_ADDRESS=address,
        TEMPORAL_NAMESPACE=namespace,
        TEMPORAL_TASK_QUEUE=task_queue,
        DATABASE_URL=database_url,
        LOG_FORMAT="json",
        LOG_LEVEL=log_level,
        PYTHONUNBUFFERED="1",
        RECONCILE_EVERY_MINUTES=f"{reconcile_every_minutes:g}",
    )
    return env


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time process `pid` has used so far (None: not readable, as on a
    system without /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


class WorkerStartError(RuntimeError):
    """The worker exited, or did not log that it is polling, before the timeout."""


class WorkerProcess:
    """One worker process: created stopped; `start` launches it and waits until it polls.

    `argv` defaults to `python worker.py` (the product's entry point, run from the
    repository); another command must log `ready_text` once it is polling. With
    `own_session` the process gets a session of its own, so a Ctrl-C meant for the caller
    does not reach it and the caller decides how it stops.
    """

    def __init__(
        self,
        env: Mapping[str, str],
        log_file: Path,
        *,
        argv: Sequence[str] | None = None,
        ready_text: str = READY_TEXT,
        own_session: bool = False,
        cwd: Path = REPO,
    ) -> None:
        self.env = dict(env)
        self.log_file = log_file
        self.argv = list(argv) if argv is not None else [sys.executable, str(WORKER_SCRIPT)]
        self.ready_text = ready_text
        self.own_session = own_session
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_offset = 0  # where this process's part of the log begins
        self.stop_timed_out = False  # stop() had to SIGKILL it

    # ------------------------------------------------------------------ lifecycle

    def start(self, timeout: float = 90.0) -> float:
        """Launch the process and wait until it logs that it is polling; the seconds that
        took. Raises WorkerStartError, with the end of the log, when it exits first or is
        not ready within `timeout` (it is killed then: a failed start leaves no process)."""
        if self.proc is not None:
            raise RuntimeError("this worker process was already started")
        t0 = time.monotonic()
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        with self.log_file.open("ab") as out:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=self.own_session,
            )
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                raise WorkerStartError(
                    f"the worker exited with {self.proc.returncode} before it started "
                    f"({self.log_file}):\n{self.log_tail()}"
                )
            if self.ready_text in self.log_text():
                return time.monotonic() - t0
            time.sleep(0.05)
        self.kill()
        raise WorkerStartError(
            f"the worker did not start within {timeout}s ({self.log_file}):\n{self.log_tail()}"
        )

    def stop(self, timeout: float = 60.0) -> int | None:
        """SIGTERM, as a service manager stops it, then wait; the exit code (negative: ended
        by that signal; None: never started). A worker still running after `timeout` is
        killed with SIGKILL and `stop_timed_out` is set."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.stop_timed_out = True
                self.kill()
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, as a crash or an out-of-memory kill."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    # ------------------------------------------------------------------ watching

    @property
    def pid(self) -> int:
        """The process id (the worker must have been started)."""
        if self.proc is None:
            raise RuntimeError("the worker process has not been started")
        return self.proc.pid

    def running(self) -> bool:
        """Started and not yet exited."""
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        """This process's part of the log file (raises OSError when it cannot be read)."""
        with self.log_file.open("rb") as f:
            f.seek(self.log_offset)
            return f.read().decode(errors="replace")

    def log_tail(self, lines: int = 40) -> str:
        """The last `lines` lines of this process's log, for error messages."""
        try:
            text = self.log_text()
        except OSError as err:
            return f"(log not readable: {err})"
        return "\n".join(text.splitlines()[-lines:])

    def events(self) -> list[dict[str, Any]]:
        """The log records, one JSON object a line (LOG_FORMAT=json). A line that is not
        JSON raises ValueError: the log is a contract for machines."""
        return [json.loads(line) for line in self.log_text().splitlines() if line.strip()]

    def rss_mb(self) -> float | None:
        """Resident memory (VmRSS) of the running process, in MiB."""
        if not self.running():
            return None
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            return None
        return None

    def cpu_seconds(self) -> float | None:
        """User + system CPU time the running process has used so far."""
        if not self.running():
            return None
        return cpu_seconds(self.pid)
