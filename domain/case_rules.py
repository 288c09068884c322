"""The rules a message must pass before it changes a case: who may act, and on what.

Each `check_*` function either returns None (the request may go ahead) or raises
`RequestRefused` with a short `code` and a message that says exactly why. The workflow runs
the same check as an update validator (refused before anything reaches history) and in the
signal handler (refused in the audit trail); the change itself is `domain.planner`'s.

Checks run in a fixed order, so a request with several faults is refused for the first:
the case is open; the actor is a known, enabled user; the task concerned exists; the actor is
allowed (the permission table, `domain.permissions`); then the request's own details.

Every check takes `staff`, the directory facts of the people the message names
(`models.directory.DirectoryFacts`: the actor, and any user it would make an owner), looked up
when the message arrives. With `staff=None` a check runs only the parts that depend on the
case's own state and the pinned rules: the update validator runs it so (it may not do I/O),
and the handler runs the whole check once the facts are in. Decisions use the pinned
definition, `now` and the facts given: pure, so the Temporal workflow sandbox can import this
module.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from domain import planner
from domain.errors import RequestRefused
from domain.permissions import check_permitted
from domain.planner import audit
from domain.sla_calendar import CalendarRangeError
from models.case import CaseState, CaseTask, Owner
from models.config import Key
from models.definition import CaseDefinition
from models.directory import DirectoryFacts, StaffFacts
from models.messages import AddTask, CloseCase, CompleteTask, RaiseCase, ReassignTask

# Every refusal code, for documentation and for callers that map codes to messages.
REFUSAL_CODES: tuple[str, ...] = (
    "case_not_open",
    "unknown_actor",
    "actor_disabled",
    "not_permitted",
    "unknown_task",
    "task_not_allowed",
    "task_already_on_case",
    "target_after_case_target",
    "calendar_out_of_range",
    "unknown_user",
    "user_unavailable",
    "unknown_role",
    "task_not_on_case",
    "task_finished",
    "same_owner",
    "task_not_open",
    "reason_required",
    "request_id_reused",
    "invalid_request",
)


# The refusals that depend on who the people are (the live staff directory): a case decides
# them in the message's handler, after looking the people up, so an update refused with one of
# these was accepted into history and is in the audit trail (the validator refuses the others
# before anything is written).
DIRECTORY_REFUSAL_CODES: tuple[str, ...] = (
    "unknown_actor",
    "actor_disabled",
    "not_permitted",
    "unknown_user",
    "user_unavailable",
)


def check_request_id(
    state: CaseState, action: str, req: AddTask | ReassignTask | CompleteTask | CloseCase
) -> bool:
    """Whether `req` repeats a request already handled (True: answer it with the current state,
    change nothing). A request id names one request: a repeat with other content (another
    message, another task, another reason) is refused, not mistaken for the first."""
    if not is_duplicate(state, req.request_id):
        return False
    digest = state.request_digests.get(req.request_id)
    if digest is not None and digest != audit.request_digest(action, req):
        raise RequestRefused(
            "request_id_reused",
            f"request id {req.request_id!r} was used for another request on case "
            f"{state.reference}; a request id names one request: send a new id",
        )
    return True


def is_duplicate(state: CaseState, request_id: str) -> bool:
    """Whether this request id was already handled: the workflow answers a repeat with the
    current state and changes nothing (not a refusal)."""
    return request_id in state.request_ids


# --- the four messages ------------------------------------------------------------------------


def check_add_task(
    defn: CaseDefinition,
    state: CaseState,
    req: AddTask,
    now: datetime,
    staff: DirectoryFacts | None,
) -> None:
    """An optional task of this workflow type, not yet on the case, whose target would not pass
    the case target; added by whoever the permission table's add_task rule allows."""
    _check_case_open(state)
    actor = _check_actor(staff, req.actor)
    if actor is not None:
        check_permitted(
            defn,
            "add_task",
            actor,
            case_owner=state.owner,
            task_owner=None,
            has_task=False,
            what=f"add tasks to case {state.reference}",
        )
    _check_known(defn, req.task)
    existing = state.task(req.task)
    if existing is not None:
        raise RequestRefused(
            "task_already_on_case",
            f"task {req.task!r} is already on case {state.reference} (status {existing.status}); "
            "a task definition appears at most once on a case",
        )
    _check_optional(defn, req.task)
    if req.owner is not None:
        _check_owner(defn, req.owner, now, staff)
    _check_within_case_target(defn, state, req.task, now)


