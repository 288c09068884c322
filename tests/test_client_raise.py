"""Raising a case through the client library, as a service meets it: a retried raise is not
an error, a refused raise never burns the reference, the first message can follow at once,
and the raise check refuses before anything starts."""

from __future__ import annotations

import concurrent.futures
import uuid
from pathlib import Path

import pytest
from temporalio.common import RawValue
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from domain.errors import RequestRefused
from domain.messages import COMPLETE_TASK
from models.messages import CaseInput, CloseCase, CompleteTask, RaiseCase
from starter.client import CLIENT_REFUSAL_CODES, CaseClient, RequestRefusedError
from starter.devserver import DevServer
from starter.raise_check import store_raise_check
from store.db import create_schema, make_engine
from tests.helpers.workflow_harness import case_engine, live_cases
from workflows.case_workflow import HousingOptionsCase, case_workflow_id


async def test_a_repeated_raise_returns_the_case_and_a_different_one_is_refused(
    tmp_path: Path,
) -> None:
    async with case_engine(tmp_path) as eng:
        case = RaiseCase(reference="RAISE-0001", topic="care-leaver", raised_by="adviser1")
        first = await eng.client.raise_case(case)
        again = await eng.client.raise_case(case)
        assert again.id == first.id
        assert (await eng.client.state("RAISE-0001")).created_by == "adviser1"

        other = case.model_copy(update={"raised_by": "adviser2", "notes": "private words"})
        with pytest.raises(RequestRefusedError) as refused:
            await eng.client.raise_case(other)
        assert refused.value.code == "reference_in_use"
        assert "raised_by, notes" in str(refused.value)
        assert "private words" not in str(refused.value)  # never echo free text


async def test_the_first_message_follows_a_raise_at_once(tmp_path: Path) -> None:
    async with case_engine(tmp_path) as eng:
        await eng.client.raise_case(
            RaiseCase(reference="RAISE-0002", topic="care-leaver", raised_by="adviser1")
        )
        # No wait: raise_case returned once the case had opened.
        state = await eng.client.state("RAISE-0002")
        first = next(t for t in state.tasks if t.status == "open")
        view = await eng.client.complete_task(
            "RAISE-0002", CompleteTask(request_id="r1", actor="adviser1", task=first.key)
        )
        assert view is not None and view.status == "completed"


async def test_a_refused_raise_leaves_the_reference_free(tmp_path: Path) -> None:
    async with case_engine(tmp_path) as eng:
        bad = RaiseCase(reference="RAISE-0003", topic="care-leaver", raised_by="adviser5")
        with pytest.raises(RequestRefusedError) as refused:
            await eng.client.raise_case(bad)  # adviser5 is disabled: the case refuses
        assert refused.value.code == "unknown_actor"
        good = bad.model_copy(update={"raised_by": "adviser1"})
        handle = await eng.client.raise_case(good)
        assert (await eng.client.state("RAISE-0003")).created_by == "adviser1"
        assert handle.id == "case-RAISE-0003"


