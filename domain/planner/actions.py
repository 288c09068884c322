"""What the case does by itself: start a task whose lag has run, fire an indicator (with its
follow-on actions). `apply_action` is the one function that records such an action on a case;
the planner simulates with it and the workflow applies with it.

Pure: the workflow sandbox imports it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from domain.planner import audit, working
from domain.planner.construction import add_owner_change, new_task, set_owner
from domain.planner.indicators import SPECS, Holder, worse
from domain.planner.lookups import sla_calendar_of, sla_for, task_sla
from domain.planner.schedule import CASE_HOLD, GROUP_CASE, Event
from models.case import SYSTEM, CaseState, CaseTask, FiredIndicator, Owner, OwnerChange
from models.config import Indicator, Key
from models.definition import CaseDefinition


@dataclass(frozen=True)
class StartTask:
    """Start a lagging task at `at` (its SLA clock starts then)."""

    task: Key
    at: datetime


@dataclass(frozen=True)
class FireIndicator:
    """An indicator of a task (`task=None`: the case SLA) falls due at `at`.

    `escalation_rule` decides who is alerted. For a follow-on, `reassign_rule` (allocate the
    task, or the case for the case SLA, anew) and `add_task` (add that task to the case) come
    from the SLA's follow-on configuration; they are None for the other indicators.
    """

    task: Key | None
    indicator: Indicator
    occurrence: int
    at: datetime
    escalation_rule: Key | None
    reassign_rule: Key | None = None
    add_task: Key | None = None


@dataclass(frozen=True)
class ReleaseHold:
    """A hold reaches its planned release at `at`: the task (`task=None`: the case hold and
    what it held) is released by itself."""

    task: Key | None
    at: datetime


Action = StartTask | FireIndicator | ReleaseHold


def action_for(defn: CaseDefinition, state: CaseState, event: Event) -> Action:
    """The action of a pending event (see `domain.planner.schedule`)."""
    at, group, index, _rank, occurrence, indicator = event
    key = None if group == GROUP_CASE else state.tasks[index].key
    if indicator is None:
        if (group == GROUP_CASE and index == CASE_HOLD) or state.tasks[index].status == "on_hold":
            return ReleaseHold(task=key, at=at)
        assert key is not None
        return StartTask(task=key, at=at)
    sla = sla_for(defn, key)
    assert sla is not None  # an indicator is only scheduled for an SLA
    rule = SPECS[indicator].escalation_rule(sla)
    follow_on = sla.follow_on if indicator == "follow_on" else None
    return FireIndicator(
        key,
        indicator,
        occurrence,
        at,
        rule,
        reassign_rule=follow_on.reassign_rule if follow_on else None,
        add_task=follow_on.add_task if follow_on else None,
    )


def _holder(state: CaseState, task: Key | None) -> Holder | None:
    """The open task, or the case SLA of an open case, an indicator belongs to."""
    if task is None:
        return state.case_sla if state.status == "open" else None
    found = state.task(task)
    return found if found is not None and found.status == "open" else None


def action_is_current(state: CaseState, action: Action) -> bool:
    """Whether `action` still applies to `state`: the task is still lagging (start) or open and
    the occurrence not yet recorded (indicator). The workflow checks this after any await, since
    a message may have completed the task meanwhile."""
    if isinstance(action, StartTask):
        task = state.task(action.task)
        return task is not None and task.status == "lagging"
    if isinstance(action, ReleaseHold):
        if action.task is None:
            return state.status == "open" and state.hold is not None
        task = state.task(action.task)
        return task is not None and task.hold is not None
    holder = _holder(state, action.task)
    if holder is None:
        return False
    return not any(
        f.indicator == action.indicator and f.occurrence == action.occurrence for f in holder.fired
    )


def apply_action(
    defn: CaseDefinition,
    state: CaseState,
    action: Action,
    *,
    recipients: Sequence[Key] = (),
    new_owner: Owner | None = None,
    added_task_owner: Owner | None = None,
    fired_at: datetime | None = None,
) -> bool:
    """Record `action` on `state` (mutated). Returns False, changing nothing, when the action no
    longer applies (see `action_is_current`).

    StartTask opens the task and computes its due, amber and first follow-on instants.
    FireIndicator records the occurrence (`recipients`: who was alerted; `fired_at`: when the
    case acted, default the scheduled instant), raises the SLA status, schedules the next
    follow-on (none after the repeat limit) and, for a follow-on, reassigns to `new_owner` (when
    given) and adds the follow-on task (owned by `added_task_owner`) unless it is already on the
    case.
    """
    if not action_is_current(state, action):
        return False
    if isinstance(action, StartTask):
        task = state.task(action.task)
        assert task is not None
        open_task(defn, task, action.at)
        audit.system(state, action.at, "task_started", task.key, "")
        return True
    if isinstance(action, ReleaseHold):
        if action.task is None:
            released = working.end_case_hold(defn, state, action.at, SYSTEM)
            detail = (
                f"planned release; tasks released: {', '.join(t.key for t in released) or 'none'}"
            )
            audit.system(state, action.at, "case_released", None, detail)
            return True
        task = state.task(action.task)
        assert task is not None
        working.end_task_hold(defn, state, task, action.at, SYSTEM)
        audit.system(state, action.at, "task_released", task.key, "planned release")
        return True

    sla = sla_for(defn, action.task)
    holder = _holder(state, action.task)
    assert sla is not None and holder is not None
    holder.fired = (
        *holder.fired,
        FiredIndicator(
            indicator=action.indicator,
            occurrence=action.occurrence,
            round=holder.round,
            due_at=action.at,
            fired_at=fired_at if fired_at is not None else action.at,
            recipients=list(recipients),
        ),
    )
    holder.sla_status = worse(holder.sla_status, SPECS[action.indicator].status_after)
    detail = f"{action.indicator} #{action.occurrence} due {action.at.isoformat()}"
    audit.system(state, action.at, "indicator_fired", action.task, detail)
    if action.indicator != "follow_on":
        return True

    follow_on = sla.follow_on
    assert follow_on is not None
    in_round = sum(
        1 for f in holder.fired if f.indicator == "follow_on" and f.round == holder.round
    )
    if in_round < follow_on.repeat_limit:
        holder.next_follow_on_at = sla_calendar_of(defn, sla).follow_on(action.at, follow_on.period)
    else:
        holder.next_follow_on_at = None
    if action.reassign_rule is not None and new_owner is not None:
        _escalation_reassign(state, action, new_owner)
    if action.add_task is not None:
        _follow_on_add(defn, state, action, action.add_task, added_task_owner)
    return True


def record_recipients(state: CaseState, action: FireIndicator, recipients: Sequence[Key]) -> None:
    """Name who was alerted on the occurrence `action` recorded (`apply_action` with no
    recipients): the case records an alert before it is sent when one local activity sends the
    alert and writes the record (the record does not show recipients)."""
    holder = _holder(state, action.task)
    assert holder is not None
    fired = next(
        f
        for f in reversed(holder.fired)
        if (f.indicator, f.occurrence) == (action.indicator, action.occurrence)
    )
    fired.recipients = list(recipients)


def open_task(defn: CaseDefinition, task: CaseTask, at: datetime) -> None:
    """Open `task` at `at`: its SLA clock starts, with its due, amber and follow-on instants.

    An amber instant counted back from the target can fall before the start (a short target on
    a working calendar started out of hours): it is moved to the start, because a warning
    cannot precede the work it warns about."""
    task.status = "open"
    task.started_at = at
    sla = task_sla(defn, task.key)
    if sla is None:
        task.sla_status = None
        return
    calendar = sla_calendar_of(defn, sla)
    task.due_at = calendar.due(at, sla.target)
    task.amber_at = None
    if sla.amber is not None:
        task.amber_at = max(calendar.amber(task.due_at, sla.amber), at)
    task.next_follow_on_at = None
    if sla.follow_on is not None:
        task.next_follow_on_at = calendar.follow_on(task.due_at, sla.follow_on.period)
    task.sla_status = "on_track"


def _escalation_reassign(state: CaseState, action: FireIndicator, new_owner: Owner) -> None:
    what = "case" if action.task is None else "task"
    if action.task is None:
        if state.owner == new_owner:
            return
        state.owner = new_owner
    else:
        task = state.task(action.task)
        assert task is not None
        if task.owner == new_owner:
            return
        task.owner = new_owner
        add_owner_change(
            task, OwnerChange(at=action.at, owner=new_owner, reason="escalation", by=SYSTEM)
        )
    audit.system(state, action.at, f"{what}_reassigned", action.task, f"escalation to {new_owner}")


def _follow_on_add(
    defn: CaseDefinition,
    state: CaseState,
    action: FireIndicator,
    key: Key,
    owner: Owner | None,
) -> None:
    if state.task(key) is not None:
        audit.system(state, action.at, "task_not_added", key, "follow-on task already on the case")
        return
    task = new_task(defn, key, origin="follow_on", mandatory=False, predecessors=[], lag=None)
    set_owner(task, owner, action.at, "follow_on", SYSTEM)
    open_task(defn, task, action.at)
    state.tasks.append(task)
    audit.system(state, action.at, "task_added", key, "follow-on")
