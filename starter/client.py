"""A typed client for services: raise a case, add/reassign/complete tasks, close it, read it.

    client = CaseClient(await connect())
    await client.raise_case(RaiseCase(reference="HO-2026-000123", topic="private-tenancy-ending",
                                      raised_by="adviser1"))
    view = await client.complete_task("HO-2026-000123", CompleteTask(
        request_id="req-1", actor="adviser1", task="housing-options-interview"))

Every message is sent as a validated update by default (the answer is the task's new state;
a refusal raises RequestRefusedError naming the reason and changes nothing), or as a signal
with `wait=False` (fire and forget; a refusal is written to the case's audit trail).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from models.case import CaseState, SlaStatus
from models.messages import (
    REFERENCE_PATTERN,
    AddTask,
    CaseInput,
    CloseCase,
    CompleteTask,
    RaiseCase,
    ReassignTask,
    TaskView,
)
from starter.connection import DEFAULT_TASK_QUEUE, SearchAttributesMode
from workflows import search
from workflows.case_workflow import WORKFLOW_TYPE, case_workflow_id

SEARCH_ATTRIBUTE_TYPES: dict[str, IndexedValueType.ValueType] = {
    "CaseReference": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "CaseTopic": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "CaseWorkflowType": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "CaseStatus": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "SlaStatus": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "OpenTaskOwners": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST,
    "NextDeadline": IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
    "OpenTasks": IndexedValueType.INDEXED_VALUE_TYPE_INT,
}


log = logging.getLogger("starter.client")

# Staff, role, topic and workflow type keys as the configurations use them. A filter value
# outside this set cannot be a key, so it is refused rather than sent to visibility.
SAFE_KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}$"


def visibility_literal(value: str) -> str:
    """`value` as a single-quoted string literal of Temporal's list query language (backslash
    and quote escaped), so that it is always one value, never part of the query."""
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


class CaseFilter(BaseModel):
    """Which cases `CaseClient.list_cases` lists: every field given must match (AND).

    Each value is validated (keys by SAFE_KEY_PATTERN, statuses from their sets) and
    rendered quoted by `query()`: no value can change the query's meaning."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reference: str | None = Field(default=None, pattern=REFERENCE_PATTERN)
    sla_status: SlaStatus | None = None
    owner: str | None = Field(
        default=None, pattern=SAFE_KEY_PATTERN, description="staff or role key of an open task"
    )
    topic: str | None = Field(default=None, pattern=SAFE_KEY_PATTERN)
    workflow_type: str | None = Field(default=None, pattern=SAFE_KEY_PATTERN)
    status: Literal["open", "closed"] | None = None

    def query(self) -> str | None:
        """The Temporal visibility query for this filter (None when it filters nothing)."""
        clauses = [
            (search.CASE_REFERENCE.name, self.reference),
            (search.SLA_STATUS.name, self.sla_status),
            (search.OPEN_TASK_OWNERS.name, self.owner),
            (search.CASE_TOPIC.name, self.topic),
            (search.CASE_WORKFLOW_TYPE.name, self.workflow_type),
            (search.CASE_STATUS.name, self.status),
        ]
        parts = [f"{name} = {visibility_literal(v)}" for name, v in clauses if v is not None]
        return " AND ".join(parts) or None


