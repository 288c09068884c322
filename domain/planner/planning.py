"""`plan(defn, state, now)`: what must happen now, and when to look again.

It answers two questions for the workflow: which actions are due (tasks to start, indicators
that fire, in chronological order) and the next instant anything can happen. It runs
`apply_action` on a copy of the state, so cascades are included: a task that started in the
past and whose amber instant is also past fires in the same plan.

Pure: the workflow sandbox imports it.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from datetime import datetime

from domain.planner.actions import Action, ReleaseHold, action_for, apply_action
from domain.planner.schedule import (
    CASE_HOLD,
    GROUP_CASE,
    GROUP_TASK,
    case_event,
    case_hold_event,
    pending_events,
    task_event,
)
from models.case import CaseState, CaseTask
from models.config import Key
from models.definition import CaseDefinition


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


def plan(defn: CaseDefinition, state: CaseState, now: datetime) -> Plan:
    """Everything due at or before `now`, and the next instant after it. Does not change
    `state`: the actions are simulated on a copy, so the ones they cause are included."""
    if state.status != "open":
        return Plan(actions=[], case_may_finish=False, next_instant=None)
    events = pending_events(state)
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
        if group == GROUP_TASK and index not in copied:
            sim.tasks[index] = sim.tasks[index].model_copy(deep=True)
            copied.add(index)
        action = action_for(defn, sim, event)
        case_release = isinstance(action, ReleaseHold) and action.task is None
        released: list[int] = []
        if case_release:
            # The case hold releases the tasks it held: copy them before they change.
            released = [
                i for i, t in enumerate(sim.tasks) if t.hold is not None and t.hold.case_hold
            ]
            for i in released:
                if i not in copied:
                    sim.tasks[i] = sim.tasks[i].model_copy(deep=True)
                    copied.add(i)
            sim.holds = tuple(h.model_copy() for h in sim.holds)
        task_count = len(sim.tasks)
        applied = apply_action(defn, sim, action)
        assert applied, f"planned action could not be applied: {action}"
        actions.append(action)
        if group == GROUP_CASE:
            follows = [case_hold_event(sim) if index == CASE_HOLD else case_event(sim)]
            if case_release:
                follows += [case_event(sim)] + [task_event(i, sim.tasks[i]) for i in released]
        else:
            follows = [task_event(index, sim.tasks[index])]
        for follow in follows:
            if follow is not None:
                heapq.heappush(events, follow)
        # A follow-on that added a task: the new task is open and has its own indicators.
        for new_index in range(task_count, len(sim.tasks)):
            copied.add(new_index)
            new_event = task_event(new_index, sim.tasks[new_index])
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
        if task.status in ("open", "lagging", "on_hold"):
            return False
        # A cancelled mandatory task no longer blocks the case (DOMAIN "Cancellation").
        if task.mandatory and task.status not in ("completed", "cancelled"):
            return False
        if task.status == "waiting" and not never_starts(task, by_key):
            return False
    return True


def never_starts(task: CaseTask, by_key: dict[Key, CaseTask], seen: set[Key] | None = None) -> bool:
    """A waiting task none of whose futures starts it: a predecessor is cancelled, missing, or
    itself never starts."""
    seen = set() if seen is None else seen
    seen.add(task.key)
    for key in task.predecessors:
        pred = by_key.get(key)
        if pred is None or pred.status == "cancelled":
            return True
        if pred.status == "waiting" and key not in seen and never_starts(pred, by_key, seen):
            return True
    return False
