"""Search attributes an operator filters on in the Web UI and with `temporal workflow list`.

No personal data: references, topic and workflow type keys, staff keys, statuses, instants.
A case keeps its attributes current only if it was started with them (the starter sets them
when the cluster has them registered), so a cluster without them still runs cases.
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow
from temporalio.common import (
    SearchAttributeKey,
    SearchAttributePair,
    SearchAttributeUpdate,
    TypedSearchAttributes,
)

with workflow.unsafe.imports_passed_through():
    from domain.planner import case_sla_status, next_deadline, open_task_owner_keys, open_tasks
    from models.case import CaseState

CASE_REFERENCE = SearchAttributeKey.for_keyword("CaseReference")
CASE_TOPIC = SearchAttributeKey.for_keyword("CaseTopic")
CASE_WORKFLOW_TYPE = SearchAttributeKey.for_keyword("CaseWorkflowType")
CASE_STATUS = SearchAttributeKey.for_keyword("CaseStatus")
SLA_STATUS = SearchAttributeKey.for_keyword("SlaStatus")
OPEN_TASK_OWNERS = SearchAttributeKey.for_keyword_list("OpenTaskOwners")
NEXT_DEADLINE = SearchAttributeKey.for_datetime("NextDeadline")
OPEN_TASKS = SearchAttributeKey.for_int("OpenTasks")
# "case" (the case is on hold), "tasks" (some tasks are), or "none".
HOLD_STATUS = SearchAttributeKey.for_keyword("HoldStatus")

ALL_KEYS: tuple[SearchAttributeKey[Any], ...] = (
    CASE_REFERENCE,
    CASE_TOPIC,
    CASE_WORKFLOW_TYPE,
    CASE_STATUS,
    SLA_STATUS,
    OPEN_TASK_OWNERS,
    NEXT_DEADLINE,
    OPEN_TASKS,
    HOLD_STATUS,
)
# Attributes added after cases were running: a case keeps them only if it was started with
# them (a case started before never writes one its cluster may not have registered).
LATER_KEYS: tuple[SearchAttributeKey[Any], ...] = (HOLD_STATUS,)


def hold_status(state: CaseState) -> str:
    """Whether the case, or some of its tasks, are on hold."""
    if state.status != "open":
        return "none"
    if state.hold is not None:
        return "case"
    return "tasks" if any(t.status == "on_hold" for t in state.tasks) else "none"


def _status_keyword(state: CaseState) -> str:
    # Operators asked for open/closed: a case that completed its work is closed too.
    return "open" if state.status == "open" else "closed"


def values(state: CaseState) -> list[SearchAttributeUpdate[Any]]:
    """The attribute values for a case's current state."""
    pairs: list[SearchAttributeUpdate[Any]] = [
        CASE_REFERENCE.value_set(state.reference),
        CASE_TOPIC.value_set(state.topic),
        CASE_WORKFLOW_TYPE.value_set(state.workflow_type),
        CASE_STATUS.value_set(_status_keyword(state)),
        SLA_STATUS.value_set(case_sla_status(state) if state.status == "open" else "on_track"),
        OPEN_TASK_OWNERS.value_set(open_task_owner_keys(state)),
        OPEN_TASKS.value_set(len(open_tasks(state))),
        HOLD_STATUS.value_set(hold_status(state)),
    ]
    deadline = next_deadline(state)
    pairs.append(
        NEXT_DEADLINE.value_set(deadline) if deadline is not None else NEXT_DEADLINE.value_unset()
    )
    return pairs


def initial(reference: str, topic: str) -> TypedSearchAttributes:
    """The attributes a starter sets before the case knows its definition."""
    return TypedSearchAttributes(
        [
            SearchAttributePair(CASE_REFERENCE, reference),
            SearchAttributePair(CASE_TOPIC, topic),
            SearchAttributePair(CASE_STATUS, "open"),
            SearchAttributePair(SLA_STATUS, "on_track"),
            SearchAttributePair(HOLD_STATUS, "none"),
        ]
    )


def upsert(state: CaseState) -> None:
    """Bring the case's attributes up to date; writes history only when a value changed."""
    current = workflow.info().typed_search_attributes
    if current.get(CASE_STATUS) is None:
        return  # started without attributes: the cluster does not have them registered
    updates = []
    for update in values(state):
        old = current.get(update.key)
        if old is None and update.key in LATER_KEYS:
            continue  # started before this attribute existed
        new = update.value
        if isinstance(old, list):
            old = sorted(old)
        if old != new:
            updates.append(update)
    if updates:
        workflow.upsert_search_attributes(updates)
