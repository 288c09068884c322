"""`CaseClient.send` retries what the server says is temporary, with backoff, and gives up with
a clear error after a bounded time (starter/client.py, `SendRetry`).

Unit tests with a fake workflow handle pin down what is retried, for how long and what is
raised at the end; the dev-server tests send 200 updates at once to one case, through one
client and through several, and to a case that has not opened yet: every update is
answered (a refusal is an answer), no RPC error escapes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import re
import time
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any, cast

import pytest
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RetryConfig, RPCError, RPCStatusCode

from config_files import load_and_validate
from domain.messages import COMPLETE_TASK, REASSIGN_TASK
from models.case import Owner
from models.messages import CompleteTask, RaiseCase, ReassignTask, TaskView
from starter.client import CaseClient, CaseUnavailableError, RequestRefusedError, SendRetry
from starter.connection import CASE_DATA_CONVERTER
from starter.devserver import DevServer
from store.db import create_schema, make_engine
from store.repository import save_configuration
from tests.helpers import REPO
from tests.helpers.store import seed_sample_staff
from worker import build_worker

FAST = SendRetry(total_seconds=0.5, first_delay_seconds=0.01, max_delay_seconds=0.05)
REQ = CompleteTask(request_id="r1", actor="adviser1", task="call-back")


# ------------------------------------------------------------------- unit: a fake handle


def _rpc(status: RPCStatusCode, message: str = "temporary") -> RPCError:
    return RPCError(message, status, b"")


def _not_open_yet() -> WorkflowUpdateFailedError:
    return WorkflowUpdateFailedError(
        ApplicationError("the case has not opened yet", type="case_not_open_yet")
    )


class FakeHandle:
    """Answers each attempt with the next of `answers` (an exception is raised), then with a
    view; records the update ids and how many updates were under way at once."""

    def __init__(self, answers: list[BaseException], pause: float = 0.0) -> None:
        self.answers = list(answers)
        self.pause = pause
        self.update_ids: list[str | None] = []
        self.signals = 0
        self.in_flight = 0
        self.most_in_flight = 0
        self.seen: list[int] = []  # updates under way as each attempt arrived (itself included)

    async def execute_update(self, name: str, req: Any, *, id: str | None, **_: Any) -> Any:
        self.update_ids.append(id)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        self.seen.append(self.in_flight)
        try:
            await asyncio.sleep(self.pause)
            if self.answers:
                raise self.answers.pop(0)
            return TaskView(
                key=req.task,
                name="Call back",
                status="completed",
                owner=None,
                started_at=None,
                due_at=None,
                sla_status=None,
            )
        finally:
            self.in_flight -= 1

    async def signal(self, name: str, req: Any) -> None:
        self.signals += 1
        if self.answers:
            raise self.answers.pop(0)


class FakeClient:
    def __init__(self, handles: dict[str, FakeHandle]) -> None:
        self.handles = handles

    def get_workflow_handle(self, workflow_id: str, **_: Any) -> FakeHandle:
        return self.handles[workflow_id.removeprefix("case-")]


def _client(handle: FakeHandle, retry: SendRetry = FAST) -> CaseClient:
    return CaseClient(cast(Client, FakeClient({"HO-1": handle})), "q", send_retry=retry)


@pytest.mark.parametrize(
    "temporary",
    [
        _rpc(RPCStatusCode.RESOURCE_EXHAUSTED, "limit on number of concurrent in-flight updates"),
        _rpc(RPCStatusCode.UNAVAILABLE, "workflow update was aborted"),
        _rpc(RPCStatusCode.DEADLINE_EXCEEDED),
        _not_open_yet(),
    ],
    ids=["resource_exhausted", "unavailable", "deadline_exceeded", "case_not_open_yet"],
)
async def test_a_temporary_answer_is_retried_under_the_same_update_id(
    temporary: BaseException,
) -> None:
    handle = FakeHandle([temporary, temporary, temporary])
    view = await _client(handle).send("HO-1", COMPLETE_TASK, REQ)
    assert view is not None and view.status == "completed"
    assert len(handle.update_ids) == 4
    # One update id for the request: a server that took an attempt answers with its outcome.
    assert len(set(handle.update_ids)) == 1 and handle.update_ids[0] is not None


async def test_each_request_has_an_update_id_of_its_own() -> None:
    handle = FakeHandle([])
    client = _client(handle)
    await client.send("HO-1", COMPLETE_TASK, REQ)
    await client.send("HO-1", COMPLETE_TASK, REQ.model_copy(update={"request_id": "r2"}))
    assert len(set(handle.update_ids)) == 2


async def test_a_refusal_is_the_answer_and_is_not_retried() -> None:
    refused = WorkflowUpdateFailedError(ApplicationError("no", type="not_permitted"))
    handle = FakeHandle([refused, refused])
    with pytest.raises(RequestRefusedError) as err:
        await _client(handle).send("HO-1", COMPLETE_TASK, REQ)
    assert err.value.code == "not_permitted"
    assert len(handle.update_ids) == 1
    # Nor an RPC error that is not temporary.
    handle = FakeHandle([_rpc(RPCStatusCode.INVALID_ARGUMENT)])
    with pytest.raises(RPCError):
        await _client(handle).send("HO-1", COMPLETE_TASK, REQ)
    assert len(handle.update_ids) == 1


async def test_a_case_busy_for_longer_than_the_bound_is_refused_as_case_busy() -> None:
    handle = FakeHandle([_rpc(RPCStatusCode.RESOURCE_EXHAUSTED)] * 10_000)
    started = time.monotonic()
    with pytest.raises(RequestRefusedError) as err:
        await _client(handle).send("HO-1", COMPLETE_TASK, REQ)
    waited = time.monotonic() - started
    assert err.value.code == "case_busy"
    assert "HO-1" in str(err.value) and "nothing changed" in str(err.value)
    assert 0.4 < waited < FAST.total_seconds + 0.2
    assert len(handle.update_ids) > 5  # backed off, but kept trying within the bound


async def test_a_case_that_does_not_open_within_the_bound_is_refused_as_not_open_yet() -> None:
    handle = FakeHandle([_not_open_yet()] * 10_000)
    with pytest.raises(RequestRefusedError) as err:
        await _client(handle).send("HO-1", COMPLETE_TASK, REQ)
    assert err.value.code == "case_not_open_yet"
    assert "worker" in str(err.value)


async def test_no_answer_within_the_bound_says_the_request_may_have_been_carried_out() -> None:
    answers = [_rpc(RPCStatusCode.UNAVAILABLE, "workflow update was aborted")]
    handle = FakeHandle([*answers, _rpc(RPCStatusCode.RESOURCE_EXHAUSTED)] * 5_000)
    with pytest.raises(CaseUnavailableError) as err:
        await _client(handle).send("HO-1", COMPLETE_TASK, REQ)
    # An RPCError still (UNAVAILABLE), so the command line's handling of those applies.
    assert isinstance(err.value, RPCError) and err.value.status == RPCStatusCode.UNAVAILABLE
    assert "may have been carried out" in str(err.value)
    assert "same request id" in str(err.value)


async def test_no_retry_gives_up_at_the_first_temporary_answer() -> None:
    handle = FakeHandle([_rpc(RPCStatusCode.RESOURCE_EXHAUSTED)])
    with pytest.raises(RequestRefusedError) as err:
        await _client(handle, SendRetry(total_seconds=0)).send("HO-1", COMPLETE_TASK, REQ)
    assert err.value.code == "case_busy"
    assert len(handle.update_ids) == 1


async def test_a_signal_is_retried_too() -> None:
    handle = FakeHandle([_rpc(RPCStatusCode.RESOURCE_EXHAUSTED), _rpc(RPCStatusCode.UNAVAILABLE)])
    assert await _client(handle).send("HO-1", COMPLETE_TASK, REQ, wait=False) is None
    assert handle.signals == 3


async def test_one_client_keeps_a_few_updates_to_one_case_in_flight() -> None:
    busy, other = FakeHandle([], pause=0.02), FakeHandle([], pause=0.02)
    client = CaseClient(
        cast(Client, FakeClient({"HO-1": busy, "HO-2": other})),
        "q",
        send_retry=SendRetry(updates_in_flight_per_case=3),
    )

    def req(i: int) -> CompleteTask:
        return REQ.model_copy(update={"request_id": f"r{i}"})

    await asyncio.gather(
        *(client.send("HO-1", COMPLETE_TASK, req(i)) for i in range(30)),
        *(client.send("HO-2", COMPLETE_TASK, req(i)) for i in range(3)),
    )
    assert busy.most_in_flight == 3 and len(busy.update_ids) == 30
    assert other.most_in_flight == 3  # one busy case does not hold up another


async def test_a_busy_case_gets_one_update_at_a_time_then_more_again() -> None:
    # Past the server's limit, more updates at once make things worse (the dev server aborts
    # admitted ones too): one busy answer narrows the client to one at a time.
    handle = FakeHandle([_rpc(RPCStatusCode.RESOURCE_EXHAUSTED)], pause=0.01)
    client = _client(handle, SendRetry(updates_in_flight_per_case=5))
    reqs = [REQ.model_copy(update={"request_id": f"r{i}"}) for i in range(40)]
    await asyncio.gather(*(client.send("HO-1", COMPLETE_TASK, r) for r in reqs))
    assert handle.seen[:5] == [1, 2, 3, 4, 5]
    assert handle.seen[5:8] == [1, 1, 1]  # the first batch answered; one at a time now
    assert max(handle.seen[-5:]) > 1  # and more again as answers come
    assert len(handle.update_ids) == 41


async def test_waiting_for_a_turn_counts_against_the_bound() -> None:
    slow = FakeHandle([], pause=1.0)
    retry = SendRetry(total_seconds=0.2, updates_in_flight_per_case=1)
    client = _client(slow, retry)
    first = asyncio.create_task(client.send("HO-1", COMPLETE_TASK, REQ))
    await asyncio.sleep(0.01)
    with pytest.raises(RequestRefusedError) as err:
        await client.send("HO-1", COMPLETE_TASK, REQ.model_copy(update={"request_id": "r2"}))
    assert err.value.code == "case_busy"
    assert (await first) is not None


# ------------------------------------------------------------ the dev server and a worker

OWNERS = (Owner(kind="user", key="adviser1"), Owner(kind="user", key="adviser3"))


class RetryLog(logging.Handler):
    """The retries `send` logs (attempt, delay, reason), to report them."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.delays: list[float] = []
        self.reasons: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        found = re.search(r"in ([0-9.]+) s \(attempt \d+\): (\w+)", record.getMessage())
        if found:
            self.delays.append(float(found.group(1)))
            self.reasons.append(found.group(2))


