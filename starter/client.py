"""A typed client for services: raise a case, send it messages, read it.

    client = CaseClient(await connect())
    await client.raise_case(RaiseCase(reference="HO-2026-000123", topic="private-tenancy-ending",
                                      raised_by="adviser1"))
    view = await client.send("HO-2026-000123", COMPLETE_TASK, CompleteTask(
        request_id="req-1", actor="adviser1", task="housing-options-interview"))

`send` takes a row of the message table (`domain.messages`) and that row's request type, so
a request of the wrong type is a type error; `add_task`, `reassign_task`, `complete_task` and
`close_case` are shorthands for it. Every message is sent as a validated update by default
(the answer is the task's new state; a refusal raises RequestRefusedError naming the reason
and changes nothing), or as a signal with `wait=False` (fire and forget; a refusal is written
to the case's audit trail).

`raise_case` returns once the case has opened (its first message can follow at once). A raise
the case refuses (unknown or disabled raiser, extra tasks not allowed) raises
RequestRefusedError; it never burns the reference, which a corrected raise may use. A raise
repeated with the same input returns the case already there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from temporalio.api.enums.v1 import EventType, IndexedValueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import ActivityError, ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from domain.errors import RequestRefused
from domain.messages import (
    ADD_TASK,
    CANCEL_TASK,
    CLOSE_CASE,
    COMPLETE_TASK,
    HOLD_CASE,
    HOLD_TASK,
    REASSIGN_TASK,
    RELEASE_CASE,
    RELEASE_TASK,
    REVISE_TARGET,
    Message,
)
from models.case import CaseState, Owner, SlaStatus
from models.messages import (
    REFERENCE_PATTERN,
    AddTask,
    CancelTask,
    CaseInput,
    CloseCase,
    CompleteTask,
    HoldCase,
    HoldTask,
    RaiseCase,
    ReassignReason,
    ReassignTask,
    ReleaseCase,
    ReleaseTask,
    ReviseTarget,
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
    "HoldStatus": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
}


R = TypeVar("R", bound=BaseModel)

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
        ]
        parts = [f"{name} = {visibility_literal(v)}" for name, v in clauses if v is not None]
        if self.status is not None:
            parts.append(_STATUS_QUERIES[self.status])
        return " AND ".join(parts) or None


# A workflow's search attributes cannot change once it has ended: a case terminated, timed out
# or failed keeps CaseStatus "open" (the store is reconciled: starter.reconcile), and each run
# a case continued as new from keeps the values it had then. So "open" is a running workflow
# whose CaseStatus says so, and "closed" a closed CaseStatus or a workflow that ended otherwise.
_STATUS_QUERIES = {
    "open": f"{search.CASE_STATUS.name} = 'open' AND ExecutionStatus = 'Running'",
    "closed": (
        f"({search.CASE_STATUS.name} = 'closed' OR "
        "ExecutionStatus IN ('Terminated', 'TimedOut', 'Failed', 'Canceled'))"
    ),
}


# How long raise_case waits for a new case to open (pin its definition, allocate its owners).
OPEN_TIMEOUT_SECONDS = 60.0
# The events that close a run (a failed run's is read for its refusal).
_CLOSED = frozenset(
    {
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
    }
)


class RequestRefusedError(RequestRefused):
    """The case refused a request; nothing changed. `code` is the rule broken. The same class
    as the core's refusals (`domain.errors.RequestRefused`), so one `except` catches both."""


# The refusals a caller meets from the client beyond the rules' own (domain.case_rules
# REFUSAL_CODES): a raise whose topic is not in force or that finds no configuration, a
# reference used by another case, a message to a case that has not opened yet (after
# `SendRetry.total_seconds` of retrying), a case too busy to take a message for as long.
CLIENT_REFUSAL_CODES: tuple[str, ...] = (
    "unknown_topic",
    "no_configuration",
    "reference_in_use",
    "case_not_open_yet",
    "case_busy",
)

