"""Everything derived from a case's state for someone outside it: the answer to an update,
the record the store keeps, the overall SLA status, the owners of open work. One pure
function each, so a new field of the case reaches every view from one place.

Pure: the workflow sandbox imports it.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel

from domain.planner.indicators import worse
from domain.planner.transitions import require_task
from models.activities import CaseRecord, TaskRecord
from models.case import CaseState, CaseTask, SlaStatus
from models.config import Key
from models.messages import TaskView

V = TypeVar("V", bound=BaseModel)


def project(view: type[V], source: BaseModel, **derived: Any) -> V:
    """A view of `source`: each field of `view` takes the source's field of the same name,
    unless `derived` gives it. So a field added to a task or a case reaches a view by adding
    it, with the same name, to the view's model. `source` is validated state, so the view is
    built without validating it again (this runs on every change of every case)."""
    values = {name: getattr(source, name) for name in view.model_fields if name not in derived}
    return view.model_construct(**values, **derived)


def task_view(state: CaseState, key: Key, *, duplicate: bool = False) -> TaskView:
    """The answer to an update about task `key` (raises ValueError if it is not on the case)."""
    return project(TaskView, require_task(state, key), duplicate=duplicate)


def case_sla_status(state: CaseState) -> SlaStatus:
    """The worst SLA status across the open tasks and the case SLA (on_track if none)."""
    status: SlaStatus = "on_track"
    for task in open_tasks(state):
        if task.sla_status is not None:
            status = worse(status, task.sla_status)
    if state.case_sla is not None:
        status = worse(status, state.case_sla.sla_status)
    return status


def open_tasks(state: CaseState) -> list[CaseTask]:
    """The tasks whose SLA clock is running."""
    return [t for t in state.tasks if t.status == "open"]


def open_task_owner_keys(state: CaseState) -> list[Key]:
    """The staff or role keys owning an open task, sorted, once each."""
    return sorted({t.owner.key for t in open_tasks(state) if t.owner is not None})


def case_record(state: CaseState, revision: int, *, audit_from: int | None = None) -> CaseRecord:
    """The reporting copy of the case the store keeps (and workload allocation reads), with
    the audit entries numbered `audit_from` and later that the state holds (default: all)."""
    first = state.audit_total - len(state.audit)  # the number of state.audit[0]
    start = first if audit_from is None else max(audit_from, first)
    return project(
        CaseRecord,
        state,
        sla_status=case_sla_status(state),
        case_due_at=state.case_sla.due_at if state.case_sla else None,
        revision=revision,
        tasks=[project(TaskRecord, t) for t in state.tasks],
        audit=state.audit[start - first :],
        audit_from=start,
        # Every task; the workflow sends only the changed ones when it can (case_workflow).
        tasks_complete=True,
    )
