"""Working a case (DOMAIN "Working a case"): hold and release, target revision, cancellation.

How an accepted hold, release, revision or cancellation changes a case, and the releases the
case carries out by itself at a planned release instant. The checks are `domain.case_rules`'s;
the message rows are `domain.messages`'s.

- A hold parks a task: its status becomes `on_hold` (what it was is kept on the hold), none of
  its indicators fire and its lag does not run. On release at R of a hold begun at H the
  target (or a lagging task's start) moves later by the hold's length on its calendar, in its
  unit (`SlaCalendar.shift_for_hold`), and the amber and follow-on instants are counted again
  from the new target. Indicators fired before the hold stay fired.
- A case hold holds every unfinished task that is not statutory and not held already, and the
  case SLA unless it is statutory; releasing the case releases exactly those.
- A revision sets a new target and starts a new round of the holder's indicators: the amber
  and target exceeded of the new target fire again if reached. Occurrences go on counting
  across rounds, so (indicator, occurrence) names one alert for ever.

Pure: the workflow sandbox imports it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from domain.planner import audit
from domain.planner.indicators import SPECS, Holder, worse
from domain.planner.lookups import require_task, sla_calendar_of, sla_for, task_calendar
from domain.sla_calendar import to_minute
from models.case import (
    UNFINISHED,
    CaseSla,
    CaseState,
    CaseTask,
    Hold,
    SlaStatus,
    TargetRevision,
)
from models.config import Key, SlaConfig
from models.definition import CaseDefinition
from models.messages import CancelTask, HoldCase, HoldTask, ReleaseCase, ReleaseTask, ReviseTarget
from models.period import Period


def _utc(instant: datetime) -> datetime:
    return instant.astimezone(UTC)


# --- holds -------------------------------------------------------------------------------------


def holdable(defn: CaseDefinition, task: CaseTask) -> bool:
    """Whether a task can be held: unfinished, not held, and its SLA is not statutory."""
    sla = sla_for(defn, task.key)
    return task.status in ("waiting", "lagging", "open") and not (sla is not None and sla.statutory)


def begin_hold(task: CaseTask, hold: Hold) -> None:
    """Put `task` on hold (`hold.resume` is set to what it was)."""
    hold.resume = (
        "open" if task.status == "open" else "lagging" if task.status == "lagging" else "waiting"
    )
    task.status = "on_hold"
    task.holds = (*task.holds, hold)


def hold_task(defn: CaseDefinition, state: CaseState, req: HoldTask, now: datetime) -> CaseTask:
    """Hold a task until `req.planned_release` (or a release by hand)."""
    task = require_task(state, req.task)
    begin_hold(
        task,
        Hold(
            begun_at=now,
            planned_release=_utc(req.planned_release),
            reason=req.reason,
            notes=req.notes,
            by=req.actor,
        ),
    )
    detail = f"{req.reason}; planned release {_utc(req.planned_release).isoformat()}"
    audit.accepted(state, req, now, "hold_task", req.task, detail)
    return task


def release_task(
    defn: CaseDefinition, state: CaseState, req: ReleaseTask, now: datetime
) -> CaseTask:
    """Release a held task now, or move its planned release (`req.planned_release`)."""
    task = require_task(state, req.task)
    hold = task.hold
    assert hold is not None
    if req.planned_release is not None:
        hold.planned_release = _utc(req.planned_release)
        hold.case_hold = False  # its own release instant now: released by itself
        audit.accepted(
            state,
            req,
            now,
            "move_release",
            req.task,
            f"planned release {hold.planned_release.isoformat()}",
        )
        return task
    end_task_hold(defn, state, task, now, req.actor)
    audit.accepted(state, req, now, "release_task", req.task, _shift_detail(task))
    return task


def hold_case(defn: CaseDefinition, state: CaseState, req: HoldCase, now: datetime) -> None:
    """Hold the case: every holdable task, and the case SLA unless it is statutory."""
    release = _utc(req.planned_release)
    state.holds = (
        *state.holds,
        Hold(
            begun_at=now, planned_release=release, reason=req.reason, notes=req.notes, by=req.actor
        ),
    )
    held: list[str] = []
    for task in state.tasks:
        if holdable(defn, task):
            begin_hold(
                task,
                Hold(
                    begun_at=now,
                    planned_release=release,
                    reason=req.reason,
                    notes=req.notes,
                    by=req.actor,
                    case_hold=True,
                ),
            )
            held.append(task.key)
    sla = state.case_sla
    if sla is not None and not defn.workflow_type.case_sla.statutory:
        sla.held = True
    target = "held" if sla is not None and sla.held else "running"
    detail = (
        f"{req.reason}; planned release {release.isoformat()}; tasks held: "
        f"{', '.join(held) or 'none'}; case target {target}"
    )
    audit.accepted(state, req, now, "hold_case", None, detail)


def release_case(defn: CaseDefinition, state: CaseState, req: ReleaseCase, now: datetime) -> None:
    """Release the case hold now, or move its planned release."""
    hold = state.hold
    assert hold is not None
    if req.planned_release is not None:
        hold.planned_release = _utc(req.planned_release)
        for task in state.tasks:
            if task.hold is not None and task.hold.case_hold:
                task.hold.planned_release = hold.planned_release
        audit.accepted(
            state,
            req,
            now,
            "move_release",
            None,
            f"planned release {hold.planned_release.isoformat()}",
        )
        return
    end_case_hold(defn, state, now, req.actor)
    audit.accepted(state, req, now, "release_case", None, "")


def end_case_hold(defn: CaseDefinition, state: CaseState, at: datetime, by: Key) -> list[CaseTask]:
    """End the case's hold at `at`: the tasks it held are released, the case SLA moves later.
    Returns the tasks released."""
    hold = state.hold
    assert hold is not None
    hold.released_at, hold.released_by = at, by
    released = [t for t in state.tasks if t.hold is not None and t.hold.case_hold]
    for task in released:
        end_task_hold(defn, state, task, at, by)
    sla = state.case_sla
    if sla is not None and sla.held:
        sla.held = False
        config = defn.workflow_type.case_sla
        calendar = sla_calendar_of(defn, config)
        new_due = calendar.shift_for_hold(sla.due_at, config.target.unit, hold.begun_at, at)
        if new_due != sla.due_at:
            sla.due_at = new_due
            _count_again(defn, sla, config, floor=sla.started_at)
    return released


def end_task_hold(
    defn: CaseDefinition, state: CaseState, task: CaseTask, at: datetime, by: Key
) -> None:
    """End `task`'s hold at `at` (by hand, by itself, or because it is completed or cancelled):
    it returns to what it was, its target (or start) moved later by the hold."""
    hold = task.hold
    assert hold is not None
    hold.released_at, hold.released_by = at, by
    begun = hold.counts_from or hold.begun_at
    new_due = due_on_release(defn, task, at)  # while still held
    task.status = hold.resume
    if hold.resume == "open":
        sla = sla_for(defn, task.key)
        if sla is not None and new_due != task.due_at:
            task.due_at = new_due
            _count_again(defn, task, sla, floor=task.started_at)
    elif hold.resume == "lagging" and task.starts_at is not None:
        lag = task.lag or Period(unit="minutes", amount=0)
        calendar = task_calendar(defn, task.key)
        day_based = lag.unit not in ("minutes", "hours")
        task.starts_at = calendar.shift_for_hold(
            task.starts_at, lag.unit, begun, at, at_opening=day_based
        )


def due_on_release(defn: CaseDefinition, task: CaseTask, at: datetime) -> datetime | None:
    """The target a held task would have if its hold ended at `at` (its target as it stands
    when it is not held, or has no SLA)."""
    hold, sla = task.hold, sla_for(defn, task.key)
    if hold is None or sla is None or task.due_at is None:
        return task.due_at
    begun = hold.counts_from or hold.begun_at
    return sla_calendar_of(defn, sla).shift_for_hold(task.due_at, sla.target.unit, begun, at)


def held_minutes(holds: Sequence[Hold], now: datetime) -> int:
    """The total time `holds` lasted (a current one up to `now`), in whole minutes."""
    total = 0.0
    for hold in holds:
        end = hold.released_at or now
        total += max((to_minute(end) - to_minute(hold.begun_at)).total_seconds(), 0)
    return int(total // 60)


def _shift_detail(task: CaseTask) -> str:
    return f"target {task.due_at.isoformat()}" if task.due_at is not None else ""


# --- revision ----------------------------------------------------------------------------------


def revise_target(
    defn: CaseDefinition, state: CaseState, req: ReviseTarget, now: datetime
) -> CaseTask | None:
    """Give a task (or the case) a new target: a new round of its indicators."""
    new = to_minute(req.target)
    holder: Holder
    if req.task is None:
        assert state.case_sla is not None
        holder, config = state.case_sla, defn.workflow_type.case_sla
    else:
        holder = require_task(state, req.task)
        sla = sla_for(defn, req.task)
        assert sla is not None
        config = sla
    old = holder.due_at
    holder.round += 1
    holder.revisions = (
        *holder.revisions,
        TargetRevision(
            at=now,
            by=req.actor,
            old_target=old,
            new_target=new,
            reason=req.reason,
            notes=req.notes,
            round=holder.round,
        ),
    )
    holder.due_at = new
    _count_again(defn, holder, config, floor=now)
    holder.sla_status = sla_status_of(holder)
    detail = f"{old.isoformat() if old else 'none'} -> {new.isoformat()} ({req.reason})"
    audit.accepted(state, req, now, "revise_target", req.task, detail)
    return holder if isinstance(holder, CaseTask) else None


def _count_again(
    defn: CaseDefinition, holder: Holder, sla: SlaConfig, *, floor: datetime | None
) -> None:
    """The amber and next follow-on instants of `holder`, counted again from its target (the
    amber never before `floor`: the start, or the revision)."""
    assert holder.due_at is not None
    calendar = sla_calendar_of(defn, sla)
    if sla.amber is not None:
        amber = calendar.amber(holder.due_at, sla.amber)
        holder.amber_at = max(amber, floor) if floor is not None else amber
    follow_on = sla.follow_on
    if follow_on is None:
        holder.next_follow_on_at = None
        return
    fired = sum(1 for f in holder.fired if f.indicator == "follow_on" and f.round == holder.round)
    if fired >= follow_on.repeat_limit:
        holder.next_follow_on_at = None
        return
    instant = holder.due_at
    for _ in range(fired + 1):
        instant = calendar.follow_on(instant, follow_on.period)
    holder.next_follow_on_at = instant


def sla_status_of(holder: CaseTask | CaseSla) -> SlaStatus:
    """The SLA status the indicators fired in the holder's current round leave behind."""
    status: SlaStatus = "on_track"
    for fired in holder.fired:
        if fired.round == holder.round:
            status = worse(status, SPECS[fired.indicator].status_after)
    return status


