"""The message transitions: how an accepted message changes a case. With the actions of
`domain.planner.actions` they are the only ways a case changes. The workflow checks each
message with `domain.case_rules` first (see the message table, `domain.messages`).

Pure: the workflow sandbox imports it.
"""

from __future__ import annotations

from datetime import datetime

from domain.planner import audit, working
from domain.planner.actions import open_task
from domain.planner.construction import add_owner_change, lag_start, new_task, set_owner
from domain.planner.lookups import require_task as require_task
from models.case import SYSTEM, UNFINISHED, CaseState, CaseTask, Owner, OwnerChange
from models.definition import CaseDefinition
from models.messages import AddTask, CloseCase, CompleteTask, ReassignTask


def add_task(
    defn: CaseDefinition,
    state: CaseState,
    req: AddTask,
    now: datetime,
    owner: Owner | None,
) -> CaseTask:
    """Add an optional task by hand: manual, not mandatory, open from `now` (its SLA clock
    starts at once), owned by `owner` (`req.owner`, or the allocation's answer)."""
    task = new_task(defn, req.task, origin="manual", mandatory=False, predecessors=[], lag=None)
    set_owner(task, owner, now, "added", req.actor)
    open_task(defn, task, now)
    state.tasks.append(task)
    detail = f"owner {owner}" if owner is not None else "no owner"
    if req.reason:
        detail += f"; reason: {req.reason}"
    audit.accepted(state, req, now, "add_task", req.task, detail)
    return task


def reassign_task(
    defn: CaseDefinition, state: CaseState, req: ReassignTask, now: datetime
) -> CaseTask:
    """Give a task to another user or role; the owner history keeps the change and reason."""
    task = require_task(state, req.task)
    previous = task.owner
    task.owner = req.to
    add_owner_change(task, OwnerChange(at=now, owner=req.to, reason=req.reason, by=req.actor))
    audit.accepted(
        state, req, now, "reassign_task", req.task, f"{previous} -> {req.to} ({req.reason})"
    )
    return task


def complete_task(
    defn: CaseDefinition, state: CaseState, req: CompleteTask, now: datetime
) -> CaseTask:
    """Complete an open task. Its pending indicators stop; it keeps its last SLA status; each
    waiting task whose predecessors are now all completed becomes lagging."""
    task = require_task(state, req.task)
    if task.hold is not None:
        # Completing a held task ends its hold at that instant.
        working.end_task_hold(defn, state, task, now, req.actor)
    task.status = "completed"
    task.completed_at = now
    task.completed_by = req.actor
    task.next_follow_on_at = None
    task.completion_notes = req.note
    task.outcome = req.outcome
    task.late_reason = req.late_reason
    details = [f"outcome {req.outcome}"] if req.outcome else []
    if req.late_reason:
        details.append(f"late: {req.late_reason}")
    audit.accepted(state, req, now, "complete_task", req.task, "; ".join(details))
    _release_dependants(defn, state)
    return task


def _release_dependants(defn: CaseDefinition, state: CaseState) -> None:
    by_key = {task.key: task for task in state.tasks}
    for task in state.tasks:
        hold = task.hold
        held_waiting = hold is not None and hold.resume == "waiting"
        if (task.status != "waiting" and not held_waiting) or not task.predecessors:
            continue
        preds = [by_key.get(key) for key in task.predecessors]
        completions = [p.completed_at for p in preds if p is not None and p.status == "completed"]
        if len(completions) != len(preds):
            continue
        anchor = max(c for c in completions if c is not None)
        task.starts_at = lag_start(defn, task, anchor)
        if hold is not None:
            # Held: it will lag from its release, the lag counted from now (DOMAIN "Hold").
            hold.resume = "lagging"
            hold.counts_from = anchor
        else:
            task.status = "lagging"


def close_case(defn: CaseDefinition, state: CaseState, req: CloseCase, now: datetime) -> None:
    """Close the case early: cancel every task not yet completed; the case SLA stops."""
    if state.hold is not None:
        state.hold.released_at, state.hold.released_by = now, req.actor
    for task in state.tasks:
        if task.hold is not None:
            task.hold.released_at, task.hold.released_by = now, req.actor
        if task.status in UNFINISHED:
            task.status = "cancelled"
            task.cancelled_at = now
            task.next_follow_on_at = None
    state.status = "closed"
    state.finished_at = now
    state.closed_by = req.actor
    state.close_reason = req.reason
    if state.case_sla is not None:
        state.case_sla.next_follow_on_at = None
    audit.accepted(state, req, now, "close_case", None, req.reason)


def finish_case(state: CaseState, now: datetime) -> None:
    """The case reached its end by itself (`plan(...).case_may_finish`): status completed."""
    state.status = "completed"
    state.finished_at = now
    if state.case_sla is not None:
        state.case_sla.next_follow_on_at = None
    audit.system(state, now, "case_completed", None, "")


# The reason of a close by the system after an operator cancelled the case's workflow in
# Temporal (the Web UI's "Request Cancellation", `temporal workflow cancel`).
OPERATOR_CANCELLED = "cancelled by an operator in Temporal"
# The request id of that close in the audit trail: one per case, so it is never a duplicate.
OPERATOR_CANCELLATION_REQUEST = "temporal-cancellation"


def system_close(defn: CaseDefinition, state: CaseState, now: datetime, reason: str) -> None:
    """Close the case as the system (`SYSTEM` is the actor): the same close as an officer's
    `close_case`, every task not yet finished cancelled, audited with `reason`."""
    req = CloseCase(request_id=OPERATOR_CANCELLATION_REQUEST, actor=SYSTEM, reason=reason)
    close_case(defn, state, req, now)
