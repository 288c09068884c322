"""The reconciliation schedule: a Temporal Schedule, one per task queue, that starts
`ReconcileCases` (workflows.reconcile) every few minutes on that queue, so the store never
keeps saying "open" for a case whose workflow was terminated, timed out or failed.

The worker installs it at start (`worker.run`), idempotently: a schedule already there gets
the interval and task queue given (an operator's pause is kept). Interval from
RECONCILE_EVERY_MINUTES (default 5; 0 installs nothing). `python -m starter reconcile` runs
one reconciliation now; `--install-schedule` installs the schedule from the command line.
In the Web UI it is on the Schedules page (`/namespaces/<ns>/schedules`).
"""

from __future__ import annotations

import os
import uuid
from datetime import timedelta

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

from models.reconcile import ReconcileInput, ReconcileResult
from workflows.reconcile import RECONCILE_WORKFLOW_TYPE

DEFAULT_EVERY = timedelta(minutes=5)
EVERY_VARIABLE = "RECONCILE_EVERY_MINUTES"


def schedule_id(task_queue: str) -> str:
    """The schedule's ID (and its workflows' ID prefix): one per task queue, as each queue's
    worker has its own store."""
    return f"reconcile-cases-{task_queue}"


def interval_from_env() -> timedelta | None:
    """RECONCILE_EVERY_MINUTES as an interval (default 5 minutes); None for 0 (no schedule).
    Raises ValueError naming the variable for anything but a non-negative number."""
    raw = os.environ.get(EVERY_VARIABLE, "").strip()
    if not raw:
        return DEFAULT_EVERY
    try:
        minutes = float(raw)
    except ValueError:
        minutes = -1.0
    if not minutes >= 0 or minutes == float("inf"):
        raise ValueError(f"{EVERY_VARIABLE} must be a number of minutes (0: no schedule)")
    return timedelta(minutes=minutes) if minutes > 0 else None


def reconcile_schedule(task_queue: str, every: timedelta) -> Schedule:
    """Every `every`, start ReconcileCases on `task_queue`; never two at once."""
    return Schedule(
        action=ScheduleActionStartWorkflow(
            RECONCILE_WORKFLOW_TYPE,
            ReconcileInput(),
            id=schedule_id(task_queue),
            task_queue=task_queue,
            # A run with no worker to pick it up gives way to the next one.
            execution_timeout=max(every * 2, timedelta(minutes=10)),
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


async def install_schedule(client: Client, task_queue: str, every: timedelta) -> bool:
    """Create the schedule, or bring the one there up to date (keeping its paused state).
    True when it was created."""
    sid = schedule_id(task_queue)
    schedule = reconcile_schedule(task_queue, every)
    try:
        await client.create_schedule(sid, schedule)
        return True
    except ScheduleAlreadyRunningError:
        pass

    def updated(current: ScheduleUpdateInput) -> ScheduleUpdate:
        schedule.state = current.description.schedule.state
        return ScheduleUpdate(schedule=schedule)

    await client.get_schedule_handle(sid).update(updated)
    return False


async def worker_polling(client: Client, task_queue: str) -> bool:
    """Whether a worker polls `task_queue` for workflows (as the server saw it lately)."""
    answer = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
    )
    return len(answer.pollers) > 0


async def reconcile_now(client: Client, task_queue: str) -> ReconcileResult:
    """Run one reconciliation now on `task_queue` (a worker must be polling it) and wait."""
    result: ReconcileResult = await client.execute_workflow(
        RECONCILE_WORKFLOW_TYPE,
        ReconcileInput(),
        id=f"{schedule_id(task_queue)}-now-{uuid.uuid4().hex[:8]}",
        task_queue=task_queue,
        result_type=ReconcileResult,
        execution_timeout=timedelta(minutes=30),
    )
    return result
