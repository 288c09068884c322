"""The reconciliation's input and answer (`workflows.reconcile.ReconcileCases` and its
activity `reconcile_cases`): the store's open cases whose workflows ended in a way they could
not record (terminated, timed out, failed, gone) are marked closed in the store."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

# How many reconciled cases a result lists by name (all are counted).
RECONCILED_LISTED = 100


class ReconcileInput(BaseModel):
    page_size: int = Field(default=100, ge=1, le=1_000, description="open cases read at a time")


class ReconciledCase(BaseModel):
    """A case the store said was open whose workflow had ended."""

    reference: str
    execution_status: str  # "terminated", "timed_out", "failed", "canceled", "not_found", ...
    reason: str  # the close reason written to the store
    finished_at: datetime


class ReconcileResult(BaseModel):
    checked: int = 0  # open cases in the store looked up in Temporal
    running: int = 0  # of which still running: left alone
    reconciled_total: int = 0  # marked closed in the store
    reconciled: list[ReconciledCase] = Field(default_factory=list)  # the first RECONCILED_LISTED
