"""The message table: every message an officer or a service sends a case, one row each.

A row names the message (its signal and update name), its request model, the rule that
checks it (`domain.case_rules`), the transition that carries it out (`domain.planner`), and,
for a message that needs an owner chosen first, what to allocate. The workflow installs one
signal handler and one validated update handler per row; the client sends a row's request
(typed by the row); the command line builds one command per row from the request model's
fields. Adding a message is: a request model, a check, a transition, and one row here.

Pure: the workflow sandbox imports it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from domain import case_rules, planner
from models.case import CaseState, Owner
from models.config import Key
from models.definition import CaseDefinition
from models.directory import DirectoryFacts
from models.messages import (
    AddTask,
    CancelTask,
    CloseCase,
    CompleteTask,
    HoldCase,
    HoldTask,
    ReassignTask,
    ReleaseCase,
    ReleaseTask,
    ReviseTarget,
)

R = TypeVar("R", bound=BaseModel)


@dataclass(frozen=True)
class Allocation:
    """An owner to choose before a message is carried out: `target` (a task key) by the
    allocation rule `rule`; `purpose` keeps the answer apart from other allocations of the
    same target (the store answers a retried allocation with the answer already given)."""

    target: Key
    rule: Key
    purpose: str


@dataclass(frozen=True)
class Message(Generic[R]):
    """One message. `check` raises `RequestRefused` (domain.errors) or returns: given the
    directory facts of the people the request names (`domain.staff.keys_to_look_up`), or None
    for the state-only pass of the update validator (see `domain.case_rules`); `change`
    mutates the state (`allocated`: the answer to `allocation`, when it asked for one). Who may
    send it is the configuration's permission table, by `name` (`domain.permissions`)."""

    name: str
    request: type[R]
    description: str
    check: Callable[[CaseDefinition, CaseState, R, datetime, DirectoryFacts | None], None]
    change: Callable[[CaseDefinition, CaseState, R, datetime, Owner | None], object]
    # The command line's command, and its one-line help.
    command: str
    help: str
    allocation: Callable[[CaseDefinition, CaseState, R], Allocation | None] | None = None


def _add_task_allocation(defn: CaseDefinition, state: CaseState, req: AddTask) -> Allocation | None:
    if req.owner is not None:
        return None
    return Allocation(req.task, planner.task_allocation_rule(defn, req.task), "manual")


ADD_TASK: Message[AddTask] = Message(
    name="add_task",
    request=AddTask,
    description="Add an optional task to the case by hand; returns the new task.",
    check=case_rules.check_add_task,
    change=lambda defn, state, req, now, allocated: planner.add_task(
        defn, state, req, now, req.owner or allocated or state.owner
    ),
    allocation=_add_task_allocation,
    command="add-task",
    help="add an optional task by hand",
)
REASSIGN_TASK: Message[ReassignTask] = Message(
    name="reassign_task",
    request=ReassignTask,
    description="Reassign a task to a user or a role, with a reason; returns the task.",
    check=case_rules.check_reassign_task,
    change=lambda defn, state, req, now, _: planner.reassign_task(defn, state, req, now),
    command="reassign",
    help="reassign a task to a user or a role",
)
COMPLETE_TASK: Message[CompleteTask] = Message(
    name="complete_task",
    request=CompleteTask,
    description=(
        "Complete an open (or held) task, with an optional outcome and notes; after its "
        "target a late completion reason is needed; returns it."
    ),
    check=case_rules.check_complete_task,
    change=lambda defn, state, req, now, _: planner.complete_task(defn, state, req, now),
    command="complete",
    help="complete an open task",
)
CLOSE_CASE: Message[CloseCase] = Message(
    name="close_case",
    request=CloseCase,
    description="Close the case with a reason; its unfinished tasks are cancelled.",
    check=case_rules.check_close_case,
    change=lambda defn, state, req, now, _: planner.close_case(defn, state, req, now),
    command="close",
    help="close a case with a reason",
)

HOLD_TASK: Message[HoldTask] = Message(
    name="hold_task",
    request=HoldTask,
    description=(
        "Put an unfinished task on hold until a planned release, with a reason: its "
        "indicators and lag stop, and its target moves later by the hold on release."
    ),
    check=case_rules.check_hold_task,
    change=lambda defn, state, req, now, _: planner.working.hold_task(defn, state, req, now),
    command="hold",
    help="put a task on hold until a planned release",
)
RELEASE_TASK: Message[ReleaseTask] = Message(
    name="release_task",
    request=ReleaseTask,
    description=(
        "Release a held task now (its target moves later by the hold), or move its planned "
        "release with planned_release; returns the task."
    ),
    check=case_rules.check_release_task,
    change=lambda defn, state, req, now, _: planner.working.release_task(defn, state, req, now),
    command="release",
    help="release a held task, or move its planned release",
)
HOLD_CASE: Message[HoldCase] = Message(
    name="hold_case",
    request=HoldCase,
    description=(
        "Put the case on hold until a planned release: every unfinished task that is not "
        "statutory, and the case target unless it is statutory."
    ),
    check=case_rules.check_hold_case,
    change=lambda defn, state, req, now, _: planner.working.hold_case(defn, state, req, now),
    command="hold-case",
    help="put the whole case on hold until a planned release",
)
RELEASE_CASE: Message[ReleaseCase] = Message(
    name="release_case",
    request=ReleaseCase,
    description="Release the case hold now, or move its planned release with planned_release.",
    check=case_rules.check_release_case,
    change=lambda defn, state, req, now, _: planner.working.release_case(defn, state, req, now),
    command="release-case",
    help="release the case hold, or move its planned release",
)
REVISE_TARGET: Message[ReviseTarget] = Message(
    name="revise_target",
    request=ReviseTarget,
    description=(
        "Revise a task's target (or the case's, without task) to a new instant, with a "
        "reason: a new round of its indicators; returns the task."
    ),
    check=case_rules.check_revise_target,
    change=lambda defn, state, req, now, _: planner.working.revise_target(defn, state, req, now),
    command="revise",
    help="revise the target of a task or of the case",
)
CANCEL_TASK: Message[CancelTask] = Message(
    name="cancel_task",
    request=CancelTask,
    description=(
        "Cancel an unfinished task with a reason; with cascade, every task that waits on it "
        "too; returns the task."
    ),
    check=case_rules.check_cancel_task,
    change=lambda defn, state, req, now, _: planner.working.cancel_task(defn, state, req, now),
    command="cancel-task",
    help="cancel a task (and, with --cascade, the tasks that wait on it)",
)

# Every message, in the order the command line lists them.
MESSAGES: tuple[Message[Any], ...] = (
    ADD_TASK,
    REASSIGN_TASK,
    COMPLETE_TASK,
    CLOSE_CASE,
    HOLD_TASK,
    RELEASE_TASK,
    HOLD_CASE,
    RELEASE_CASE,
    REVISE_TARGET,
    CANCEL_TASK,
)

# The message names, which the permission table is keyed by (validation refuses any other).
MESSAGE_NAMES: tuple[str, ...] = tuple(m.name for m in MESSAGES)
