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

from collections.abc import Callable, Sequence
from datetime import datetime

from domain import planner
from domain.errors import RequestRefused
from domain.permissions import check_permitted
from domain.planner import audit
from domain.sla_calendar import CalendarRangeError, to_minute
from models.case import UNFINISHED, CaseState, CaseTask, Owner
from models.config import STATUTORY_EXTENSION, Key, ReasonKind
from models.definition import CaseDefinition
from models.directory import DirectoryFacts, StaffFacts
from models.messages import (
    AddTask,
    CancelTask,
    CloseCase,
    CompleteTask,
    HoldCase,
    HoldTask,
    MessageRequest,
    RaiseCase,
    ReassignTask,
    ReleaseCase,
    ReleaseTask,
    ReviseTarget,
)

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
    "task_on_hold",
    "task_not_on_hold",
    "case_on_hold",
    "case_not_on_hold",
    "statutory_period",
    "not_in_future",
    "unknown_reason",
    "unknown_outcome",
    "late_reason_required",
    "revision_not_allowed",
    "no_target",
    "task_not_started",
    "case_target_before_task_target",
    "dependants_not_cascaded",
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


def check_request_id(state: CaseState, action: str, req: MessageRequest) -> bool:
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
    _permit_case(defn, state, actor, "add_task", "add tasks to")
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
    _permit_task(defn, state, actor, "reassign_task", task, "reassign")
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
    _permit_task(defn, state, actor, "complete_task", task, "complete")
    held_open = task.hold is not None and task.hold.resume == "open"
    if task.status != "open" and not held_open:
        raise RequestRefused(
            "task_not_open",
            f"task {req.task!r} is {_status_of(task)}; only an open task can be completed",
        )
    td = defn.task_definitions.get(req.task)
    outcomes = [o.key for o in td.outcomes] if td is not None else []
    if req.outcome is not None and req.outcome not in outcomes:
        raise RequestRefused(
            "unknown_outcome",
            f"{req.outcome!r} is not an outcome of task {req.task!r} (outcomes: "
            f"{', '.join(outcomes) or 'none configured'})",
        )
    due = _due_if_completed_now(defn, task, now)
    # Cases raised before the rule (rules_version 1) accept a late completion without one.
    late_rule = defn.rules_version >= 2
    if late_rule and due is not None and to_minute(now) > due and req.late_reason is None:
        zone = planner.case_zone(defn)
        raise RequestRefused(
            "late_reason_required",
            f"task {req.task!r} passed its target {planner.show_instant(due, zone)}: "
            "completing it needs a late completion reason (late_reason: "
            f"{', '.join(defn.reasons['late_completion'])})",
        )
    if req.late_reason is not None:
        _check_reason(defn, "late_completion", req.late_reason)


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
    _permit_case(defn, state, actor, "close_case", "close")
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


# --- working a case: hold, release, revision, cancellation -------------------------------------


def check_hold_task(
    defn: CaseDefinition,
    state: CaseState,
    req: HoldTask,
    now: datetime,
    staff: DirectoryFacts | None,
) -> None:
    """An unfinished task, not held, whose SLA is not statutory, held until a planned release
    in the future, with a hold reason; by the hold_task rule of the permission table."""
    _check_case_open(state)
    actor = _check_actor(staff, req.actor)
    task = _task_on_case(state, req.task)
    _permit_task(defn, state, actor, "hold_task", task, "hold")
    if task.status == "on_hold":
        raise RequestRefused(
            "task_on_hold",
            f"task {req.task!r} is held already (planned release "
            f"{_shown(defn, task.holds[-1].planned_release)}); move its planned release "
            "with release_task and planned_release",
        )
    if task.status in ("completed", "cancelled"):
        raise RequestRefused(
            "task_finished",
            f"task {req.task!r} is {task.status}; only an unfinished task can be held",
        )
    sla = planner.task_sla(defn, req.task)
    if sla is not None and sla.statutory:
        raise RequestRefused(
            "statutory_period",
            f"task {req.task!r} runs a statutory period, which never stops: it cannot be held",
        )
    _check_reason(defn, "hold", req.reason)
    _check_future(defn, req.planned_release, now, "the planned release")
    _check_calendar(
        lambda: _simulate(defn, state, lambda sim: _hold_then_release(defn, sim, req, now))
    )


def check_release_task(
    defn: CaseDefinition,
    state: CaseState,
    req: ReleaseTask,
    now: datetime,
    staff: DirectoryFacts | None,
) -> None:
    """A held task, released now or its planned release moved to a future instant; by the
    release_task rule."""
    _check_case_open(state)
    actor = _check_actor(staff, req.actor)
    task = _task_on_case(state, req.task)
    _permit_task(defn, state, actor, "release_task", task, "release")
    if task.hold is None:
        raise RequestRefused(
            "task_not_on_hold",
            f"task {req.task!r} is {task.status}, not on hold: nothing to release",
        )
    if req.planned_release is not None:
        _check_future(defn, req.planned_release, now, "the planned release")
    _check_calendar(
        lambda: _simulate(
            defn, state, lambda sim: planner.working.release_task(defn, sim, req, now)
        )
    )