async def test_on_the_dev_server_a_raise_waits_on_the_history_not_by_polling(
    tmp_path: Path,
    dev_server: DevServer,
    activity_executor: concurrent.futures.ThreadPoolExecutor,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The real server answers the long poll on the case's history, so the polling fallback
    # (for the time-skipping server, whose long poll ends with no events) must not run: for
    # a case that opens, one that refuses (its history has the refusing workflow task's
    # completion just before the failure) and a repeated raise of a case that has ended.
    async def no_polling(self: CaseClient, handle: object) -> None:
        raise AssertionError("the client polled: the long poll on the history ended early")

    monkeypatch.setattr(CaseClient, "_poll_open", no_polling)
    ref = f"RAISE-{uuid.uuid4().hex[:8]}"
    async with live_cases(tmp_path, dev_server, activity_executor, "raise") as live:
        bad = RaiseCase(reference=ref, topic="care-leaver", raised_by="adviser5")
        with pytest.raises(RequestRefusedError) as refused:
            await live.cases.raise_case(bad)  # adviser5 is disabled: the case refuses
        assert refused.value.code == "unknown_actor"

        good = bad.model_copy(update={"raised_by": "adviser1"})
        handle = await live.cases.raise_case(good)
        assert (await live.cases.state(ref)).created_by == "adviser1"

        await live.cases.close_case(
            ref,
            CloseCase(request_id="r-close", actor="adviser1", reason="withdrew the application"),
        )
        assert (await handle.result()).status == "closed"
        again = await live.cases.raise_case(good)  # returns: the case has run its course
        assert again.id == handle.id

        # A terminated case's reference may start a new run (Temporal lets an ID whose run
        # failed, was cancelled or terminated start again), but the store still holds the
        # reference: the new run refuses, and the client says so.
        await live.cases.raise_case(other := good.model_copy(update={"reference": ref + "-T"}))
        await live.client.get_workflow_handle(case_workflow_id(other.reference)).terminate()
        with pytest.raises(RequestRefusedError) as reused:
            await live.cases.raise_case(other)
        assert reused.value.code == "reference_in_use"


async def test_the_raise_check_refuses_before_anything_starts(tmp_path: Path) -> None:
    async with case_engine(tmp_path) as eng:
        checked = CaseClient(
            eng.env.client,
            eng.client.task_queue,
            check_raise=store_raise_check(eng.engine),
            history_long_poll=False,
        )
        for case, code, listed in (
            (
                RaiseCase(reference="RAISE-0004", topic="care-levaer", raised_by="adviser1"),
                "unknown_topic",
                "care-leaver",
            ),
            (
                RaiseCase(reference="RAISE-0004", topic="care-leaver", raised_by="adviser5"),
                "unknown_actor",
                "adviser1",
            ),
            (
                RaiseCase(
                    reference="RAISE-0004",
                    topic="care-leaver",
                    raised_by="adviser1",
                    extra_tasks=["s184-decision"],
                ),
                "task_not_allowed",
                "optional tasks",
            ),
        ):
            with pytest.raises(RequestRefusedError) as refused:
                await checked.raise_case(case)
            assert refused.value.code == code
            assert listed in str(refused.value)
        # Nothing was started: the reference is unknown to Temporal.
        with pytest.raises(RPCError) as missing:
            await eng.env.client.get_workflow_handle("case-RAISE-0004").describe()
        assert missing.value.status == RPCStatusCode.NOT_FOUND


def test_no_configuration_is_a_refusal(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    create_schema(engine)
    case = RaiseCase(reference="RAISE-0005", topic="care-leaver", raised_by="adviser1")
    with pytest.raises(RequestRefused) as refused:
        store_raise_check(engine)(case)
    assert refused.value.code == "no_configuration"
    assert "config load" in str(refused.value)  # says what to do
    engine.dispose()


def test_a_message_before_the_case_opens_is_refused_as_not_open_yet() -> None:
    # The update validator of a case that has not pinned its definition yet (a raise that
    # did not wait for it): the caller is told to try again, nothing reaches history.
    to_payload = pydantic_data_converter.payload_converter.to_payload
    raised = CaseInput(case=RaiseCase(reference="RAISE-0006", topic="t", raised_by="adviser1"))
    case = HousingOptionsCase(RawValue(to_payload(raised)))
    req = CompleteTask(request_id="r", actor="adviser1", task="call-back")
    with pytest.raises(ApplicationError) as refused:
        case._validate(
            COMPLETE_TASK, RawValue(pydantic_data_converter.payload_converter.to_payload(req))
        )
    assert refused.value.type == "case_not_open_yet"


def test_every_client_refusal_code_is_exercised() -> None:
    # Keep CLIENT_REFUSAL_CODES and the tests in step: each code appears in a test.
    sources = "".join(
        (Path(__file__).parent / name).read_text(encoding="utf-8")
        for name in (
            "test_client_raise.py",
            "test_case_workflow.py",
            "test_cli_errors.py",
            "test_client_retry.py",
        )
    )
    missing = [code for code in CLIENT_REFUSAL_CODES if f'"{code}"' not in sources]
    assert missing == []
