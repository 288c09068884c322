"""The reconciliation activity: the store's open cases whose workflows ended in a way the
workflow could not record (terminated, timed out, failed, or no longer known to Temporal)
are marked closed in the store, with a reason naming what happened. A case whose workflow is
running is never touched (describing a workflow ID answers for its latest run, so a case
that continued as new is running).

Asynchronous, so it can use the worker's Temporal client (`temporalio.activity.client()`);
the store's blocking calls run on a thread. It heartbeats after every page with the last
reference done: a retry carries on from there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import Engine
from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from models.reconcile import RECONCILED_LISTED, ReconciledCase, ReconcileInput, ReconcileResult
from store import repository
from workflows.case_workflow import case_workflow_id

log = structlog.get_logger("activities")

# What the store's close reason says for each way a workflow can end without recording it.
# A cancelled case records its own close (since operator-cancellation); one cancelled before
# that, or a completed one whose last record is missing, is reconciled too.
_REASONS: dict[WorkflowExecutionStatus, str] = {
    WorkflowExecutionStatus.TERMINATED: "terminated in Temporal (reconciled)",
    WorkflowExecutionStatus.TIMED_OUT: "timed out in Temporal (reconciled)",
    WorkflowExecutionStatus.FAILED: "failed in Temporal (reconciled)",
    WorkflowExecutionStatus.CANCELED: "cancelled in Temporal (reconciled)",
    WorkflowExecutionStatus.COMPLETED: "completed in Temporal without its last record (reconciled)",
}
NOT_FOUND_REASON = "not found in Temporal (reconciled)"
# Workflows described at once (each is one DescribeWorkflowExecution call to the frontend).
DESCRIBE_CONCURRENCY = 10


class ReconcileActivities:
    """`reconcile_cases`, bound to one store. `client` defaults to the worker's own."""

    def __init__(self, engine: Engine, client: Client | None = None) -> None:
        self._engine = engine
        self._client = client

    def all(self) -> list[Callable[..., Any]]:
        return [self.reconcile_cases]

    @activity.defn(name="reconcile_cases")
    async def reconcile_cases(self, input: ReconcileInput) -> ReconcileResult:
        """Page through the open cases, describe each case's workflow, mark those that ended."""
        client = self._client or activity.client()
        details = activity.info().heartbeat_details
        after: str | None = details[0] if details and isinstance(details[0], str) else None
        result = ReconcileResult()
        limit = asyncio.Semaphore(DESCRIBE_CONCURRENCY)
        while True:
            refs = await asyncio.to_thread(
                repository.open_case_references, self._engine, after=after, limit=input.page_size
            )
            if not refs:
                break
            # A page's workflows are described a few at a time, in parallel.
            answers = await asyncio.gather(*(_ended(client, ref, limit) for ref in refs))
            for ref, ended in zip(refs, answers, strict=True):
                result.checked += 1
                if ended is None:
                    result.running += 1
                    continue
                status, reason, finished_at = ended
                marked = await asyncio.to_thread(
                    repository.mark_case_ended, self._engine, ref, reason, finished_at
                )
                if not marked:  # it recorded its own end meanwhile
                    continue
                result.reconciled_total += 1
                if len(result.reconciled) < RECONCILED_LISTED:
                    result.reconciled.append(
                        ReconciledCase(
                            reference=ref,
                            execution_status=status,
                            reason=reason,
                            finished_at=finished_at,
                        )
                    )
                log.info("case reconciled", case=ref, execution_status=status)
            after = refs[-1]
            activity.heartbeat(after)
        log.info(
            "reconciliation done",
            checked=result.checked,
            running=result.running,
            reconciled=result.reconciled_total,
        )
        return result


async def _ended(
    client: Client, reference: str, limit: asyncio.Semaphore
) -> tuple[str, str, datetime] | None:
    """How the case's workflow ended (status, store reason, close time); None: running."""
    try:
        async with limit:
            desc = await client.get_workflow_handle(case_workflow_id(reference)).describe()
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise
        return "not_found", NOT_FOUND_REASON, datetime.now(UTC)
    status = desc.status
    if status is None or status == WorkflowExecutionStatus.RUNNING:
        return None
    reason = _REASONS.get(status)
    if reason is None:  # continued as new: the latest run is running, or about to
        return None
    return status.name.lower(), reason, desc.close_time or datetime.now(UTC)
