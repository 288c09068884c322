"""`ReconcileCases`: marks in the store the cases whose workflows ended in a way they could
not record themselves (terminated, timed out, failed, gone); see activities.reconcile. A
Temporal Schedule runs it every few minutes (starter.reconcile installs it; the worker does at
start). Only the standard library, temporalio and the project's models are imported here."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from models.reconcile import ReconcileInput, ReconcileResult

RECONCILE_WORKFLOW_TYPE = "ReconcileCases"


@workflow.defn(name=RECONCILE_WORKFLOW_TYPE)
class ReconcileCases:
    @workflow.run
    async def run(self, input: ReconcileInput) -> ReconcileResult:
        # The activity logs what it did; the result (counts, the first cases) is the summary.
        result: ReconcileResult = await workflow.execute_activity(
            "reconcile_cases",
            input,
            result_type=ReconcileResult,
            start_to_close_timeout=timedelta(minutes=30),
            # It heartbeats after each page; a stuck lookup is retried from the last page.
            heartbeat_timeout=timedelta(minutes=2),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(seconds=5),
                maximum_interval=timedelta(minutes=1),
                maximum_attempts=5,
            ),
            summary="mark in the store the open cases whose workflows ended",
        )
        return result
