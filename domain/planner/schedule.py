"""What a case is waiting for: the pending instants of its tasks and of its own SLA.

One derivation serves the planner (the event heap), the Web UI's "Next:" line and timer
summaries, and the `NextDeadline` search attribute.

Pure: the workflow sandbox imports it.
"""

from __future__ import annotations

from datetime import datetime

from domain.planner.indicators import Holder, IndicatorSpec, next_indicator, pending_indicators
from models.case import CaseState, CaseTask
from models.config import Indicator

# Order of simultaneous events of one task: it starts before its indicators fire.
RANK_START = 0
# Order of simultaneous events across holders: tasks (in case order) before the case SLA.
GROUP_TASK = 0
GROUP_CASE = 1
# The two event sources of the case itself (the index of a GROUP_CASE event).
CASE_SLA = 0
CASE_HOLD = 1

# (instant, group, index in case order, rank, occurrence, indicator or None for a start):
# tuples sort into the order the planner carries events out.
Event = tuple[datetime, int, int, int, int, Indicator | None]


def _indicator_event(group: int, index: int, holder: Holder) -> Event | None:
    nxt = next_indicator(holder)
    if nxt is None:
        return None
    at, spec, occurrence = nxt
    return (at, group, index, spec.rank, occurrence, spec.kind)


def task_event(index: int, task: CaseTask) -> Event | None:
    """The next event of the task at `index`: its start while lagging, its next indicator
    while open, else None."""
    if task.status == "lagging" and task.starts_at is not None:
        return (task.starts_at, GROUP_TASK, index, RANK_START, 0, None)
    if task.status == "open":
        return _indicator_event(GROUP_TASK, index, task)
    hold = task.hold
    if hold is not None and not hold.case_hold:
        # Held by itself: it releases itself (a task held by the case goes with the case).
        return (hold.planned_release, GROUP_TASK, index, RANK_START, 0, None)
    return None


def case_event(state: CaseState) -> Event | None:
    """The next indicator of the case SLA while the case is open."""
    if state.status != "open" or state.case_sla is None or state.case_sla.held:
        return None
    return _indicator_event(GROUP_CASE, CASE_SLA, state.case_sla)


def case_hold_event(state: CaseState) -> Event | None:
    """The planned release of the case's hold while the case is open and held."""
    hold = state.hold
    if state.status != "open" or hold is None:
        return None
    return (hold.planned_release, GROUP_CASE, CASE_HOLD, RANK_START, 0, None)


def pending_events(state: CaseState) -> list[Event]:
    """The next event of every task and of the case SLA."""
    events = [e for i, t in enumerate(state.tasks) if (e := task_event(i, t)) is not None]
    for event in (case_event(state), case_hold_event(state)):
        if event is not None:
            events.append(event)
    return events


def _waiting_for_task(spec: IndicatorSpec, task: CaseTask) -> str:
    return spec.waiting_for_task.format(task=task.name)


def pending_instants(state: CaseState) -> list[tuple[datetime, str]]:
    """Every instant the case is waiting for, with a short label ("amber: Call back"),
    earliest first."""
    out: list[tuple[datetime, str]] = []
    for task in state.tasks:
        hold = task.hold
        if task.status == "lagging" and task.starts_at is not None:
            out.append((task.starts_at, f"start: {task.name}"))
        elif task.status == "open":
            out += [(at, _waiting_for_task(spec, task)) for at, spec, _ in pending_indicators(task)]
        elif hold is not None and not hold.case_hold:
            out.append((hold.planned_release, f"release of hold: {task.name}"))
    if state.status == "open" and state.hold is not None:
        out.append((state.hold.planned_release, "release of hold: case"))
    if state.case_sla is not None and state.status == "open" and not state.case_sla.held:
        out += [(at, spec.waiting_for_case) for at, spec, _ in pending_indicators(state.case_sla)]
    out.sort(key=lambda p: p[0])
    return out


def describe_instant(state: CaseState, at: datetime) -> str:
    """What the case's timer for `at` is waiting for ("amber: Housing options interview")."""
    labels = [label for when, label in pending_instants(state) if when == at]
    if not labels:
        return ""
    return labels[0] + (f" (+{len(labels) - 1} more)" if len(labels) > 1 else "")


def next_deadline(state: CaseState) -> datetime | None:
    """The earliest target of anything still open (in the past when something is overdue)."""
    dues = [t.due_at for t in state.tasks if t.status == "open" and t.due_at is not None]
    if state.status == "open" and state.case_sla is not None and not state.case_sla.held:
        dues.append(state.case_sla.due_at)
    return min(dues) if dues else None