# The pin activity's error types (in histories, as the Web UI shows them) as the refusal codes
# a caller of raise_case meets, the same as the raise check's.
_RAISE_FAILURE_CODES = {"DefinitionError": "unknown_topic", "NoConfiguration": "no_configuration"}

# Checks a raise before anything starts (see `starter.raise_check.store_raise_check`).
RaiseCheck = Callable[[RaiseCase], None]


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


class BulkOutcome(BaseModel):
    """What a bulk reassignment did with one task (or, with task "-", one case)."""

    reference: str
    task: str
    outcome: Literal["moved", "refused", "failed"]
    detail: str = ""


def new_request_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class SendRetry:
    """How `CaseClient.send` retries what the server says is temporary, and for how long.

    Retried, with capped exponential backoff and full jitter (each wait is random between 0
    and min(max_delay, first_delay * 2**n), so that callers refused together do not come
    back together):

    - RPC RESOURCE_EXHAUSTED: the server takes a bounded number of updates to one case at
      once (10 in flight by default) and refuses the rest before admitting them;
    - an update refused with `case_not_open_yet`: the case has not pinned its definition yet
      (a raise that did not wait for it); the validator refused it before history;
    - RPC UNAVAILABLE and DEADLINE_EXCEEDED: no answer (the server restarting, an update
      aborted with the workflow task that carried it). The request may have been carried
      out; repeating it is safe because it carries its request id: the case answers a
      repeat as a duplicate and changes nothing (`domain.case_rules.is_duplicate`), and an
      update is repeated under the same update id, so a server that has already taken it
      answers with its outcome.

    Retrying alone is not enough: past the server's limit, the dev server also aborts updates
    it had admitted, so updates sent 200 at once to one case were answered 99 in 135 s even
    with retrying (measured). So one client keeps at most `updates_in_flight_per_case`
    updates to one case under way at once (the others wait their turn, within the same time
    bound), and only one as soon as the server says the case is busy, growing back as
    answers come (`_CaseGate`). Measured on the dev server, 200 updates at once to one case:
    from one client, all answered in about 1.5 s with no retry; from 4 clients (20 in
    flight) with the SDK's own RPC retries off, all in about 4 s, 10 retried. From 20
    clients at once (20 in flight however far each backs off) they need the SDK's own
    retries too (on by default: all answered in 18 s).

    Nothing else is retried: a refusal is the case's answer. No new attempt starts after
    `total_seconds`; `send` then raises RequestRefusedError `case_busy` or
    `case_not_open_yet` (every attempt was refused before the case saw it: nothing changed),
    or CaseUnavailableError when some attempt had no answer (it may have been carried out).
    `total_seconds=0` gives up at the first temporary answer."""

    total_seconds: float = 30.0
    first_delay_seconds: float = 0.05
    max_delay_seconds: float = 2.0
    updates_in_flight_per_case: int = 5


class CaseUnavailableError(RPCError):
    """`CaseClient.send` had no answer from the case within `SendRetry.total_seconds`: the
    request may or may not have been carried out. Send it again with the same request id to
    find out (a repeat is answered as a duplicate). An RPCError (UNAVAILABLE or
    DEADLINE_EXCEEDED, as the last attempt met), so existing handlers of those still apply."""


# The RPC answers that mean "try again": whether the request was refused before it was
# admitted (nothing changed), or may have been carried out.
_TEMPORARY_RPC: dict[RPCStatusCode, bool] = {
    RPCStatusCode.RESOURCE_EXHAUSTED: False,
    RPCStatusCode.UNAVAILABLE: True,
    RPCStatusCode.DEADLINE_EXCEEDED: True,
}


class _NoTurn(Exception):
    """No turn at a case's gate before the deadline."""


class _Lane:
    """One case's gate: the updates this client has under way to it, and how many it may."""

    def __init__(self, limit: int) -> None:
        self.most = limit
        self.limit = float(limit)
        self.in_flight = 0
        self.users = 0
        self.changed = asyncio.Condition()