def check_reassign_task(
    defn: CaseDefinition,
    state: CaseState,
    req: ReassignTask,
    now: datetime,
    staff: DirectoryFacts | None,
) -> None:
    """A task on the case, not finished, to a known and available user or a known role other
    than its current owner; by whoever the reassign_task rule allows."""
    _check_case_open(state)
    actor = _check_actor(staff, req.actor)
    task = _task_on_case(state, req.task)
    if actor is not None:
        check_permitted(
            defn,
            "reassign_task",
            actor,
            case_owner=state.owner,
            task_owner=task.owner,
            has_task=True,
            what=f"reassign task {req.task!r}",
        )
    if task.status in ("completed", "cancelled"):
        raise RequestRefused(
            "task_finished",
            f"task {req.task!r} is {task.status}; only an unfinished task can be reassigned",
        )
    _check_owner(defn, req.to, now, staff)
    if task.owner == req.to:
        raise RequestRefused(
            "same_owner", f"task {req.task!r} is already owned by {req.to}; nothing to reassign"
        )


def check_complete_task(
    defn: CaseDefinition,
    state: CaseState,
    req: CompleteTask,
    now: datetime,
    staff: DirectoryFacts | None,
) -> None:
    """An open task on the case; by whoever the complete_task rule allows."""
    _check_case_open(state)
    actor = _check_actor(staff, req.actor)
    task = _task_on_case(state, req.task)
    if actor is not None:
        check_permitted(
            defn,
            "complete_task",
            actor,
            case_owner=state.owner,
            task_owner=task.owner,
            has_task=True,
            what=f"complete task {req.task!r}",
        )
    if task.status != "open":
        raise RequestRefused(
            "task_not_open",
            f"task {req.task!r} is {task.status}; only an open task can be completed",
        )


def check_close_case(
    defn: CaseDefinition,
    state: CaseState,
    req: CloseCase,
    now: datetime,
    staff: DirectoryFacts | None,
) -> None:
    """Closed with a reason, by whoever the close_case rule allows."""
    _check_case_open(state)
    actor = _check_actor(staff, req.actor)
    if actor is not None:
        check_permitted(
            defn,
            "close_case",
            actor,
            case_owner=state.owner,
            task_owner=None,
            has_task=False,
            what=f"close case {state.reference}",
        )
    if not req.reason.strip():
        raise RequestRefused("reason_required", "closing a case needs a reason (it was blank)")


def check_raise(defn: CaseDefinition, case: RaiseCase, staff: DirectoryFacts) -> None:
    """A case the definition can run: raised by an active member of staff (a directory
    fact), with extra tasks that are optional tasks of its workflow type. The workflow refuses
    a raise that fails this (the case fails at once, naming why), and the client and the
    command line run it before starting anything, so a mistyped raise never reaches
    Temporal."""
    raiser = staff.get(case.raised_by)
    if raiser is None or raiser.disabled:
        raise RequestRefused(
            "unknown_actor",
            f"{case.raised_by!r} is not an active member of staff in the staff directory",
        )
    check_extra_tasks(defn, case.extra_tasks)


def check_extra_tasks(defn: CaseDefinition, extra_tasks: Sequence[Key]) -> None:
    """The extra tasks asked for when a case is raised: known, optional for this workflow type,
    not on the path and not repeated."""
    seen = {step.task for step in defn.workflow_type.path}
    for key in extra_tasks:
        _check_known(defn, key)
        _check_optional(defn, key)
        if key in seen:
            raise RequestRefused(
                "task_already_on_case",
                f"task {key!r} is already on the case; a task definition appears at most once",
            )
        seen.add(key)