# --- cancellation ------------------------------------------------------------------------------


def dependants(state: CaseState, key: Key) -> list[CaseTask]:
    """The unfinished tasks that wait on task `key`, directly or through others, in case order."""
    found: set[Key] = set()
    frontier = {key}
    while frontier:
        nxt = {
            t.key
            for t in state.tasks
            if t.status in UNFINISHED
            and t.key not in found
            and t.key != key
            and frontier & set(t.predecessors)
        }
        found |= nxt
        frontier = nxt
    return [t for t in state.tasks if t.key in found]


def cancel_task(defn: CaseDefinition, state: CaseState, req: CancelTask, now: datetime) -> CaseTask:
    """Cancel a task with a reason, and (`req.cascade`) every task that waits on it."""
    task = require_task(state, req.task)
    chain = dependants(state, req.task) if req.cascade else []
    for each in [task, *chain]:
        if each.hold is not None:
            each.hold.released_at, each.hold.released_by = now, req.actor
        each.status = "cancelled"
        each.cancelled_at = now
        each.cancelled_by = req.actor
        each.cancel_reason = req.reason
        each.cancel_notes = req.notes
        each.next_follow_on_at = None
    detail = req.reason + (f"; with {', '.join(t.key for t in chain)}" if chain else "")
    audit.accepted(state, req, now, "cancel_task", req.task, detail)
    return task
