"""The case's audit trail: every accepted, refused and duplicate message, and everything the
case did by itself, with who, when and why.

Pure: the workflow sandbox imports it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from models.case import SYSTEM, AuditEntry, AuditOutcome, CaseState
from models.config import Key


class Request(Protocol):
    """What every message carries: who asks, and the id that makes a repeat harmless."""

    @property
    def request_id(self) -> str: ...

    @property
    def actor(self) -> Key: ...


def record(
    state: CaseState,
    at: datetime,
    actor: Key,
    action: str,
    outcome: AuditOutcome,
    *,
    request_id: str | None = None,
    task: Key | None = None,
    detail: str = "",
) -> None:
    """Append one entry to the case's audit trail."""
    state.audit.append(
        AuditEntry(
            at=at,
            actor=actor,
            action=action,
            outcome=outcome,
            request_id=request_id,
            task=task,
            detail=detail,
        )
    )


def accepted(
    state: CaseState, req: Request, at: datetime, action: str, task: Key | None, detail: str
) -> None:
    """A message was carried out: audit it and remember its request id."""
    record(
        state,
        at,
        req.actor,
        action,
        "accepted",
        request_id=req.request_id,
        task=task,
        detail=detail,
    )
    state.request_ids.append(req.request_id)


def refused(
    state: CaseState, at: datetime, req: Request, action: str, task: Key | None, why: Exception
) -> None:
    """A message was refused: keep who asked, what, and exactly why."""
    code = getattr(why, "code", type(why).__name__)
    record(
        state,
        at,
        req.actor,
        action,
        "refused",
        request_id=req.request_id,
        task=task,
        detail=f"{code}: {why}",
    )


def system(state: CaseState, at: datetime, action: str, task: Key | None, detail: str) -> None:
    """Something the engine decided on its own (a start, a fallback, a skipped action)."""
    record(state, at, SYSTEM, action, "system", task=task, detail=detail)
