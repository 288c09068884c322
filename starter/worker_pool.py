"""Run N worker processes on one host and keep them running: a small supervisor.

    python -m starter.worker_pool --workers 2                 # settings from the environment
    python -m starter.worker_pool --workers 4 --health-port-base 9500 --log-dir /var/log/cw

One worker process is one Python interpreter, bound by its GIL to about one core
(docs/benchmarks.md), so a host with more cores runs more of them, all polling the same task
queue: the server spreads workflow and activity tasks over every poller. Each process is the
product's `python worker.py` with the environment of this supervisor and three differences:

- `WORKER_METRICS_PORT` = health-port-base + its slot number (0, 1, ...), so each serves its
  own `/healthz` and `/metrics` (starter/observability.py) without fighting over a port;
  `WORKER_SDK_METRICS_PORT`, when set, likewise gets + slot.
- `RECONCILE_EVERY_MINUTES=0` for every slot but the first: one process installs the
  queue's reconciliation schedule (starter/reconcile.py); the others need not rewrite it.
- Its log goes to `--log-dir/worker-<slot>.log` when given, else to this process's stdout.

The supervisor restarts a process that exits (after 1 s, doubling to 30 s while it keeps
exiting within a minute of its start), and one that stops polling: when its `/healthz` has
not answered 200 for `--unhealthy-after` seconds (default 60; a worker is given that long
after its start too), it is stopped with SIGTERM (its graceful shutdown lets running
activities finish; SIGKILL after `--stop-timeout`) and started again. That is the wedged
worker the scale benchmark met (temporalio sdk-python PR #806: after a deadlock the worker
may stop taking workflow tasks for good while its process lives on): `/healthz` fails
because the process is no longer among the task queue's pollers. SIGTERM or SIGINT to the
supervisor stops every worker the same way and then exits.

A container platform (Kubernetes, ECS, Nomad) that restarts containers and probes
`/healthz` does this job already: there, run one worker process per container and scale the
replicas; this module is for a plain host or VM under systemd.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import structlog

REPO = Path(__file__).resolve().parent.parent
WORKER_SCRIPT = REPO / "worker.py"

log = structlog.get_logger("worker_pool")

BACKOFF_START = 1.0
BACKOFF_MAX = 30.0
STABLE_AFTER = 60.0  # a process that ran this long resets the backoff


def healthz(port: int, timeout: float = 3.0) -> bool:
    """Whether the worker on `port` answers `/healthz` with 200."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=timeout) as r:
            return int(r.status) == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


@dataclass
class Slot:
    """One worker process of the pool and what the supervisor knows about it."""

    index: int
    env: dict[str, str]
    health_port: int | None
    log_path: Path | None
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    healthy_at: float = 0.0  # the last time /healthz answered 200 (or the start)
    next_start: float = 0.0
    backoff: float = BACKOFF_START
    restarts: int = 0
    _log_file: IO[bytes] | None = field(default=None, repr=False)