def check_hold_case(
    defn: CaseDefinition,
    state: CaseState,
    req: HoldCase,
    now: datetime,
    staff: DirectoryFacts | None,
) -> None:
    """An open case not held already, held until a planned release in the future, with a hold
    reason; by the hold_case rule."""
    _check_case_open(state)
    actor = _check_actor(staff, req.actor)
    _permit_case(defn, state, actor, "hold_case", "hold")
    if state.hold is not None:
        raise RequestRefused(
            "case_on_hold",
            f"case {state.reference} is held already (planned release "
            f"{_shown(defn, state.hold.planned_release)}); move it with release_case and "
            "planned_release",
        )
    _check_reason(defn, "hold", req.reason)
    _check_future(defn, req.planned_release, now, "the planned release")

    def hold_then_release(sim: CaseState) -> None:
        planner.working.hold_case(defn, sim, req, now)
        planner.working.end_case_hold(defn, sim, req.planned_release, req.actor)

    _check_calendar(lambda: _simulate(defn, state, hold_then_release))


def check_release_case(
    defn: CaseDefinition,
    state: CaseState,
    req: ReleaseCase,
    now: datetime,
    staff: DirectoryFacts | None,
) -> None:
    """A held case, released now or its planned release moved; by the release_case
    rule."""
    _check_case_open(state)
    actor = _check_actor(staff, req.actor)
    _permit_case(defn, state, actor, "release_case", "release")
    if state.hold is None:
        raise RequestRefused(
            "case_not_on_hold", f"case {state.reference} is not on hold: nothing to release"
        )
    if req.planned_release is not None:
        _check_future(defn, req.planned_release, now, "the planned release")
    _check_calendar(
        lambda: _simulate(
            defn,
            state,
            lambda sim: planner.working.end_case_hold(
                defn, sim, req.planned_release or now, req.actor
            ),
        )
    )


def check_revise_target(
    defn: CaseDefinition,
    state: CaseState,
    req: ReviseTarget,
    now: datetime,
    staff: DirectoryFacts | None,
) -> None:
    """A new target after now for a started task (or the case) whose SLA may be revised, with
    a revision reason (a statutory target only with extension_agreed_in_writing); a task's
    within the case target unless its SLA may exceed it; the case's not before any unfinished
    task's target. By the revise_target rule."""
    _check_case_open(state)
    actor = _check_actor(staff, req.actor)
    zone = planner.case_zone(defn)
    target = to_minute(req.target)
    if req.task is None:
        _permit_case(defn, state, actor, "revise_target", "revise the target of")
        sla = defn.workflow_type.case_sla
        what = f"the target of case {state.reference}"
        if state.case_sla is None:
            raise RequestRefused("no_target", f"case {state.reference} has no case target")
        if state.hold is not None:
            raise RequestRefused(
                "case_on_hold",
                f"case {state.reference} is on hold: release it before revising its target",
            )
    else:
        task = _task_on_case(state, req.task)
        _permit_task(defn, state, actor, "revise_target", task, "revise the target of")
        task_sla = planner.task_sla(defn, req.task)
        what = f"the target of task {req.task!r}"
        if task_sla is None:
            raise RequestRefused("no_target", f"task {req.task!r} has no SLA, so no target")
        sla = task_sla
        if task.status in ("completed", "cancelled"):
            raise RequestRefused(
                "task_finished", f"task {req.task!r} is {task.status}; its target is final"
            )
        if task.status == "on_hold":
            raise RequestRefused(
                "task_on_hold",
                f"task {req.task!r} is on hold: release it before revising its target",
            )
        if task.due_at is None:
            raise RequestRefused(
                "task_not_started",
                f"task {req.task!r} is {task.status}: it has no target until it starts",
            )
    if not sla.target_may_be_revised:
        raise RequestRefused(
            "revision_not_allowed", f"{what} may not be revised (its SLA does not allow it)"
        )
    _check_reason(defn, "revision", req.reason)
    if sla.statutory and req.reason != STATUTORY_EXTENSION:
        raise RequestRefused(
            "statutory_period",
            f"{what} is statutory: it is revised only with the reason {STATUTORY_EXTENSION!r}",
        )
    _check_future(defn, req.target, now, "the new target")
    if req.task is not None:
        case_sla = state.case_sla
        if case_sla is not None and not sla.may_exceed_case_target and target > case_sla.due_at:
            raise RequestRefused(
                "target_after_case_target",
                f"{what} would be {planner.show_instant(target, zone)}, after the case target "
                f"{planner.show_instant(case_sla.due_at, zone)}; its SLA does not allow "
                "exceeding the case target",
            )
    else:
        later = _tasks_due_after(defn, state, target)
        if later:
            raise RequestRefused(
                "case_target_before_task_target",
                f"the case target {planner.show_instant(target, zone)} would come before the "
                "target of unfinished tasks: "
                + ", ".join(f"{key} ({planner.show_instant(due, zone)})" for key, due in later),
            )
    _check_calendar(
        lambda: _simulate(
            defn, state, lambda sim: planner.working.revise_target(defn, sim, req, now)
        )
    )


