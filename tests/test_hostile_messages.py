"""Messages that are malformed, oversized or reuse a request id never break a case, are
refused with a reason that names the rule and not the value, and are audited; a case's own
state stays bounded however many messages it gets (the whole trail is in the store)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import ActivityError, ApplicationError

from domain.planner.audit import AUDIT_KEPT
from models.case import Owner
from models.messages import CaseInput, CloseCase, CompleteTask, RaiseCase, ReassignTask
from starter.client import RequestRefusedError
from store.repository import case_audit
from tests.helpers.workflow_harness import case_engine, keep_history

HUGE = "x" * 1_000_000


async def test_malformed_and_oversized_messages_are_refused_and_audited(tmp_path: Path) -> None:
    async with case_engine(tmp_path) as eng:
        ref = "HOST-0001"
        handle = await eng.client.raise_case(
            RaiseCase(reference=ref, topic="care-leaver", raised_by="adviser1")
        )
        raw = eng.env.client.get_workflow_handle(handle.id)
        # As signals: a 1 MB actor, wrong types, a missing field, not an object at all.
        bad_signals: list[object] = [
            {"request_id": "s1", "actor": HUGE, "task": "call-back"},
            {"request_id": "s2", "actor": 7, "task": ["call-back"]},
            {"request_id": "s3", "task": "call-back"},
            "complete call-back please",
        ]
        for payload in bad_signals:
            await raw.signal("complete_task", payload)
        # As an update: refused before history, naming the field, never the value.
        with pytest.raises(WorkflowUpdateFailedError) as failed:
            await raw.execute_update(
                "complete_task", {"request_id": "u1", "actor": HUGE, "task": "call-back"}
            )
        cause = failed.value.cause
        assert isinstance(cause, ApplicationError) and cause.type == "invalid_request"
        assert "actor: at most 100 characters" in cause.message and "xxxx" not in cause.message

        # The case still answers, and a valid message still works.
        await eng.client.close_case(
            ref, CloseCase(request_id="end", actor="adviser1", reason="duty ended")
        )
        state = await eng.client.result(ref)
        assert state.status == "closed"
        refusals = [a for a in state.audit if a.outcome == "refused"]
        assert [(a.action, a.request_id, a.actor) for a in refusals] == [
            ("complete_task", "s1", "(invalid)"),
            ("complete_task", "s2", "(invalid)"),
            ("complete_task", "s3", "(invalid)"),
            ("complete_task", None, "(invalid)"),
        ]
        assert all(a.detail.startswith("invalid_request: not a") for a in refusals)
        assert all(len(a.detail) < 700 and "xxxx" not in a.detail for a in refusals)
        history = await raw.fetch_history()
        assert not [
            e for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
        ]


async def test_a_reused_request_id_is_refused(tmp_path: Path) -> None:
    async with case_engine(tmp_path) as eng:
        ref = "HOST-0002"
        await eng.client.raise_case(
            RaiseCase(reference=ref, topic="care-leaver", raised_by="adviser1")
        )
        move = ReassignTask(
            request_id="same", actor="adviser1", task="call-back",
            to=Owner(kind="role", key="team-leaders"), reason="workload",
        )  # fmt: skip
        assert (await eng.client.reassign_task(ref, move)) is not None
        again = await eng.client.reassign_task(ref, move)
        assert again is not None and again.duplicate
        close = CloseCase(request_id="same", actor="adviser1", reason="done")
        with pytest.raises(RequestRefusedError) as refused:
            await eng.client.close_case(ref, close)
        assert refused.value.code == "request_id_reused"
        await eng.client.close_case(ref, close, wait=False)  # as a signal: audited
        state = await eng.client.state(ref)
        assert state.status == "open"
        last = state.audit[-1]
        assert (last.action, last.outcome, last.request_id) == ("close_case", "refused", "same")
        assert last.detail.startswith("request_id_reused: ")
        # A payload that does not decode, by signal: refused in the audit trail.
        await eng.client.handle(ref).signal("complete_task", {"request_id": "bad", "task": 5})
        await eng.client.close_case(
            ref, CloseCase(request_id="end", actor="adviser1", reason="duty ended")
        )
        await eng.client.result(ref)
        await keep_history(eng.client.handle(ref), "reused_request_and_invalid_payload")


async def test_a_flood_of_refusals_keeps_the_state_bounded(tmp_path: Path) -> None:
    async with case_engine(tmp_path) as eng:
        ref = "HOST-0003"
        await eng.client.raise_case(
            RaiseCase(reference=ref, topic="care-leaver", raised_by="adviser1")
        )
        n = 3 * AUDIT_KEPT
        for batch in range(0, n, 50):
            await asyncio.gather(
                *(
                    eng.client.complete_task(
                        ref,
                        CompleteTask(request_id=f"f{i}", actor="ghost", task="call-back"),
                        wait=False,
                    )
                    for i in range(batch, batch + 50)
                )
            )
        # Each refusal is recorded in the store, after which the case trims its own copy.
        for _ in range(200):
            state = await eng.client.state(ref)
            trail = case_audit(eng.engine, ref)
            if len(trail) == state.audit_total >= n and len(state.audit) <= AUDIT_KEPT:
                break
            await asyncio.sleep(0.05)
        assert state.audit_total >= n
        assert len(state.audit) <= AUDIT_KEPT
        # The whole trail is in the store, each entry once, in order.
        assert len(trail) == state.audit_total
        ghosts = [a for a in trail if a.actor == "ghost"]
        assert sorted(a.request_id or "" for a in ghosts) == sorted(f"f{i}" for i in range(n))
        assert trail[0].action == "case_raised"


async def test_a_reference_is_one_case_whatever_the_reuse_policy(tmp_path: Path) -> None:
    async with case_engine(tmp_path) as eng:
        ref = "HOST-0004"
        case = RaiseCase(reference=ref, topic="care-leaver", raised_by="adviser1")
        await eng.client.raise_case(case)
        await eng.client.close_case(
            ref, CloseCase(request_id="end", actor="adviser1", reason="duty ended")
        )
        await eng.client.result(ref)
        # Started again as the `temporal` CLI does by default (reuse allowed once closed):
        # the new run is refused when it would open, before it allocates or alerts anything.
        again = await eng.env.client.start_workflow(
            "HousingOptionsCase",
            CaseInput(case=case),
            id=f"case-{ref}",
            task_queue=eng.client.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        )
        with pytest.raises(WorkflowFailureError) as failed:
            await again.result()
        cause = failed.value.cause
        while isinstance(cause, ActivityError) and cause.cause is not None:
            cause = cause.cause
        assert isinstance(cause, ApplicationError) and cause.type == "reference_in_use"
        # Through the client: refused with the same code.
        with pytest.raises(RequestRefusedError) as refused:
            await eng.client.raise_case(case.model_copy(update={"notes": "second"}))
        assert refused.value.code == "reference_in_use"


async def test_no_log_line_repeats_what_a_message_carried(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    # Free text a caller sends (a note with an address, a malformed payload quoting it) never
    # reaches the worker's, the client's or the SDK's logs; only keys, codes and counts do.
    marker = "Flat9AcaciaAvenue"
    caplog.set_level(logging.DEBUG)
    async with case_engine(tmp_path) as eng:
        ref = "HOST-0005"
        handle = await eng.client.raise_case(
            RaiseCase(reference=ref, topic="care-leaver", raised_by="adviser1", notes=marker)
        )
        raw = eng.env.client.get_workflow_handle(handle.id)
        await raw.signal("complete_task", {"request_id": "p1", "actor": "adviser1", "task": 5,
                                           "note": marker})  # fmt: skip
        await raw.signal("complete_task", {"request_id": "p2", "actor": marker + " \u202e"})
        with pytest.raises(WorkflowUpdateFailedError):
            await raw.execute_update("close_case", {"request_id": "p3", "actor": "adviser1",
                                                    "reason": marker + "\x00"})  # fmt: skip
        await eng.client.complete_task(
            ref, CompleteTask(request_id="p4", actor="adviser1", task="call-back", note=marker)
        )
        state = await eng.client.state(ref)
        assert [a.request_id for a in state.audit if a.outcome == "refused"] == ["p1", "p2"]
    logged = "\n".join(r.getMessage() + repr(r.__dict__) for r in caplog.records)
    out, err = capfd.readouterr()
    assert logged and marker not in logged
    assert marker not in out and marker not in err