class _CaseGate:
    """How many updates to one case this client keeps under way at once: at most
    `updates_in_flight_per_case`, and down to one as soon as the server says the case is
    busy or drops updates, growing back by one per `_GROW_EVERY` answers (the way TCP
    shares a link). Past the server's own limit, the dev server aborts updates it had
    admitted along with refusing new ones (measured without narrowing: 3 clients of 5 at a
    time, SDK retries off, answered 11 of 200 in 30 s), so the clients of one case must back
    off together, not only retry. A case's
    lane lives only while someone holds or waits for a turn in it."""

    _GROW_EVERY = 5

    def __init__(self, limit: int) -> None:
        self._limit = max(1, limit)
        self._lanes: dict[str, _Lane] = {}

    @contextlib.asynccontextmanager
    async def turn(self, reference: str, deadline: float) -> AsyncIterator[None]:
        """Wait for a turn at case `reference`, until `deadline` (the loop's clock): past
        it, raise _NoTurn. The answer of the block (a temporary RPC error or not) sets how
        many turns the case has next."""
        lane = self._lanes.setdefault(reference, _Lane(self._limit))
        lane.users += 1
        try:
            timeout = max(0.0, deadline - asyncio.get_running_loop().time())
            try:
                async with asyncio.timeout(timeout), lane.changed:
                    await lane.changed.wait_for(lambda: lane.in_flight < int(lane.limit))
                    lane.in_flight += 1
            except TimeoutError:
                raise _NoTurn from None
            temporary = False
            try:
                yield
            except RPCError as err:
                temporary = err.status in _TEMPORARY_RPC
                raise
            finally:
                async with lane.changed:
                    lane.in_flight -= 1
                    if temporary:
                        lane.limit = 1.0
                    else:
                        lane.limit = min(float(lane.most), lane.limit + 1 / self._GROW_EVERY)
                    lane.changed.notify_all()
        finally:
            lane.users -= 1
            if lane.users == 0:
                del self._lanes[reference]


class _Retrying:
    """The retry state of one `send`: attempts, the deadline, whether any went unanswered."""

    def __init__(self, settings: SendRetry, reference: str, name: str) -> None:
        self.settings = settings
        self.reference = reference
        self.name = name
        loop = asyncio.get_running_loop()
        self._clock = loop.time
        self.started = loop.time()
        self.deadline = self.started + settings.total_seconds
        self.attempts = 1
        self.unanswered: RPCError | None = None

    async def wait(self, reason: str, error: BaseException) -> None:
        """Sleep before the next attempt, or raise the give-up error when it would start
        after the deadline."""
        if isinstance(error, RPCError) and _TEMPORARY_RPC.get(error.status):
            self.unanswered = error
        cap = self.settings.first_delay_seconds * 2 ** min(self.attempts - 1, 30)
        delay = random.uniform(0, min(self.settings.max_delay_seconds, cap))
        if self._clock() + delay > self.deadline:
            raise self.give_up(reason) from error
        log.debug(
            "retrying %s to case %s in %.2f s (attempt %d): %s",
            self.name,
            self.reference,
            delay,
            self.attempts + 1,
            reason,
        )
        await asyncio.sleep(delay)
        self.attempts += 1

    def give_up(self, reason: str) -> Exception:
        """The error `send` raises when out of time; `reason` is the last temporary answer."""
        elapsed = self._clock() - self.started
        tried = f"{self.attempts} attempt{'s' if self.attempts > 1 else ''} over {elapsed:.1f} s"
        if self.unanswered is not None:
            return CaseUnavailableError(
                f"no answer from case {self.reference} to {self.name} ({tried}; last: "
                f"{self.unanswered.message}); it may have been carried out: send it again "
                "with the same request id, a repeat is answered as a duplicate",
                self.unanswered.status,
                self.unanswered.raw_grpc_status,
            )
        if reason == "case_not_open_yet":
            return RequestRefusedError(
                reason,
                f"case {self.reference} has not opened yet ({tried}); nothing changed: is a "
                "worker polling its task queue?",
            )
        return RequestRefusedError(
            "case_busy",
            f"case {self.reference} is busy: {self.name} was refused by the server ({tried}; "
            "it takes a few updates to one case at a time); nothing changed, try again later",
        )


