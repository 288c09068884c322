"""Officers' worklists, read from the store's reporting copy of cases (`cases`, `case_tasks`).

The copy follows each case within a moment (the record_case activity); a service that must
act on a task confirms it with the case itself, which a message does anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Engine, and_, or_, select
from sqlalchemy.orm import Session

from models.case import Owner, SlaStatus, TaskStatus
from store.repository import OPEN_WORK_STATUSES
from store.schema import StoredCase, StoredTask


class WorkItem(BaseModel):
    """One open task of an open case, with its SLA state and due instant."""

    model_config = ConfigDict(frozen=True)

    case_reference: str
    case_topic: str
    case_sla_status: SlaStatus
    task: str
    task_name: str
    status: TaskStatus
    owner: Owner
    started_at: datetime | None
    due_at: datetime | None
    sla_status: SlaStatus | None


def open_work(engine: Engine, owners: Sequence[Owner], *, limit: int = 1000) -> list[WorkItem]:
    """The open, waiting and lagging tasks owned by any of `owners` on open cases, soonest due
    first (tasks without a due instant last), then by case and task."""
    if not owners:
        return []
    owned = or_(
        *(and_(StoredTask.owner_kind == o.kind, StoredTask.owner_key == o.key) for o in owners)
    )
    query = (
        select(StoredTask, StoredCase)
        .join(StoredCase, StoredCase.reference == StoredTask.case_reference)
        .where(StoredCase.status == "open", StoredTask.status.in_(OPEN_WORK_STATUSES), owned)
        .order_by(
            StoredTask.due_at.is_(None),
            StoredTask.due_at,
            StoredTask.case_reference,
            StoredTask.task_key,
        )
        .limit(limit)
    )
    with Session(engine) as session:
        return [
            WorkItem(
                case_reference=case.reference,
                case_topic=case.topic,
                case_sla_status=case.sla_status,
                task=task.task_key,
                task_name=task.name,
                status=task.status,
                owner=Owner(kind=task.owner_kind, key=task.owner_key),
                started_at=task.started_at,
                due_at=task.due_at,
                sla_status=task.sla_status,
            )
            for task, case in session.execute(query)
        ]
