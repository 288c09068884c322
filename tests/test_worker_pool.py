"""The worker pool (starter/worker_pool.py) restarts a worker process that exits and one whose
health check keeps failing, and gives each process its own ports. Real child processes (tiny
Python commands standing in for `python worker.py`); the clock and the health probe are the
test's, so nothing waits on wall time."""

from __future__ import annotations

import sys

from starter.worker_pool import BACKOFF_START, WorkerPool

EXITS = [sys.executable, "-c", "import sys; sys.exit(3)"]
RUNS = [sys.executable, "-c", "import time; time.sleep(120)"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_each_slot_gets_its_own_ports_and_only_the_first_installs_the_schedule() -> None:
    pool = WorkerPool(
        3,
        argv=RUNS,
        env={"WORKER_SDK_METRICS_PORT": "9600", "RECONCILE_EVERY_MINUTES": "5"},
        health_port_base=9500,
    )
    assert [s.env["WORKER_METRICS_PORT"] for s in pool.slots] == ["9500", "9501", "9502"]
    assert [s.env["WORKER_SDK_METRICS_PORT"] for s in pool.slots] == ["9600", "9601", "9602"]
    assert [s.env["RECONCILE_EVERY_MINUTES"] for s in pool.slots] == ["5", "0", "0"]


def test_a_process_that_exits_is_started_again_after_a_growing_backoff() -> None:
    clock = Clock()
    pool = WorkerPool(1, argv=EXITS, env={}, clock=clock)
    slot = pool.slots[0]
    try:
        pool.check(slot)
        assert slot.proc is not None
        first = slot.proc
        first.wait()
        pool.check(slot)  # sees the exit
        assert slot.proc is None and slot.restarts == 1
        pool.check(slot)  # the backoff has not passed
        assert slot.proc is None
        clock.now += BACKOFF_START
        pool.check(slot)
        assert slot.proc is not None and slot.proc.pid != first.pid
        slot.proc.wait()
        pool.check(slot)
        assert slot.restarts == 2
        assert slot.next_start - clock.now == 2 * BACKOFF_START  # doubled: it exited at once
    finally:
        pool.shutdown()


def test_a_process_whose_health_check_keeps_failing_is_stopped_and_started_again() -> None:
    clock = Clock()
    healthy = {"answer": True}
    pool = WorkerPool(
        1,
        argv=RUNS,
        env={},
        health_port_base=9500,
        unhealthy_after=60,
        stop_timeout=10,
        probe=lambda port: healthy["answer"],
        clock=clock,
    )
    slot = pool.slots[0]
    try:
        pool.check(slot)
        assert slot.proc is not None
        first = slot.proc
        healthy["answer"] = False
        clock.now += 59
        pool.check(slot)
        assert slot.proc is first  # not yet
        clock.now += 1
        pool.check(slot)
        assert slot.proc is None and slot.restarts == 1
        assert first.poll() is not None  # stopped (SIGTERM)
        pool.check(slot)
        assert slot.proc is not None and slot.proc.pid != first.pid
    finally:
        pool.shutdown()
    assert all(s.proc is None for s in pool.slots)
