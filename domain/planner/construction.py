"""Building a case: its tasks from the workflow type's path, who owns what, and when a task
whose predecessors are done starts.

Pure: the workflow sandbox imports it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from domain.planner import audit
from domain.planner.lookups import sla_calendar_of, task_calendar
from domain.task_paths import resolve_predecessors
from models.activities import AllocateResult, AllocationRequest
from models.case import (
    CASE_TARGET,
    SYSTEM,
    CaseSla,
    CaseState,
    CaseTask,
    Owner,
    OwnerChange,
    TaskOrigin,
)
from models.config import Key
from models.definition import CaseDefinition
from models.messages import RaiseCase
from models.period import Period


def new_task(
    defn: CaseDefinition,
    key: Key,
    *,
    origin: TaskOrigin,
    mandatory: bool,
    predecessors: list[Key],
    lag: Period | None,
) -> CaseTask:
    """A task of definition `key`, waiting (raises ValueError for an unknown key)."""
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


# Owner changes a task keeps (every change is also in the audit trail, kept whole in the store).
OWNER_HISTORY_KEPT = 50


# Owners are frozen, so the tasks of every case in a worker process can share one object for
# each owner (a role or person owns many tasks of many cases): an Owner is about 350 bytes, and
# a case just raised has one for each of its tasks. Bounded, though the keys are the
# directory's: past the bound an owner is simply not shared.
_SHARED_OWNERS: dict[Owner, Owner] = {}
SHARED_OWNERS_KEPT = 20_000


def shared_owner(owner: Owner) -> Owner:
    """The worker's one object equal to `owner` (`owner` itself the first time)."""
    shared = _SHARED_OWNERS.get(owner)
    if shared is not None:
        return shared
    if len(_SHARED_OWNERS) < SHARED_OWNERS_KEPT:
        _SHARED_OWNERS[owner] = owner
    return owner


def set_owner(task: CaseTask, owner: Owner | None, at: datetime, reason: str, by: Key) -> None:
    """Give `task` to `owner` (nothing when None), keeping the owner history."""
    if owner is None:
        return
    owner = shared_owner(owner)
    task.owner = owner
    add_owner_change(task, OwnerChange(at=at, owner=owner, reason=reason, by=by))


def add_owner_change(task: CaseTask, change: OwnerChange) -> None:
    """Append to the task's owner history, which keeps the latest OWNER_HISTORY_KEPT."""
    task.owner_history = (*task.owner_history, change)[-OWNER_HISTORY_KEPT:]


def lag_start(defn: CaseDefinition, task: CaseTask, anchor: datetime) -> datetime:
    """When a task whose predecessors are done (at `anchor`) starts."""
    if task.lag is None or task.lag.amount == 0:
        return anchor
    return task_calendar(defn, task.key).lag_start(anchor, task.lag)


def initial_task_keys(defn: CaseDefinition, extra_tasks: Sequence[Key]) -> list[Key]:
    """The tasks a case raised with `extra_tasks` starts with: its path, then the extra tasks
    not already on it."""
    path = [step.task for step in defn.workflow_type.path]
    return path + [k for k in extra_tasks if k not in set(path)]


def task_allocation_rule(defn: CaseDefinition, key: Key) -> Key:
    """The allocation rule that owns task `key` on a case of this workflow type."""
    allocation = defn.workflow_type.allocation
    return allocation.tasks.get(key, allocation.default_task)


def raise_allocation_requests(
    defn: CaseDefinition, extra_tasks: Sequence[Key]
) -> list[AllocationRequest]:
    """What to allocate when a case is raised: the case, then each of its first tasks."""
    rules = defn.allocation_rules
    requests = [
        AllocationRequest(target=CASE_TARGET, rule=rules[defn.workflow_type.allocation.case_owner])
    ]
    for key in initial_task_keys(defn, extra_tasks):
        requests.append(AllocationRequest(target=key, rule=rules[task_allocation_rule(defn, key)]))
    return requests


def raise_owners(case: RaiseCase, allocated: AllocateResult) -> tuple[Owner, dict[Key, Owner]]:
    """The case owner and the task owners from the allocation's answers. A case whose rule
    found nobody available falls back to the officer who raised it (someone must own it);
    a task without an answer stays unallocated (the audit trail says why)."""
    case_owner = allocated.owners.get(CASE_TARGET) or Owner(kind="user", key=case.raised_by)
    tasks = {k: o for k, o in allocated.owners.items() if k != CASE_TARGET}
    return case_owner, tasks


def new_case_state(
    defn: CaseDefinition,
    *,
    reference: str,
    created_by: Key,
    created_at: datetime,
    case_owner: Owner,
    task_owners: Mapping[Key, Owner] | None = None,
    extra_tasks: Sequence[Key] = (),
) -> CaseState:
    """The state of a case just raised: the path's tasks (those with no predecessors lagging
    from the case start, the rest waiting), then `extra_tasks` as manual, non-mandatory tasks
    that also start at the case start, and the case SLA from `created_at`.

    `task_owners` maps task keys to their allocated owners (a task missing from it has no owner
    yet). An extra task that is not a task definition, or is already on the case, is skipped
    with a note in the audit trail rather than failing the case's start (callers validate with
    `domain.case_rules.check_raise` first).
    """
    owners = task_owners or {}
    preds = resolve_predecessors(defn.workflow_type.path)
    tasks: list[CaseTask] = [
        new_task(
            defn,
            step.task,
            origin="path",
            mandatory=step.mandatory,
            predecessors=preds[step.task],
            lag=step.lag,
        )
        for step in defn.workflow_type.path
    ]
    skipped: list[str] = []
    for key in extra_tasks:
        if key not in defn.task_definitions:
            skipped.append(f"extra task {key!r} skipped: not a task definition")
        elif any(t.key == key for t in tasks):
            skipped.append(f"extra task {key!r} skipped: already on the case")
        else:
            tasks.append(
                new_task(defn, key, origin="manual", mandatory=False, predecessors=[], lag=None)
            )
    # One record of the allocation for each owner, shared by the tasks given to it (an owner
    # change is frozen): most of a case's tasks go to one role.
    allocations: dict[Owner, OwnerChange] = {}
    for task in tasks:
        owner = owners.get(task.key)
        if owner is not None:
            task.owner = owner = shared_owner(owner)
            change = allocations.get(owner)
            if change is None:
                change = OwnerChange(at=created_at, owner=owner, reason="allocated", by=SYSTEM)
                allocations[owner] = change
            add_owner_change(task, change)
        if not task.predecessors:
            task.status = "lagging"
            task.starts_at = lag_start(defn, task, created_at)

    sla = defn.workflow_type.case_sla
    calendar = sla_calendar_of(defn, sla)
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
        owner=shared_owner(case_owner),
        tasks=tasks,
        case_sla=case_sla,
    )
    audit.record(
        state, created_at, created_by, "case_raised", "accepted", detail=f"owner {case_owner}"
    )
    for why in skipped:
        audit.system(state, created_at, "extra_task", None, why)
    return state
