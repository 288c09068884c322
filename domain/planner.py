"""The task scheduler and indicator planner: the pure core of a case.

`plan(defn, state, now)` answers two questions for the workflow: what must happen now (tasks to
start, indicators that fire, in chronological order) and when is the next instant anything can
happen. The workflow carries out each action (alerts, allocation) and records it with
`apply_action`, the one function that changes a case for an action. `plan` itself runs the same
function on a copy of the state, so cascades are included: a task that started in the past and
whose amber instant is also past fires in the same plan.

The message transitions (`add_task`, `reassign_task`, `complete_task`, `close_case`,
`finish_case`) live here too: they are the only other way a case changes. The workflow validates
each message with `domain.case_rules` first.

Semantics (see docs/domain.md, "Tasks and their states"):

- A task is *waiting* while a predecessor is not completed, *lagging* once all are (it starts
  at `starts_at`: the lag counted from the last predecessor's completion on the task's SLA
  calendar, or the case SLA calendar when the task has no SLA), then *open* until completed or
  cancelled. Tasks with no predecessors are lagging from the case start (a lag, when
  configured, counts from the case start).
- An open task fires amber at `amber_at`, target exceeded at `due_at`, and follow-on occurrence
  k = 1..repeat_limit at the follow-on period after the previous instant (the target, then the
  previous follow-on). The case SLA does the same from the case start while the case is open.
  An indicator fires only while its task is open: completing or cancelling a task stops them.
- An amber instant counted back from the target can fall before the task started (a short
  target on a working calendar started out of hours): it is moved to the start, because a
  warning cannot precede the work it warns about.

Pure: standard library, pydantic models and project pure modules only. The Temporal workflow
sandbox imports this module; no clock reads, randomness or I/O.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from domain.calendars import sla_calendar
from domain.sla_calendar import SlaCalendar
from models.case import (
    SLA_SEVERITY,
    AuditEntry,
    CaseSla,
    CaseState,
    CaseTask,
    FiredIndicator,
    Owner,
    OwnerChange,
    SlaStatus,
)
from models.config import Indicator, Key, SlaConfig
from models.definition import CaseDefinition
from models.messages import AddTask, CloseCase, CompleteTask, ReassignTask, TaskView
from models.period import Period

# The actor recorded for what the case does by itself (starts, indicators, follow-on actions).
SYSTEM: Key = "system"

# The SLA status an indicator leaves behind.
_STATUS_AFTER: dict[Indicator, SlaStatus] = {
    "amber": "amber",
    "target_exceeded": "breached",
    "follow_on": "escalated",
}
# Order of simultaneous events of one task: it starts before its indicators fire, and its
# indicators fire in their natural order.
_RANK_START = 0
_RANK: dict[Indicator, int] = {"amber": 1, "target_exceeded": 2, "follow_on": 3}
# Order of simultaneous events across holders: tasks (in case order) before the case SLA.
_GROUP_TASK = 0
_GROUP_CASE = 1


# --- actions and the plan ---------------------------------------------------------------------


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


Action = StartTask | FireIndicator


@dataclass
class Plan:
    """What the workflow must do now and when to look again.

    `actions` are due (instant <= now), in chronological order; ties go tasks first (in case
    order), then the case SLA. `next_instant` is the earliest instant after now at which
    anything is pending, assuming nothing else changes (None: nothing pending).
    """

    actions: list[Action]
    case_may_finish: bool
    next_instant: datetime | None


# --- definition look-ups ----------------------------------------------------------------------


def task_sla(defn: CaseDefinition, key: Key) -> SlaConfig | None:
    """The SLA of task definition `key` (None: the task has no SLA or is unknown)."""
    task_def = defn.task_definitions.get(key)
    return task_def.sla if task_def is not None else None


def case_calendar(defn: CaseDefinition) -> SlaCalendar:
    """The calendar of the case SLA."""
    return sla_calendar(defn.calendars[defn.workflow_type.case_sla.calendar])


def task_calendar(defn: CaseDefinition, key: Key) -> SlaCalendar:
    """The calendar a task is measured on: its SLA's, or the case SLA's when it has none."""
    sla = task_sla(defn, key)
    if sla is None:
        return case_calendar(defn)
    return sla_calendar(defn.calendars[sla.calendar])


def task_due_if_started(defn: CaseDefinition, key: Key, start: datetime) -> datetime | None:
    """When task `key` would fall due if it started at `start` (None: it has no SLA)."""
    sla = task_sla(defn, key)
    if sla is None:
        return None
    return sla_calendar(defn.calendars[sla.calendar]).due(start, sla.target)


def _sla_for(defn: CaseDefinition, task: Key | None) -> SlaConfig | None:
    return defn.workflow_type.case_sla if task is None else task_sla(defn, task)


# --- pending events ---------------------------------------------------------------------------

_Holder = CaseTask | CaseSla
# (instant, group, index in case order, rank, occurrence, indicator or None for a start)
_Event = tuple[datetime, int, int, int, int, Indicator | None]


def _next_indicator(holder: _Holder) -> tuple[datetime, Indicator, int] | None:
    """The next indicator of an open task or of the case SLA: instant, kind and occurrence.

    amber_at <= due_at <= every follow-on instant, so the first unfired one is the earliest.
    """
    amber_fired = target_fired = False
    follow_ons = 0
    for fired in holder.fired:
        if fired.indicator == "amber":
            amber_fired = True
        elif fired.indicator == "target_exceeded":
            target_fired = True
        else:
            follow_ons += 1
    if holder.amber_at is not None and not amber_fired:
        return holder.amber_at, "amber", 1
    if holder.due_at is not None and not target_fired:
        return holder.due_at, "target_exceeded", 1
    if holder.next_follow_on_at is not None:
        return holder.next_follow_on_at, "follow_on", follow_ons + 1
    return None


def _task_event(index: int, task: CaseTask) -> _Event | None:
    if task.status == "lagging" and task.starts_at is not None:
        return (task.starts_at, _GROUP_TASK, index, _RANK_START, 0, None)
    if task.status == "open":
        nxt = _next_indicator(task)
        if nxt is not None:
            at, indicator, occurrence = nxt
            return (at, _GROUP_TASK, index, _RANK[indicator], occurrence, indicator)
    return None


def _case_event(state: CaseState) -> _Event | None:
    if state.status != "open" or state.case_sla is None:
        return None
    nxt = _next_indicator(state.case_sla)
    if nxt is None:
        return None
    at, indicator, occurrence = nxt
    return (at, _GROUP_CASE, 0, _RANK[indicator], occurrence, indicator)


def _pending_events(state: CaseState) -> list[_Event]:
    events: list[_Event] = []
    for index, task in enumerate(state.tasks):
        event = _task_event(index, task)
        if event is not None:
            events.append(event)
    case_event = _case_event(state)
    if case_event is not None:
        events.append(case_event)
    return events


def _action_for(defn: CaseDefinition, state: CaseState, event: _Event) -> Action:
    at, group, index, _rank, occurrence, indicator = event
    key = None if group == _GROUP_CASE else state.tasks[index].key
    if indicator is None:
        assert key is not None
        return StartTask(task=key, at=at)
    sla = _sla_for(defn, key)
    assert sla is not None  # an indicator is only scheduled for an SLA
    if indicator == "amber":
        return FireIndicator(key, indicator, occurrence, at, sla.amber_escalation)
    if indicator == "target_exceeded":
        return FireIndicator(key, indicator, occurrence, at, sla.target_exceeded_escalation)
    follow_on = sla.follow_on
    assert follow_on is not None
    return FireIndicator(
        key,
        indicator,
        occurrence,
        at,
        follow_on.escalation_rule,
        reassign_rule=follow_on.reassign_rule,
        add_task=follow_on.add_task,
    )


# --- plan -------------------------------------------------------------------------------------


def plan(defn: CaseDefinition, state: CaseState, now: datetime) -> Plan:
    """Everything due at or before `now`, and the next instant after it. Does not change
    `state`: the actions are simulated on a copy, so the ones they cause are included."""
    if state.status != "open":
        return Plan(actions=[], case_may_finish=False, next_instant=None)
    events = _pending_events(state)
    if not any(event[0] <= now for event in events):
        # Steady state: nothing is due, so nothing needs copying.
        nxt = min((event[0] for event in events), default=None)
        return Plan(actions=[], case_may_finish=case_may_finish(state), next_instant=nxt)

    sim = _copy_on_write(state)
    copied: set[int] = set()
    heapq.heapify(events)
    actions: list[Action] = []
    while events and events[0][0] <= now:
        event = heapq.heappop(events)
        group, index = event[1], event[2]
        if group == _GROUP_TASK and index not in copied:
            sim.tasks[index] = sim.tasks[index].model_copy(deep=True)
            copied.add(index)
        action = _action_for(defn, sim, event)
        task_count = len(sim.tasks)
        applied = apply_action(defn, sim, action)
        assert applied, f"planned action could not be applied: {action}"
        actions.append(action)
        follow = _case_event(sim) if group == _GROUP_CASE else _task_event(index, sim.tasks[index])
        if follow is not None:
            heapq.heappush(events, follow)
        # A follow-on that added a task: the new task is open and has its own indicators.
        for new_index in range(task_count, len(sim.tasks)):
            copied.add(new_index)
            new_event = _task_event(new_index, sim.tasks[new_index])
            if new_event is not None:
                heapq.heappush(events, new_event)
    return Plan(
        actions=actions,
        case_may_finish=case_may_finish(sim),
        next_instant=events[0][0] if events else None,
    )


def _copy_on_write(state: CaseState) -> CaseState:
    """A copy that `apply_action` may change without touching `state`: the lists it appends to
    are new, the case SLA is copied, and tasks are copied one by one when first changed (a deep
    copy of a 200-task case on every due action would dominate the plan's cost)."""
    sim = state.model_copy()
    sim.tasks = list(state.tasks)
    sim.audit = list(state.audit)
    sim.request_ids = list(state.request_ids)
    if state.case_sla is not None:
        sim.case_sla = state.case_sla.model_copy(deep=True)
    return sim


def case_may_finish(state: CaseState) -> bool:
    """The case is open, every mandatory task is completed, and no task is open, lagging or
    waiting (a waiting task counts as finished only if a predecessor can never complete)."""
    if state.status != "open":
        return False
    if not state.tasks:
        return True
    by_key = {task.key: task for task in state.tasks}
    for task in state.tasks:
        if task.status in ("open", "lagging"):
            return False
        if task.mandatory and task.status != "completed":
            return False
        if task.status == "waiting" and not _never_starts(task, by_key, set()):
            return False
    return True


def _never_starts(task: CaseTask, by_key: dict[Key, CaseTask], seen: set[Key]) -> bool:
    """A waiting task none of whose futures starts it: a predecessor is cancelled, missing, or
    itself never starts."""
    seen.add(task.key)
    for key in task.predecessors:
        pred = by_key.get(key)
        if pred is None or pred.status == "cancelled":
            return True
        if pred.status == "waiting" and key not in seen and _never_starts(pred, by_key, seen):
            return True
    return False


# --- applying an action -----------------------------------------------------------------------


def action_is_current(state: CaseState, action: Action) -> bool:
    """Whether `action` still applies to `state`: the task is still lagging (start) or open and
    the occurrence not yet recorded (indicator). The workflow checks this after any await, since
    a message may have completed the task meanwhile."""
    if isinstance(action, StartTask):
        task = state.task(action.task)
        return task is not None and task.status == "lagging"
    holder: _Holder | None
    if action.task is None:
        holder = state.case_sla if state.status == "open" else None
    else:
        task = state.task(action.task)
        holder = task if task is not None and task.status == "open" else None
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
        _open_task(defn, task, action.at)
        _audit(state, action.at, SYSTEM, "task_started", "system", task=task.key)
        return True

    sla = _sla_for(defn, action.task)
    holder: _Holder | None = state.case_sla if action.task is None else state.task(action.task)
    assert sla is not None and holder is not None
    holder.fired.append(
        FiredIndicator(
            indicator=action.indicator,
            occurrence=action.occurrence,
            due_at=action.at,
            fired_at=fired_at if fired_at is not None else action.at,
            recipients=list(recipients),
        )
    )
    holder.sla_status = _worse(holder.sla_status, _STATUS_AFTER[action.indicator])
    detail = f"{action.indicator} #{action.occurrence} due {action.at.isoformat()}"
    _audit(state, action.at, SYSTEM, "indicator_fired", "system", task=action.task, detail=detail)
    if action.indicator != "follow_on":
        return True

    follow_on = sla.follow_on
    assert follow_on is not None
    if action.occurrence < follow_on.repeat_limit:
        calendar = sla_calendar(defn.calendars[sla.calendar])
        holder.next_follow_on_at = calendar.follow_on(action.at, follow_on.period)
    else:
        holder.next_follow_on_at = None
    if action.reassign_rule is not None and new_owner is not None:
        _escalation_reassign(state, action, new_owner)
    if action.add_task is not None:
        _follow_on_add(defn, state, action, action.add_task, added_task_owner)
    return True


def _worse(current: SlaStatus | None, new: SlaStatus) -> SlaStatus:
    if current is None or SLA_SEVERITY[new] > SLA_SEVERITY[current]:
        return new
    return current


def _open_task(defn: CaseDefinition, task: CaseTask, at: datetime) -> None:
    task.status = "open"
    task.started_at = at
    sla = task_sla(defn, task.key)
    if sla is None:
        task.sla_status = None
        return
    calendar = sla_calendar(defn.calendars[sla.calendar])
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
        task.owner_history.append(
            OwnerChange(at=action.at, owner=new_owner, reason="escalation", by=SYSTEM)
        )
    _audit(
        state,
        action.at,
        SYSTEM,
        f"{what}_reassigned",
        "system",
        task=action.task,
        detail=f"escalation to {new_owner}",
    )


def _follow_on_add(
    defn: CaseDefinition,
    state: CaseState,
    action: FireIndicator,
    key: Key,
    owner: Owner | None,
) -> None:
    if state.task(key) is not None:
        _audit(
            state,
            action.at,
            SYSTEM,
            "task_not_added",
            "system",
            task=key,
            detail="follow-on task already on the case",
        )
        return
    task = _new_task(defn, key, origin="follow_on", mandatory=False, predecessors=[], lag=None)
    _set_owner(task, owner, action.at, "follow_on", SYSTEM)
    _open_task(defn, task, action.at)
    state.tasks.append(task)
    _audit(state, action.at, SYSTEM, "task_added", "system", task=key, detail="follow-on")


# --- building a case --------------------------------------------------------------------------


def _new_task(
    defn: CaseDefinition,
    key: Key,
    *,
    origin: Literal["path", "manual", "follow_on"],
    mandatory: bool,
    predecessors: list[Key],
    lag: Period | None,
) -> CaseTask:
    task_def = defn.task_definitions.get(key)
    if task_def is None:
        raise ValueError(f"task {key!r} is not a task definition of this case's configuration")
    return CaseTask(
        key=key,
        name=task_def.name,
        origin=origin,
        mandatory=mandatory,
        predecessors=predecessors,
        lag=lag,
    )


def _set_owner(task: CaseTask, owner: Owner | None, at: datetime, reason: str, by: Key) -> None:
    if owner is None:
        return
    task.owner = owner
    task.owner_history.append(OwnerChange(at=at, owner=owner, reason=reason, by=by))


def resolve_predecessors(defn: CaseDefinition) -> dict[Key, list[Key]]:
    """Each path task's predecessors, with "all_earlier" spelled out as every earlier path task."""
    result: dict[Key, list[Key]] = {}
    earlier: list[Key] = []
    for step in defn.workflow_type.path:
        preds = step.predecessors
        result[step.task] = list(earlier) if preds == "all_earlier" else list(preds)
        earlier.append(step.task)
    return result


def new_case_state(
    defn: CaseDefinition,
    *,
    reference: str,
    created_by: Key,
    created_at: datetime,
    case_owner: Owner,
    task_owners: dict[Key, Owner] | None = None,
    extra_tasks: Sequence[Key] = (),
) -> CaseState:
    """The state of a case just raised: the path's tasks (those with no predecessors lagging
    from the case start, the rest waiting), then `extra_tasks` as manual, non-mandatory tasks
    that also start at the case start, and the case SLA from `created_at`.

    `task_owners` maps task keys to their allocated owners (a task missing from it has no owner
    yet). An extra task that is not a task definition, or is already on the case, is skipped
    with a note in the audit trail rather than failing the case's start (callers validate with
    `domain.case_rules.check_extra_tasks` first).
    """
    owners = task_owners or {}
    preds = resolve_predecessors(defn)
    tasks: list[CaseTask] = []
    for step in defn.workflow_type.path:
        task = _new_task(
            defn,
            step.task,
            origin="path",
            mandatory=step.mandatory,
            predecessors=preds[step.task],
            lag=step.lag,
        )
        tasks.append(task)
    skipped: list[str] = []
    for key in extra_tasks:
        if key not in defn.task_definitions:
            skipped.append(f"extra task {key!r} skipped: not a task definition")
        elif any(t.key == key for t in tasks):
            skipped.append(f"extra task {key!r} skipped: already on the case")
        else:
            tasks.append(
                _new_task(defn, key, origin="manual", mandatory=False, predecessors=[], lag=None)
            )
    for task in tasks:
        _set_owner(task, owners.get(task.key), created_at, "allocated", SYSTEM)
        if not task.predecessors:
            task.status = "lagging"
            task.starts_at = _lag_start(defn, task, created_at)

    sla = defn.workflow_type.case_sla
    calendar = sla_calendar(defn.calendars[sla.calendar])
    due = calendar.due(created_at, sla.target)
    case_sla = CaseSla(
        started_at=created_at,
        due_at=due,
        amber_at=max(calendar.amber(due, sla.amber), created_at) if sla.amber else None,
        next_follow_on_at=calendar.follow_on(due, sla.follow_on.period) if sla.follow_on else None,
    )
    state = CaseState(
        reference=reference,
        topic=defn.topic.key,
        workflow_type=defn.workflow_type.key,
        workflow_version=defn.workflow_type.version,
        config_version=defn.config_version,
        created_by=created_by,
        created_at=created_at,
        owner=case_owner,
        tasks=tasks,
        case_sla=case_sla,
    )
    _audit(state, created_at, created_by, "case_raised", "accepted", detail=f"owner {case_owner}")
    for why in skipped:
        _audit(state, created_at, SYSTEM, "extra_task", "system", detail=why)
    return state


def _lag_start(defn: CaseDefinition, task: CaseTask, anchor: datetime) -> datetime:
    """When a task whose predecessors are done (at `anchor`) starts."""
    if task.lag is None or task.lag.amount == 0:
        return anchor
    return task_calendar(defn, task.key).lag_start(anchor, task.lag)


# --- message transitions ----------------------------------------------------------------------


def _audit(
    state: CaseState,
    at: datetime,
    actor: Key,
    action: str,
    outcome: Literal["accepted", "refused", "duplicate", "system"],
    *,
    request_id: str | None = None,
    task: Key | None = None,
    detail: str = "",
) -> None:
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


def _accept(
    state: CaseState,
    req: AddTask | ReassignTask | CompleteTask | CloseCase,
    now: datetime,
    action: str,
    task: Key | None,
    detail: str,
) -> None:
    _audit(
        state,
        now,
        req.actor,
        action,
        "accepted",
        request_id=req.request_id,
        task=task,
        detail=detail,
    )
    state.request_ids.append(req.request_id)


def add_task(
    defn: CaseDefinition,
    state: CaseState,
    req: AddTask,
    now: datetime,
    owner: Owner | None,
) -> CaseTask:
    """Add an optional task by hand: manual, not mandatory, open from `now` (its SLA clock
    starts at once), owned by `owner` (`req.owner`, or the allocation's answer)."""
    task = _new_task(defn, req.task, origin="manual", mandatory=False, predecessors=[], lag=None)
    _set_owner(task, owner, now, "added", req.actor)
    _open_task(defn, task, now)
    state.tasks.append(task)
    detail = f"owner {owner}" if owner is not None else "no owner"
    if req.reason:
        detail += f"; reason: {req.reason}"
    _accept(state, req, now, "add_task", req.task, detail)
    return task


def reassign_task(
    defn: CaseDefinition, state: CaseState, req: ReassignTask, now: datetime
) -> CaseTask:
    """Give a task to another user or role; the owner history keeps the change and reason."""
    task = _require(state, req.task)
    previous = task.owner
    task.owner = req.to
    task.owner_history.append(OwnerChange(at=now, owner=req.to, reason=req.reason, by=req.actor))
    _accept(state, req, now, "reassign_task", req.task, f"{previous} -> {req.to} ({req.reason})")
    return task


def complete_task(
    defn: CaseDefinition, state: CaseState, req: CompleteTask, now: datetime
) -> CaseTask:
    """Complete an open task. Its pending indicators stop; it keeps its last SLA status; each
    waiting task whose predecessors are now all completed becomes lagging."""
    task = _require(state, req.task)
    task.status = "completed"
    task.completed_at = now
    task.completed_by = req.actor
    task.next_follow_on_at = None
    _accept(state, req, now, "complete_task", req.task, "")
    _release_dependants(defn, state)
    return task


def _release_dependants(defn: CaseDefinition, state: CaseState) -> None:
    by_key = {task.key: task for task in state.tasks}
    for task in state.tasks:
        if task.status != "waiting" or not task.predecessors:
            continue
        preds = [by_key.get(key) for key in task.predecessors]
        completions = [p.completed_at for p in preds if p is not None and p.status == "completed"]
        if len(completions) != len(preds):
            continue
        task.status = "lagging"
        task.starts_at = _lag_start(defn, task, max(c for c in completions if c is not None))


def close_case(defn: CaseDefinition, state: CaseState, req: CloseCase, now: datetime) -> None:
    """Close the case early: cancel every task not yet completed; the case SLA stops."""
    for task in state.tasks:
        if task.status in ("open", "waiting", "lagging"):
            task.status = "cancelled"
            task.cancelled_at = now
            task.next_follow_on_at = None
    state.status = "closed"
    state.finished_at = now
    state.closed_by = req.actor
    state.close_reason = req.reason
    if state.case_sla is not None:
        state.case_sla.next_follow_on_at = None
    _accept(state, req, now, "close_case", None, req.reason)


def finish_case(state: CaseState, now: datetime) -> None:
    """The case reached its end by itself (`plan(...).case_may_finish`): status completed."""
    state.status = "completed"
    state.finished_at = now
    if state.case_sla is not None:
        state.case_sla.next_follow_on_at = None
    _audit(state, now, SYSTEM, "case_completed", "system")


def _require(state: CaseState, key: Key) -> CaseTask:
    task = state.task(key)
    if task is None:
        raise ValueError(f"task {key!r} is not on case {state.reference}")
    return task


# --- views ------------------------------------------------------------------------------------


def task_view(state: CaseState, key: Key, *, duplicate: bool = False) -> TaskView:
    """The answer to an update about task `key` (raises ValueError if it is not on the case)."""
    task = _require(state, key)
    return TaskView(
        key=task.key,
        name=task.name,
        status=task.status,
        owner=task.owner,
        started_at=task.started_at,
        due_at=task.due_at,
        sla_status=task.sla_status,
        duplicate=duplicate,
    )


def case_sla_status(state: CaseState) -> SlaStatus:
    """The worst SLA status across the open tasks and the case SLA (on_track if none)."""
    worst: SlaStatus = "on_track"
    for task in state.tasks:
        if task.status == "open" and task.sla_status is not None:
            worst = _worse(worst, task.sla_status)
    if state.case_sla is not None:
        worst = _worse(worst, state.case_sla.sla_status)
    return worst