# --- the parts ---------------------------------------------------------------------------------


def _check_known(defn: CaseDefinition, key: Key) -> None:
    """A task this case can hold; another of the organisation's tasks is "not allowed" for
    this workflow type; anything else is unknown."""
    if key in defn.task_definitions:
        return
    if key in defn.other_task_keys:
        _check_optional(defn, key)
    raise RequestRefused(
        "unknown_task",
        f"{key!r} is not a task definition in configuration version {defn.config_version}",
    )


def _check_case_open(state: CaseState) -> None:
    if state.status != "open":
        raise RequestRefused(
            "case_not_open", f"case {state.reference} is {state.status}; it accepts no changes"
        )


def _check_actor(staff: DirectoryFacts | None, actor: Key) -> StaffFacts | None:
    """The actor's facts: a known, enabled member of staff (None: no facts yet, the
    validator's state-only pass)."""
    if staff is None:
        return None
    user = staff.get(actor)
    if user is None:
        raise RequestRefused(
            "unknown_actor", f"actor {actor!r} is not a known user of the staff directory"
        )
    if user.disabled:
        raise RequestRefused("actor_disabled", f"actor {actor!r} is a disabled user")
    return user


def _check_optional(defn: CaseDefinition, key: Key) -> None:
    wt = defn.workflow_type
    if key not in wt.optional_tasks:
        allowed = ", ".join(wt.optional_tasks) or "none"
        raise RequestRefused(
            "task_not_allowed",
            f"task {key!r} is not an optional task of workflow type {wt.key!r} version "
            f"{wt.version} (optional tasks: {allowed})",
        )


def _task_on_case(state: CaseState, key: Key) -> CaseTask:
    task = state.task(key)
    if task is None:
        raise RequestRefused("task_not_on_case", f"task {key!r} is not on case {state.reference}")
    return task


def _check_owner(
    defn: CaseDefinition, owner: Owner, now: datetime, staff: DirectoryFacts | None
) -> None:
    """A user owner must be in the directory and available today (the local date of the case
    calendar: `staff.on`); a role owner must be a role of the pinned rules."""
    if owner.kind == "role":
        if owner.key not in defn.roles:
            raise RequestRefused("unknown_role", f"role {owner.key!r} is not a known role")
        return
    if staff is None:
        return
    user = staff.get(owner.key)
    if user is None:
        raise RequestRefused(
            "unknown_user", f"user {owner.key!r} is not a known user of the staff directory"
        )
    if user.available:
        return
    if user.disabled:
        why = "is disabled"
    else:
        absence = user.absence
        assert absence is not None  # unavailable and enabled: absent
        why = (
            f"is unavailable on {staff.on.isoformat()} ({absence.reason} "
            f"{absence.first_day.isoformat()} to {absence.last_day.isoformat()})"
        )
    raise RequestRefused("user_unavailable", f"user {owner.key!r} {why}")


def _check_within_case_target(
    defn: CaseDefinition, state: CaseState, key: Key, now: datetime
) -> None:
    """Synchronised targets at run time: a task added now must fall due by the case target
    unless its SLA says it may exceed it."""
    sla = planner.task_sla(defn, key)
    if sla is None or sla.may_exceed_case_target or state.case_sla is None:
        return
    try:
        due = planner.task_due_if_started(defn, key, now)
    except CalendarRangeError as err:
        raise RequestRefused("calendar_out_of_range", str(err)) from None
    if due is not None and due > state.case_sla.due_at:
        zone = planner.case_zone(defn)
        case_due = planner.show_instant(state.case_sla.due_at, zone)
        raise RequestRefused(
            "target_after_case_target",
            f"task {key!r} added now would fall due at {planner.show_instant(due, zone)}, after "
            f"the case target {case_due}; its SLA does not allow exceeding the case target",
        )
