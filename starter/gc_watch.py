"""How long the garbage collector's full collections pause the worker.

A full collection walks every object the process tracks, and a worker's are mostly those of
the cases it caches: the pause grows with the cache (`WORKER_MAX_CACHED_WORKFLOWS`). It
stops every thread, and an activation it stops for over 2 s fails its workflow task as
deadlocked (TMPRL1101), so the pause is what bounds how many cases a worker may cache. The
worker logs each full collection ("full garbage collection", its seconds and the objects it
freed; a warning from `SLOW_SECONDS`) and counts it in `casework_worker_gc_pause_seconds`.

The collector's callback only appends to a deque (no lock, no logging, no metric: the
collection may have begun inside any of those, on any thread); `run` reports from the
worker's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections import deque
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Histogram

log = structlog.get_logger("worker.gc")

# A full collection this long is logged as a warning: half the SDK's deadlock limit.
SLOW_SECONDS = 1.0
PAUSE_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 1.5, 2, 3, 5)
_FULL = 2  # the oldest generation: a full collection


class CollectionWatch:
    """Times the full collections of this process while installed (`install`, `remove`)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self._started: float | None = None
        # (seconds, objects freed) of each full collection not yet reported; bounded, so a
        # loop that stopped reporting never grows it.
        self._done: deque[tuple[float, int]] = deque(maxlen=10_000)
        self.pauses = (
            Histogram(
                "casework_worker_gc_pause_seconds",
                "Wall time of each full garbage collection of the worker process (it pauses "
                "every thread; an activation paused over 2 s fails as deadlocked).",
                buckets=PAUSE_BUCKETS,
                registry=registry,
            )
            if registry is not None
            else None
        )

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if info.get("generation") != _FULL:
            return
        if phase == "start":
            self._started = time.perf_counter()
        elif self._started is not None:
            self._done.append((time.perf_counter() - self._started, int(info.get("collected", 0))))
            self._started = None

    def install(self) -> None:
        if self._callback not in gc.callbacks:
            gc.callbacks.append(self._callback)

    def remove(self) -> None:
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)

    def report(self) -> list[tuple[float, int]]:
        """Log and count the full collections since the last report; they are returned."""
        done = []
        while self._done:
            done.append(self._done.popleft())
        for seconds, collected in done:
            if self.pauses is not None:
                self.pauses.observe(seconds)
            (log.warning if seconds >= SLOW_SECONDS else log.info)(
                "full garbage collection",
                seconds=round(seconds, 3),
                collected=collected,
                frozen=gc.get_freeze_count(),
            )
        return done

    async def run(self, stop: asyncio.Event, every: float = 1.0) -> None:
        """Report every `every` seconds until `stop` is set (and once more then)."""
        self.install()
        try:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), every)
                self.report()
        finally:
            self.remove()
            self.report()