def check_cancel_task(
    defn: CaseDefinition,
    state: CaseState,
    req: CancelTask,
    now: datetime,
    staff: DirectoryFacts | None,
) -> None:
    """An unfinished task, with a cancellation reason; the tasks that wait on it are cancelled
    with it only when the request says `cascade`. By the cancel_task
    rule."""
    _check_case_open(state)
    actor = _check_actor(staff, req.actor)
    task = _task_on_case(state, req.task)
    _permit_task(defn, state, actor, "cancel_task", task, "cancel")
    if task.status in ("completed", "cancelled"):
        raise RequestRefused(
            "task_finished",
            f"task {req.task!r} is {task.status}; only an unfinished task can be cancelled",
        )
    _check_reason(defn, "cancellation", req.reason)
    chain = planner.working.dependants(state, req.task)
    if chain and not req.cascade:
        raise RequestRefused(
            "dependants_not_cascaded",
            f"tasks wait on {req.task!r}: {', '.join(t.key for t in chain)}; cancel them with it "
            "(cascade) or cancel them first",
        )


def _status_of(task: CaseTask) -> str:
    return "on hold" if task.status == "on_hold" else task.status


def _shown(defn: CaseDefinition, at: datetime) -> str:
    return planner.show_instant(at, planner.case_zone(defn))


def _check_reason(defn: CaseDefinition, kind: ReasonKind, reason: Key) -> None:
    allowed = defn.reasons.get(kind, [])
    if reason not in allowed:
        label = kind.replace("_", " ")
        raise RequestRefused(
            "unknown_reason",
            f"{reason!r} is not a {label} reason (reasons: {', '.join(allowed) or 'none'})",
        )


def _check_future(defn: CaseDefinition, at: datetime, now: datetime, what: str) -> None:
    if at <= now:
        raise RequestRefused(
            "not_in_future",
            f"{what} {_shown(defn, at)} is not in the future (now {_shown(defn, now)})",
        )


def _check_calendar(attempt: Callable[[], object]) -> None:
    """Refuse a request whose arithmetic leaves the years the case's calendars know."""
    try:
        attempt()
    except CalendarRangeError as err:
        raise RequestRefused("calendar_out_of_range", str(err)) from None


def _simulate(
    defn: CaseDefinition, state: CaseState, change: Callable[[CaseState], object]
) -> None:
    """Run `change` on a copy of the case: the check sees what the change would compute."""
    change(state.model_copy(deep=True))


def _hold_then_release(defn: CaseDefinition, sim: CaseState, req: HoldTask, now: datetime) -> None:
    task = planner.working.hold_task(defn, sim, req, now)
    planner.working.end_task_hold(defn, sim, task, req.planned_release, req.actor)


def _due_if_completed_now(defn: CaseDefinition, task: CaseTask, now: datetime) -> datetime | None:
    """The task's target as it stands if completed now: a held task's hold ends now first."""
    try:
        return planner.working.due_on_release(defn, task, now)
    except CalendarRangeError as err:
        raise RequestRefused("calendar_out_of_range", str(err)) from None


def _tasks_due_after(
    defn: CaseDefinition, state: CaseState, target: datetime
) -> list[tuple[Key, datetime]]:
    """Unfinished tasks whose target (or, lagging, the target they would have once started)
    falls after `target`, unless their SLA may exceed the case target."""
    later: list[tuple[Key, datetime]] = []
    for task in state.tasks:
        sla = planner.task_sla(defn, task.key)
        if task.status not in UNFINISHED or sla is None or sla.may_exceed_case_target:
            continue
        due = task.due_at
        if due is None and task.status == "lagging" and task.starts_at is not None:
            due = planner.task_due_if_started(defn, task.key, task.starts_at)
        if due is not None and due > target:
            later.append((task.key, due))
    return later


def _permit_task(
    defn: CaseDefinition,
    state: CaseState,
    actor: StaffFacts | None,
    message: str,
    task: CaseTask,
    verb: str,
) -> None:
    """The permission table's rule for `message` about `task` (no facts yet: decided later)."""
    if actor is not None:
        check_permitted(
            defn,
            message,
            actor,
            case_owner=state.owner,
            task_owner=task.owner,
            has_task=True,
            what=f"{verb} task {task.key!r}",
        )


def _permit_case(
    defn: CaseDefinition, state: CaseState, actor: StaffFacts | None, message: str, verb: str
) -> None:
    """The permission table's rule for `message` about the case itself."""
    if actor is not None:
        check_permitted(
            defn,
            message,
            actor,
            case_owner=state.owner,
            task_owner=None,
            has_task=False,
            what=f"{verb} case {state.reference}",
        )


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
