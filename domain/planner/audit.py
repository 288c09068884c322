"""The case's audit trail: every accepted, refused and duplicate message, and everything the
case did by itself, with who, when and why.

The state keeps the latest entries; the workflow records each new entry in the store with
the case's record (the whole trail lives there) and then trims the state to AUDIT_KEPT
entries. So no sequence of messages can grow a case's state, its query answer or its
continue-as-new input past Temporal's payload limits.

Pure: the workflow sandbox imports it.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Protocol

from pydantic import BaseModel

from models.case import SYSTEM, AuditEntry, AuditOutcome, CaseState
from models.config import Key

# Entries the state keeps once they are recorded in the store; at most AUDIT_CAP before (a
# burst of refused messages between two records: the oldest give way, and a system entry
# says how many).
AUDIT_KEPT = 100
AUDIT_CAP = 1_000
# Longest `detail` an entry keeps (a reason or a refusal's explanation).
DETAIL_MAX = 600
# Request ids (and content digests) the state remembers for deduplication.
REQUESTS_KEPT = 1_000


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
    if len(detail) > DETAIL_MAX:
        detail = detail[: DETAIL_MAX - 1] + "…"
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
    state.audit_total += 1
    if len(state.audit) > AUDIT_CAP:
        dropped = len(state.audit) - AUDIT_KEPT
        del state.audit[:dropped]
        state.audit.append(
            AuditEntry(
                at=at,
                actor=SYSTEM,
                action="audit_overflow",
                outcome="system",
                detail=f"{dropped} entries dropped before they were recorded",
            )
        )
        state.audit_total += 1


def trim(state: CaseState, keep: int = AUDIT_KEPT) -> None:
    """Keep the latest `keep` entries (the workflow calls this once the store has them)."""
    if len(state.audit) > keep:
        del state.audit[: len(state.audit) - keep]


def request_digest(action: str, req: BaseModel) -> str:
    """A digest of a request's content: a request id names one request, so a repeat must
    carry the same content. Fields at their defaults are left out, so a field added to a
    message later (with a default) does not change the digest of an earlier request."""
    content = req.model_dump(mode="json", exclude_defaults=True, exclude={"request_id"})
    document = json.dumps([action, content], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(document.encode()).hexdigest()[:32]


def accepted(
    state: CaseState, req: Request, at: datetime, action: str, task: Key | None, detail: str
) -> None:
    """A message was carried out: audit it and remember its request id and content digest."""
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
    if isinstance(req, BaseModel):
        state.request_digests[req.request_id] = request_digest(action, req)
    if len(state.request_ids) > REQUESTS_KEPT:
        for old in state.request_ids[:-REQUESTS_KEPT]:
            state.request_digests.pop(old, None)
        del state.request_ids[:-REQUESTS_KEPT]


def refused(
    state: CaseState,
    at: datetime,
    actor: Key,
    request_id: str | None,
    action: str,
    task: Key | None,
    why: Exception,
) -> None:
    """A message was refused: keep who asked, what, and exactly why."""
    code = getattr(why, "code", type(why).__name__)
    record(
        state,
        at,
        actor,
        action,
        "refused",
        request_id=request_id,
        task=task,
        detail=f"{code}: {why}",
    )


def system(state: CaseState, at: datetime, action: str, task: Key | None, detail: str) -> None:
    """Something the engine decided on its own (a start, a fallback, a skipped action)."""
    record(state, at, SYSTEM, action, "system", task=task, detail=detail)