class RequestRefusedError(Exception):
    """The case refused a request; nothing changed. `code` is the rule broken."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class CaseListing(BaseModel):
    """One row of a case list (from visibility: no query to each case)."""

    reference: str
    workflow_id: str
    status: str
    topic: str | None
    workflow_type: str | None
    sla_status: str | None
    open_tasks: int | None
    owners: list[str]
    next_deadline: datetime | None
    started_at: datetime | None


def new_request_id() -> str:
    return uuid.uuid4().hex


class CaseClient:
    """Drives cases through Temporal. Safe to share across tasks."""

    def __init__(
        self,
        client: Client,
        task_queue: str = DEFAULT_TASK_QUEUE,
        search_attributes: SearchAttributesMode = "auto",
    ) -> None:
        """`search_attributes` (TEMPORAL_SEARCH_ATTRIBUTES): whether new cases carry the case
        search attributes: `on` always, `off` never, `auto` if the namespace has them."""
        self.client = client
        self.task_queue = task_queue
        self.search_attributes = search_attributes
        self._has_search_attributes: bool | None = {"on": True, "off": False}.get(search_attributes)

    async def has_search_attributes(self) -> bool:
        """Whether new cases carry the case search attributes. With `auto`, asks the
        operator service once: a cluster that does not let us ask (PERMISSION_DENIED, as
        Temporal Cloud answers an API key without the operator role, or UNIMPLEMENTED) means
        no, with one warning; any other error (unreachable, ...) is raised, not guessed."""
        if self._has_search_attributes is None:
            try:
                resp = await self.client.operator_service.list_search_attributes(
                    ListSearchAttributesRequest(namespace=self.client.namespace)
                )
            except RPCError as e:
                if e.status not in (RPCStatusCode.PERMISSION_DENIED, RPCStatusCode.UNIMPLEMENTED):
                    raise
                log.warning(
                    "cannot ask namespace %s for its search attributes (%s): cases start "
                    "without them; set TEMPORAL_SEARCH_ATTRIBUTES=on if they are registered, "
                    "or =off to silence this",
                    self.client.namespace,
                    e.status.name,
                )
                self._has_search_attributes = False
            else:
                missing = sorted(set(SEARCH_ATTRIBUTE_TYPES) - set(resp.custom_attributes))
                if missing:
                    log.warning(
                        "namespace %s lacks the search attributes %s: cases start without "
                        "them (TEMPORAL_SEARCH_ATTRIBUTES=auto); register them, or set =off",
                        self.client.namespace,
                        ", ".join(missing),
                    )
                self._has_search_attributes = not missing
        return self._has_search_attributes

    def handle(self, reference: str) -> WorkflowHandle[Any, Any]:
        return self.client.get_workflow_handle(case_workflow_id(reference))

    async def raise_case(self, case: RaiseCase) -> WorkflowHandle[Any, CaseState]:
        """Start a case. Raises WorkflowAlreadyStartedError if the reference is in use."""
        attrs = (
            search.initial(case.reference, case.topic)
            if await self.has_search_attributes()
            else None
        )
        handle: WorkflowHandle[Any, CaseState] = await self.client.start_workflow(
            WORKFLOW_TYPE,
            CaseInput(case=case),
            id=case_workflow_id(case.reference),
            task_queue=self.task_queue,
            result_type=CaseState,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=attrs,
            static_summary=f"Case {case.reference} · {case.topic}",
            static_details=(
                f"Housing options case **{case.reference}**, topic `{case.topic}`, "
                f"raised by `{case.raised_by}`."
            ),
        )
        return handle

    async def _send(self, reference: str, name: str, req: BaseModel, wait: bool) -> TaskView | None:
        handle = self.handle(reference)
        try:
            if not wait:
                await handle.signal(name, req)
                return None
            result: TaskView | None = await handle.execute_update(
                name,
                req,
                result_type=TaskView | None,  # type: ignore[arg-type]
            )
            return result
        except WorkflowUpdateFailedError as err:
            cause = err.cause
            if isinstance(cause, ApplicationError):
                raise RequestRefusedError(cause.type or "refused", cause.message) from None
            raise
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND and await self._finished(handle):
                raise RequestRefusedError(
                    "case_not_open", f"case {reference} has finished; it takes no more requests"
                ) from None
            raise

    async def _finished(self, handle: WorkflowHandle[Any, Any]) -> bool:
        try:
            desc = await handle.describe()
        except RPCError:
            return False
        return desc.status is not None and desc.status != WorkflowExecutionStatus.RUNNING

    async def add_task(self, reference: str, req: AddTask, *, wait: bool = True) -> TaskView | None:
        """Add an optional task by hand."""
        return await self._send(reference, "add_task", req, wait)

    async def reassign_task(
        self, reference: str, req: ReassignTask, *, wait: bool = True
    ) -> TaskView | None:
        """Reassign a task to a user or a role, with a reason."""
        return await self._send(reference, "reassign_task", req, wait)

    async def complete_task(
        self, reference: str, req: CompleteTask, *, wait: bool = True
    ) -> TaskView | None:
        """Complete an open task."""
        return await self._send(reference, "complete_task", req, wait)

    async def close_case(self, reference: str, req: CloseCase, *, wait: bool = True) -> None:
        """Close the case with a reason; open tasks are cancelled."""
        await self._send(reference, "close_case", req, wait)

    async def state(self, reference: str) -> CaseState:
        """The case's current state (its `state` query)."""
        result: CaseState | None = await self.handle(reference).query(
            "state",
            result_type=CaseState | None,  # type: ignore[arg-type]
        )
        if result is None:
            raise RequestRefusedError("case_not_open", f"case {reference} has not opened yet")
        return result

    async def result(self, reference: str) -> CaseState:
        """Wait for the case to finish; its final state is the summary."""
        handle = self.client.get_workflow_handle(case_workflow_id(reference), result_type=CaseState)
        state: CaseState = await handle.result()
        return state

    async def list_cases(
        self,
        filter: CaseFilter | None = None,
        limit: int = 200,
        *,
        raw_query: str | None = None,
    ) -> AsyncIterator[CaseListing]:
        """Cases from visibility that match `filter`. `raw_query`, for tests and power users
        who know Temporal's list query language (`OpenTasks > 1`, `IN (...)`), is ANDed in
        as written: never build it from user input (that is what CaseFilter is for)."""
        clauses = [f"WorkflowType = {visibility_literal(WORKFLOW_TYPE)}"]
        rendered = filter.query() if filter is not None else None
        clauses += [f"({q})" for q in (rendered, raw_query) if q]
        full = " AND ".join(clauses)
        count = 0
        async for wf in self.client.list_workflows(full):
            attrs = wf.typed_search_attributes
            yield CaseListing(
                reference=wf.id.removeprefix("case-"),
                workflow_id=wf.id,
                status=wf.status.name.lower() if wf.status else "unknown",
                topic=attrs.get(search.CASE_TOPIC),
                workflow_type=attrs.get(search.CASE_WORKFLOW_TYPE),
                sla_status=attrs.get(search.SLA_STATUS),
                open_tasks=attrs.get(search.OPEN_TASKS),
                owners=list(attrs.get(search.OPEN_TASK_OWNERS) or []),
                next_deadline=attrs.get(search.NEXT_DEADLINE),
                started_at=wf.start_time,
            )
            count += 1
            if count >= limit:
                return