@pytest.fixture
def retry_log() -> Iterator[RetryLog]:
    logger = logging.getLogger("starter.client")
    handler, level = RetryLog(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


async def _burst(clients: list[CaseClient], ref: str, count: int) -> tuple[int, list[str]]:
    """`count` reassignments of one task sent at once, alternating between two owners and
    spread over `clients`: how many were carried out, and the refusal codes of the rest. Any
    other error (an RPC error) escapes."""

    async def one(i: int) -> str | None:
        req = ReassignTask(
            request_id=f"burst-{i}",
            actor="manager1",
            task="emergency-interview",
            to=OWNERS[i % 2],
            reason="workload",
        )
        try:
            view = await clients[i % len(clients)].send(ref, REASSIGN_TASK, req)
        except RequestRefusedError as refused:
            return refused.code
        # Carried out as asked, once: a retry never came back as a duplicate of itself.
        assert view is not None and view.owner == req.to and not view.duplicate
        return None

    answers = await asyncio.gather(*(one(i) for i in range(count)))
    refusals = [a for a in answers if a is not None]
    return len(answers) - len(refusals), refusals


# The SDK's own RPC retries off: what is retried, `send` retries.
NO_SDK_RETRIES = RetryConfig(max_retries=0, max_elapsed_time_millis=0)


@pytest.mark.parametrize(
    ("clients", "sdk_retries", "worker_first"),
    [(1, True, True), (4, False, True), (1, False, False)],
    ids=["one-client", "four-clients-no-sdk-retries", "before-the-case-opens"],
)
async def test_200_updates_at_once_to_one_case_are_all_answered(
    tmp_path: Path,
    dev_server: DevServer,
    activity_executor: concurrent.futures.ThreadPoolExecutor,
    retry_log: RetryLog,
    clients: int,
    sdk_retries: bool,
    worker_first: bool,
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'casework.db'}")
    create_schema(engine)
    save_configuration(engine, load_and_validate(REPO / "config" / "sample", date.today()), "t")
    seed_sample_staff(engine)
    client = await Client.connect(
        dev_server.address,
        data_converter=CASE_DATA_CONVERTER,
        retry_config=None if sdk_retries else NO_SDK_RETRIES,
    )
    queue = f"retry-{uuid.uuid4().hex[:8]}"
    # Several clients (as several processes would) together keep more updates in flight
    # than the server's limit of 10 per case: the server refuses some, and they are retried.
    senders = [CaseClient(client, queue, "off") for _ in range(clients)]
    ref = f"BURST-{uuid.uuid4().hex[:8]}"
    case = RaiseCase(reference=ref, topic="homeless-tonight", raised_by="adviser1")
    try:
        if not worker_first:
            # The updates are there before the case has run at all: its first workflow task
            # meets them before the definition is pinned, and refuses them (not open yet).
            await senders[0].raise_case(case, wait_open=False)
            burst = asyncio.create_task(_burst(senders, ref, 200))
            await asyncio.sleep(0.5)
        async with build_worker(client, engine, queue, activity_executor):
            started = time.monotonic()
            if worker_first:
                await senders[0].raise_case(case)
                burst = asyncio.create_task(_burst(senders, ref, 200))
            carried_out, refusals = await burst
            took = time.monotonic() - started
    finally:
        engine.dispose()
    # Every update was answered: carried out, or refused because a concurrent one had
    # already moved the task to that owner (a legitimate answer).
    assert carried_out + len(refusals) == 200
    assert set(refusals) <= {"same_owner"}, refusals
    assert carried_out >= 1
    print(
        f"\n{clients} client(s), SDK retries {sdk_retries}, worker first {worker_first}: "
        f"200 answered in {took:.1f} s "
        f"({carried_out} carried out, {len(refusals)} refused same_owner); "
        f"{len(retry_log.delays)} retries ({', '.join(sorted(set(retry_log.reasons))) or '-'}), "
        f"longest wait {max(retry_log.delays, default=0.0):.2f} s"
    )