class WorkerPool:
    """`workers` worker processes (`argv`, default `python worker.py`), supervised."""

    def __init__(
        self,
        workers: int,
        *,
        argv: Sequence[str] | None = None,
        env: Mapping[str, str] | None = None,
        health_port_base: int | None = None,
        unhealthy_after: float = 60.0,
        stop_timeout: float = 45.0,
        log_dir: Path | None = None,
        probe: Callable[[int], bool] = healthz,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if workers < 1:
            raise ValueError("a pool needs at least one worker process")
        self.argv = list(argv) if argv is not None else [sys.executable, str(WORKER_SCRIPT)]
        self.unhealthy_after = unhealthy_after
        self.stop_timeout = stop_timeout
        self.probe = probe
        self.clock = clock
        base_env = dict(env if env is not None else os.environ)
        sdk_base = base_env.get("WORKER_SDK_METRICS_PORT", "").strip()
        self.slots: list[Slot] = []
        for i in range(workers):
            slot_env = dict(base_env)
            port = health_port_base + i if health_port_base is not None else None
            if port is not None:
                slot_env["WORKER_METRICS_PORT"] = str(port)
            if sdk_base.isdigit():
                slot_env["WORKER_SDK_METRICS_PORT"] = str(int(sdk_base) + i)
            if i > 0:
                slot_env["RECONCILE_EVERY_MINUTES"] = "0"
            log_path = log_dir / f"worker-{i}.log" if log_dir is not None else None
            self.slots.append(Slot(i, slot_env, port, log_path))
        self._stopping = False

    # ------------------------------------------------------------------ one slot

    def _start(self, slot: Slot) -> None:
        out: IO[bytes] | None = None
        if slot.log_path is not None:
            slot.log_path.parent.mkdir(parents=True, exist_ok=True)
            out = slot.log_path.open("ab")
        slot.proc = subprocess.Popen(
            self.argv,
            env=slot.env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT if out is not None else None,
            stdin=subprocess.DEVNULL,
        )
        if slot._log_file is not None:
            slot._log_file.close()
        slot._log_file = out
        now = self.clock()
        slot.started_at = now
        slot.healthy_at = now
        log.info("worker process started", slot=slot.index, pid=slot.proc.pid)

    def _stop(self, slot: Slot, reason: str) -> None:
        proc = slot.proc
        if proc is None:
            return
        if proc.poll() is None:
            log.info("stopping worker process", slot=slot.index, pid=proc.pid, reason=reason)
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                log.warning("worker process killed", slot=slot.index, pid=proc.pid)
                proc.kill()
                proc.wait()
        slot.proc = None

    def check(self, slot: Slot) -> None:
        """One look at `slot`: start it when due, restart it when it exited or stopped
        answering its health check."""
        now = self.clock()
        proc = slot.proc
        if proc is None:
            if now >= slot.next_start:
                self._start(slot)
            return
        code = proc.poll()
        if code is not None:
            ran = now - slot.started_at
            slot.backoff = BACKOFF_START if ran >= STABLE_AFTER else slot.backoff
            log.warning(
                "worker process exited",
                slot=slot.index,
                pid=proc.pid,
                exit_code=code,
                ran_seconds=round(ran, 1),
                restart_in_seconds=slot.backoff,
            )
            slot.proc = None
            slot.restarts += 1
            slot.next_start = now + slot.backoff
            slot.backoff = min(slot.backoff * 2, BACKOFF_MAX)
            return
        if slot.health_port is None:
            return
        if self.probe(slot.health_port):
            slot.healthy_at = now
            return
        if now - slot.healthy_at >= self.unhealthy_after:
            self._stop(slot, f"/healthz failing for {now - slot.healthy_at:.0f} s")
            slot.restarts += 1
            slot.next_start = now  # at once: it was not crashing, it was stuck

    # ------------------------------------------------------------------ the pool

    def run(self, check_every: float = 5.0) -> None:
        """Supervise until SIGTERM or SIGINT; then stop every worker process."""

        def stop(signum: int, _frame: object) -> None:
            self._stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        log.info("worker pool started", workers=len(self.slots))
        try:
            while not self._stopping:
                for slot in self.slots:
                    self.check(slot)
                deadline = self.clock() + check_every
                while not self._stopping and self.clock() < deadline:
                    time.sleep(min(0.2, check_every))
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        """SIGTERM to every worker process at once, then wait for each."""
        for slot in self.slots:
            if slot.proc is not None and slot.proc.poll() is None:
                slot.proc.send_signal(signal.SIGTERM)
        for slot in self.slots:
            self._stop(slot, "pool stopping")
            if slot._log_file is not None:
                slot._log_file.close()
                slot._log_file = None
        log.info("worker pool stopped")


def main(argv: Sequence[str] | None = None) -> None:
    from starter.logs import configure_logging

    p = argparse.ArgumentParser(prog="python -m starter.worker_pool", description=__doc__)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument(
        "--health-port-base",
        type=int,
        default=9500,
        help="slot i serves /healthz on this port + i; 0: no health checks (exits only)",
    )
    p.add_argument("--unhealthy-after", type=float, default=60.0)
    p.add_argument("--check-every", type=float, default=5.0)
    p.add_argument("--stop-timeout", type=float, default=45.0)
    p.add_argument("--log-dir", type=Path, default=None)
    args = p.parse_args(argv)
    configure_logging()
    pool = WorkerPool(
        args.workers,
        health_port_base=args.health_port_base or None,
        unhealthy_after=args.unhealthy_after,
        stop_timeout=args.stop_timeout,
        log_dir=args.log_dir,
    )
    pool.run(args.check_every)


if __name__ == "__main__":
    main()
