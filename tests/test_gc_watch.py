"""The worker times its full garbage collections (starter.gc_watch): each one is logged and
counted once, a young collection is not, and nothing is recorded once the watch is removed."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest
import structlog
from prometheus_client import CollectorRegistry

from starter.gc_watch import CollectionWatch


@pytest.fixture(autouse=True)
def no_automatic_collections() -> Iterator[None]:
    # Only the collections a test makes itself (gc.collect works while automatic ones are off).
    was = gc.isenabled()
    gc.disable()
    yield
    if was:
        gc.enable()


def _count(registry: CollectorRegistry) -> float:
    value = registry.get_sample_value("casework_worker_gc_pause_seconds_count")
    return value or 0.0


def test_each_full_collection_is_timed_logged_and_counted_once() -> None:
    registry = CollectorRegistry()
    watch = CollectionWatch(registry)
    watch.install()
    try:
        gc.collect(0)  # a young collection: not a full one
        assert watch.report() == []
        cycle: list[object] = []
        cycle.append(cycle)
        del cycle
        with structlog.testing.capture_logs() as logs:
            gc.collect()
            done = watch.report()
        assert len(done) == 1
        seconds, collected = done[0]
        assert 0 <= seconds < 60 and collected >= 1
        assert _count(registry) == 1
        assert [e["event"] for e in logs] == ["full garbage collection"]
        assert logs[0]["seconds"] == round(seconds, 3) and logs[0]["collected"] == collected
        assert watch.report() == []  # reported once
    finally:
        watch.remove()
    gc.collect()
    assert watch.report() == [] and _count(registry) == 1


def test_the_watch_runs_until_stopped_and_removes_its_callback() -> None:
    async def scenario() -> list[str]:
        watch, stop = CollectionWatch(), asyncio.Event()
        with structlog.testing.capture_logs() as logs:
            task = asyncio.create_task(watch.run(stop, every=0.01))
            await asyncio.sleep(0.05)
            gc.collect()
            await asyncio.sleep(0.05)
            stop.set()
            await task
        assert watch._callback not in gc.callbacks
        return [e["event"] for e in logs]

    assert asyncio.run(scenario()) == ["full garbage collection"]
