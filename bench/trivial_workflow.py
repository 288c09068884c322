"""The smallest useful workflow: one activity, then done. The throughput benchmark runs it to
find what this stack (dev server, one Python worker, this machine) can do at all, and compares
the case workflow with it.

Its worker mirrors `worker.build_worker`: the same sandboxed runner with the same passthrough
modules, a synchronous activity on a thread pool of 50, 50 concurrent activities, structured
logs configured the same way. So the difference between the two is the workflow's own work.

    python -m bench.trivial_workflow      # a worker; settings from the environment

Only temporalio is imported at module level: the sandbox re-imports this module for every run.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow

WORKFLOW_NAME = "BenchTrivial"


@activity.defn(name="bench_trivial_activity")
def trivial_activity(n: int) -> int:
    """Synchronous, like the case activities (they run on the worker's thread pool)."""
    return n + 1


@workflow.defn(name=WORKFLOW_NAME)
class TrivialWorkflow:
    @workflow.run
    async def run(self, n: int) -> int:
        result: int = await workflow.execute_activity(
            trivial_activity, n, start_to_close_timeout=timedelta(seconds=30)
        )
        return result


async def _run() -> None:
    import asyncio
    import concurrent.futures
    import signal

    import structlog
    from temporalio.worker import Worker

    from starter.connection import TemporalSettings, connect
    from worker import max_cached_workflows_from_env, sticky_timeout_from_env, workflow_runner

    settings = TemporalSettings.from_env()
    client = await connect(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    with concurrent.futures.ThreadPoolExecutor(max_workers=50) as executor:
        worker = Worker(
            client,
            task_queue=settings.task_queue,
            workflows=[TrivialWorkflow],
            activities=[trivial_activity],
            activity_executor=executor,
            max_concurrent_activities=50,
            max_concurrent_local_activities=50,
            # The product's runner, so the reference differs from the case only in its code.
            workflow_runner=workflow_runner(),
            max_cached_workflows=max_cached_workflows_from_env(),
            sticky_queue_schedule_to_start_timeout=sticky_timeout_from_env(),
        )
        structlog.get_logger("worker").info("worker started", task_queue=settings.task_queue)
        async with worker:
            await stop.wait()


def main() -> None:
    import asyncio

    from starter.logs import configure_logging

    configure_logging()
    asyncio.run(_run())


if __name__ == "__main__":
    main()
