"""Entries in a case's audit trail written by the workflow shell itself (the message
transitions in domain.planner write their own 'accepted' entries)."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from models.case import AuditEntry, CaseState


class _Request(Protocol):
    request_id: str
    actor: str


def refused(state: CaseState, at: datetime, req: _Request, action: str, why: Exception) -> None:
    """A message was refused: keep who asked, what, and exactly why."""
    code = getattr(why, "code", type(why).__name__)
    state.audit.append(
        AuditEntry(
            at=at,
            actor=req.actor,
            action=action,
            outcome="refused",
            request_id=req.request_id,
            task=getattr(req, "task", None),
            detail=f"{code}: {why}",
        )
    )


def system(state: CaseState, at: datetime, action: str, task: str | None, detail: str) -> None:
    """Something the engine decided on its own (a fallback, a skipped follow-on action)."""
    state.audit.append(
        AuditEntry(
            at=at,
            actor="system",
            action=action,
            outcome="system",
            task=None if task in (None, "case") else task,
            detail=detail,
        )
    )