class CaseClient:
    """Drives cases through Temporal. Safe to share across tasks."""

    def __init__(
        self,
        client: Client,
        task_queue: str = DEFAULT_TASK_QUEUE,
        search_attributes: SearchAttributesMode = "auto",
        *,
        check_raise: RaiseCheck | None = None,
        send_retry: SendRetry | None = None,
        history_long_poll: bool = True,
    ) -> None:
        """`search_attributes` (TEMPORAL_SEARCH_ATTRIBUTES): whether new cases carry the case
        search attributes: `on` always, `off` never, `auto` if the namespace has them.
        `check_raise` runs before a case is started and raises RequestRefused for a raise the
        case would refuse (see `starter.raise_check`). `send_retry`: how `send` retries what
        the server says is temporary (default `SendRetry()`: up to 30 s).
        `history_long_poll`: wait for a raised case to open with a long poll on its history
        (a Temporal server answers it as the case's events arrive); False for a server that
        does not, such as the SDK's time-skipping test server, which answers it after about
        20 s with no events: the raise then polls the case's `state` at once."""
        self.client = client
        self.task_queue = task_queue
        self.search_attributes = search_attributes
        self._has_search_attributes: bool | None = {"on": True, "off": False}.get(search_attributes)
        self._check_raise = check_raise
        self.send_retry = send_retry or SendRetry()
        self._case_gate = _CaseGate(self.send_retry.updates_in_flight_per_case)
        self._history_long_poll = history_long_poll

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

    async def raise_case(
        self, case: RaiseCase, *, wait_open: bool = True
    ) -> WorkflowHandle[Any, CaseState]:
        """Start a case and (with `wait_open`) return once it has opened.

        Refused with RequestRefusedError, changing nothing, when the raise check (if the client
        has one) or the case itself refuses it, and with code `reference_in_use` when the
        reference belongs to a case raised with different input. The same raise repeated
        returns the case already there. The reference stays free after a refused raise: the
        workflow ID policy lets a new case reuse the ID of a run that failed."""
        if self._check_raise is not None:
            try:
                self._check_raise(case)
            except RequestRefused as refused:
                raise RequestRefusedError(refused.code, str(refused)) from None
        attrs = (
            search.initial(case.reference, case.topic)
            if await self.has_search_attributes()
            else None
        )
        try:
            handle: WorkflowHandle[Any, CaseState] = await self.client.start_workflow(
                WORKFLOW_TYPE,
                CaseInput(case=case),
                id=case_workflow_id(case.reference),
                task_queue=self.task_queue,
                result_type=CaseState,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
                search_attributes=attrs,
                static_summary=f"Case {case.reference} · {case.topic}",
                static_details=(
                    f"Housing options case **{case.reference}**, topic `{case.topic}`, "
                    f"raised by `{case.raised_by}`."
                ),
            )
        except WorkflowAlreadyStartedError:
            handle = self.client.get_workflow_handle(
                case_workflow_id(case.reference), result_type=CaseState
            )
            await self._same_raise(handle, case)
        if wait_open:
            await self._wait_open(handle)
        return handle

    async def _same_raise(self, handle: WorkflowHandle[Any, CaseState], case: RaiseCase) -> None:
        """Refuse, naming the fields (never their values: notes are personal data), a raise
        whose reference belongs to a case raised with other input."""
        async for event in handle.fetch_history_events():
            payloads = event.workflow_execution_started_event_attributes.input.payloads
            [existing] = await self.client.data_converter.decode(payloads, [CaseInput])
            break
        else:  # pragma: no cover - every workflow history starts with its started event
            raise RequestRefusedError("reference_in_use", f"case {case.reference} exists")
        if existing.case == case:
            return
        fields = [
            f for f in RaiseCase.model_fields if getattr(existing.case, f) != getattr(case, f)
        ]
        raise RequestRefusedError(
            "reference_in_use",
            f"case {case.reference} already exists, raised with a different "
            f"{', '.join(fields)}; a reference identifies one case",
        )

    async def _wait_open(self, handle: WorkflowHandle[Any, CaseState]) -> None:
        """Wait until the case has opened, or answer why it never will.

        A long poll on the case's history, answered by the server alone, with one query of
        the case after each workflow task it completes (as a rule one: the opening): polling
        the case itself would spend the worker's time on every poll, and at a raise rate of
        tens a second that is a fair share of what opening costs."""
        try:
            async with asyncio.timeout(OPEN_TIMEOUT_SECONDS):
                if not (self._history_long_poll and await self._opened(handle)):
                    await self._poll_open(handle)
        except TimeoutError:
            raise TimeoutError(
                f"case {handle.id} did not open within {OPEN_TIMEOUT_SECONDS:.0f} s: "
                "is a worker polling its task queue?"
            ) from None

    async def _opened(self, handle: WorkflowHandle[Any, CaseState]) -> bool:
        """True once the case has opened or run its course; False if the server's history
        ended without saying (the time-skipping test server answers a long poll with no
        events)."""
        async for event in handle.fetch_history_events(wait_new_event=True):
            kind = event.event_type
            if kind == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
                # A workflow task that only kept a slow opening alive completes too.
                opened = await handle.query("state", result_type=CaseState | None)  # type: ignore[arg-type]
                if opened is not None:
                    return True
            elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
                await self._refusal(handle)
                return True  # pragma: no cover - a failed run's result is its failure
            elif kind in _CLOSED:
                return True  # finished: a repeated raise of a case that has run its course
        return False

    async def _poll_open(self, handle: WorkflowHandle[Any, CaseState]) -> None:
        delay = 0.02
        while True:
            desc = await handle.describe()
            if desc.status == WorkflowExecutionStatus.FAILED:
                await self._refusal(handle)
            if desc.status != WorkflowExecutionStatus.RUNNING:
                return
            if await handle.query("state", result_type=CaseState | None) is not None:  # type: ignore[arg-type]
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.25)

    async def _refusal(self, handle: WorkflowHandle[Any, CaseState]) -> None:
        """Raise the refusal a failed case ended with."""
        try:
            await handle.result()
        except WorkflowFailureError as failed:
            cause = failed.cause
            # A refusal from an activity (pinning, claiming the reference) comes
            # wrapped in the activity's failure.
            while isinstance(cause, ActivityError) and cause.cause is not None:
                cause = cause.cause
            if isinstance(cause, ApplicationError):
                code = _RAISE_FAILURE_CODES.get(cause.type or "", cause.type or "refused")
                raise RequestRefusedError(code, cause.message) from None
            raise

    async def send(
        self, reference: str, msg: Message[R], req: R, *, wait: bool = True
    ) -> TaskView | None:
        """Send message `msg` (a row of `domain.messages`) with its request. As an update
        (`wait`, the default) it answers with the task's new state (None for a message about
        the case itself) or raises RequestRefusedError; as a signal it answers None.

        What the server says is temporary (too many updates to the case at once, a case not
        open yet, no answer) is retried with backoff for up to `send_retry.total_seconds`,
        then answered with a clear error: see `SendRetry`."""
        handle = self.handle(reference)
        # One update id for every attempt: a server that has taken the update answers a
        # repeat with its outcome rather than running it again.
        update_id = new_request_id()
        retrying = _Retrying(self.send_retry, reference, msg.name)
        while True:
            try:
                if not wait:
                    await handle.signal(msg.name, req)
                    return None
                async with self._case_gate.turn(reference, retrying.deadline):
                    result: TaskView | None = await handle.execute_update(
                        msg.name,
                        req,
                        id=update_id,
                        result_type=TaskView | None,  # type: ignore[arg-type]
                    )
                return result
            except _NoTurn:
                raise retrying.give_up("case_busy") from None
            except WorkflowUpdateFailedError as err:
                cause = err.cause
                if isinstance(cause, ApplicationError):
                    if cause.type == "case_not_open_yet":
                        await retrying.wait(cause.type, err)
                        continue
                    raise RequestRefusedError(cause.type or "refused", cause.message) from None
                raise
            except RPCError as err:
                if err.status in _TEMPORARY_RPC:
                    await retrying.wait(err.status.name, err)
                    continue
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
        return await self.send(reference, ADD_TASK, req, wait=wait)

    async def reassign_task(
        self, reference: str, req: ReassignTask, *, wait: bool = True
    ) -> TaskView | None:
        """Reassign a task to a user or a role, with a reason."""
        return await self.send(reference, REASSIGN_TASK, req, wait=wait)

    async def complete_task(
        self, reference: str, req: CompleteTask, *, wait: bool = True
    ) -> TaskView | None:
        """Complete an open task."""
        return await self.send(reference, COMPLETE_TASK, req, wait=wait)

    async def close_case(self, reference: str, req: CloseCase, *, wait: bool = True) -> None:
        """Close the case with a reason; open tasks are cancelled."""
        await self.send(reference, CLOSE_CASE, req, wait=wait)

    async def hold_task(
        self, reference: str, req: HoldTask, *, wait: bool = True
    ) -> TaskView | None:
        """Put a task on hold until a planned release, with a reason."""
        return await self.send(reference, HOLD_TASK, req, wait=wait)

    async def release_task(
        self, reference: str, req: ReleaseTask, *, wait: bool = True
    ) -> TaskView | None:
        """Release a held task now, or move its planned release."""
        return await self.send(reference, RELEASE_TASK, req, wait=wait)

    async def hold_case(self, reference: str, req: HoldCase, *, wait: bool = True) -> None:
        """Put the whole case on hold until a planned release (statutory periods run on)."""
        await self.send(reference, HOLD_CASE, req, wait=wait)

    async def release_case(self, reference: str, req: ReleaseCase, *, wait: bool = True) -> None:
        """Release the case hold now, or move its planned release."""
        await self.send(reference, RELEASE_CASE, req, wait=wait)

    async def revise_target(
        self, reference: str, req: ReviseTarget, *, wait: bool = True
    ) -> TaskView | None:
        """Revise the target of a task (or of the case, `req.task` None)."""
        return await self.send(reference, REVISE_TARGET, req, wait=wait)

    async def cancel_task(
        self, reference: str, req: CancelTask, *, wait: bool = True
    ) -> TaskView | None:
        """Cancel a task with a reason (`req.cascade`: and the tasks that wait on it)."""
        return await self.send(reference, CANCEL_TASK, req, wait=wait)

    async def reassign_all(
        self,
        references: Sequence[str],
        owner: Owner,
        to: Owner,
        *,
        actor: str,
        reason: ReassignReason,
        note: str = "",
        progress: Callable[[], None] | None = None,
    ) -> list[BulkOutcome]:
        """Reassign every unfinished task `owner` owns on the given cases to `to` (an absent
        officer's work, a leaver's). Each case's own state decides (a list from the store only
        suggests which cases to look at); each reassignment is a validated update, and a
        refusal is reported, not raised. A task already moved is no longer `owner`'s, so
        running it again after an interruption moves only what is left."""
        results: list[BulkOutcome] = []
        batch = new_request_id()[:12]
        for ref in references:
            try:
                state = await self.state(ref)
            except (RPCError, RequestRefused) as e:
                results.append(
                    BulkOutcome(reference=ref, task="-", outcome="failed", detail=str(e))
                )
                continue
            for task in state.tasks:
                if task.owner != owner or task.status not in ("open", "waiting", "lagging"):
                    continue
                req = ReassignTask(
                    request_id=f"bulk-{batch}-{ref}-{task.key}",
                    actor=actor,
                    task=task.key,
                    to=to,
                    reason=reason,
                    note=note,
                )
                try:
                    await self.reassign_task(ref, req)
                    results.append(BulkOutcome(reference=ref, task=task.key, outcome="moved"))
                except RequestRefused as refused:
                    detail = f"{refused.code}: {refused}"
                    results.append(
                        BulkOutcome(reference=ref, task=task.key, outcome="refused", detail=detail)
                    )
            if progress is not None:
                progress()
        return results

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
