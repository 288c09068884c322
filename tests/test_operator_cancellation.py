"""Cases ended from outside, on the real dev server with the real workflow and activities:

- an operator's cancellation (`temporal workflow cancel`, the Web UI's "Request
  Cancellation", a client's `handle.cancel()`) closes the case as the system, records it in
  the store and the search attributes, and ends the workflow Cancelled;
- the reconciliation workflow marks in the store the cases whose workflows ended in a way
  they could not record (terminated here), and leaves running cases alone.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import subprocess
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import CancelledError
from temporalio.service import RPCError

from domain.planner import OPERATOR_CANCELLED
from models.case import SYSTEM, CaseState
from models.messages import AddTask, CompleteTask, RaiseCase
from starter.client import CaseFilter
from starter.devserver import DevServer, temporal_cli
from starter.reconcile import (
    EVERY_VARIABLE,
    install_schedule,
    interval_from_env,
    reconcile_now,
    schedule_id,
)
from store.repository import case_audit, load_case, record_case
from tests.helpers.stack import (
    SAMPLE_CONFIG,
    make_store,
    running_worker,
    service_env,
    staff_file,
    starter_cli,
    starter_cli_async,
)
from tests.helpers.workflow_harness import LiveCases, keep_history, live_cases, wait_open
from workflows import search
from workflows.case_workflow import case_workflow_id


async def _stored_status(live: LiveCases, reference: str, want: str, timeout: float = 30) -> None:
    for _ in range(int(timeout / 0.1)):
        record = load_case(live.engine, reference)
        if record is not None and record.status == want:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"case {reference} not {want} in the store within {timeout}s")


async def _listed(live: LiveCases, status: CaseFilter, ours: str) -> set[str]:
    """The references listed (visibility may lag a moment: the same answer twice running)."""
    last: set[str] | None = None
    for _ in range(50):
        now = {c.reference async for c in live.cases.list_cases(status, raw_query=ours)}
        if now == last:
            return now
        last = now
        await asyncio.sleep(0.2)
    raise AssertionError(f"the listing kept changing: {last}")


async def _ends_cancelled(live: LiveCases, reference: str) -> None:
    handle = live.client.get_workflow_handle(case_workflow_id(reference))
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    assert isinstance(failure.value.cause, CancelledError)
    desc = await handle.describe()
    assert desc.status == WorkflowExecutionStatus.CANCELED


async def test_temporal_cli_cancellation_closes_the_case_everywhere(
    tmp_path: Path,
    dev_server: DevServer,
    activity_executor: concurrent.futures.ThreadPoolExecutor,
) -> None:
    ref = f"CXL-{uuid.uuid4().hex[:8]}"
    async with live_cases(tmp_path, dev_server, activity_executor, "cancel") as live:
        await live.cases.raise_case(
            RaiseCase(reference=ref, topic="threatened-within-56-days", raised_by="adviser1")
        )
        before = await live.cases.state(ref)
        first_open = next(t for t in before.tasks if t.status == "open")
        await live.cases.complete_task(
            ref, CompleteTask(request_id="done-1", actor="adviser1", task=first_open.key)
        )
        await _stored_status(live, ref, "open")
        # What an operator types (the Web UI's "Request Cancellation" sends the same request).
        proc = subprocess.run(
            [
                str(temporal_cli()), "workflow", "cancel",
                "--workflow-id", case_workflow_id(ref),
                "--address", dev_server.address, "--namespace", "default",
            ],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        await _ends_cancelled(live, ref)
        handle = live.client.get_workflow_handle(case_workflow_id(ref))
        desc = await handle.describe()
        # A query on the closed workflow replays it: the state it ended with.
        final: CaseState = await handle.query("state", result_type=CaseState)
        await keep_history(handle, "operator_cancelled")

    assert desc.typed_search_attributes.get(search.CASE_STATUS) == "closed"
    assert desc.typed_search_attributes.get(search.OPEN_TASKS) == 0
    assert final.status == "closed"
    assert final.closed_by == SYSTEM and final.close_reason == OPERATOR_CANCELLED
    done = final.task(first_open.key)
    assert done is not None and done.status == "completed"
    assert all(t.status in ("completed", "cancelled") for t in final.tasks)
    assert any(t.status == "cancelled" for t in final.tasks)

    record = load_case(live.engine, ref)
    assert record is not None
    assert record.status == "closed" and record.close_reason == OPERATOR_CANCELLED
    assert record.finished_at == final.finished_at
    assert {t.key: t.status for t in record.tasks} == {t.key: t.status for t in final.tasks}
    closes = [a for a in case_audit(live.engine, ref) if a.action == "close_case"]
    assert len(closes) == 1
    assert closes[0].actor == SYSTEM and closes[0].detail == OPERATOR_CANCELLED


async def test_cancellation_racing_messages_and_the_opening(
    tmp_path: Path,
    dev_server: DevServer,
    activity_executor: concurrent.futures.ThreadPoolExecutor,
) -> None:
    """A cancellation that lands while the case is opening, or while messages are being
    handled (a handler holds the case's lock), still closes the case once, after what was
    accepted before it."""
    stamp = uuid.uuid4().hex[:8]
    opening, busy, adding = f"CXO-{stamp}", f"CXB-{stamp}", f"CXA-{stamp}"
    async with live_cases(tmp_path, dev_server, activity_executor, "cancel-race") as live:
        # Cancelled at once: the first workflow task usually holds the start and the cancel.
        handle = await live.cases.raise_case(
            RaiseCase(reference=opening, topic="homeless-tonight", raised_by="adviser1"),
            wait_open=False,
        )
        await handle.cancel()
        await _ends_cancelled(live, opening)

        await live.cases.raise_case(
            RaiseCase(reference=busy, topic="homeless-tonight", raised_by="adviser1")
        )
        state = await live.cases.state(busy)
        busy_handle = live.client.get_workflow_handle(case_workflow_id(busy))
        # A burst of signals (each handled under the lock) with the cancellation in the middle.
        for i, task in enumerate(state.tasks):
            try:
                await busy_handle.signal(
                    "complete_task",
                    CompleteTask(request_id=f"burst-{i}", actor="adviser1", task=task.key),
                )
            except RPCError:
                assert i > 1  # the case ended after the cancellation: nothing to signal
                break
            if i == 1:
                await busy_handle.cancel()
        await _ends_cancelled(live, busy)
        await wait_open(busy_handle)  # a query on the closed case (replays it)

        # A message whose handler holds the lock while it allocates (a local activity), sent
        # with the cancellation: the close waits for its change, or it comes after the close.
        await live.cases.raise_case(
            RaiseCase(reference=adding, topic="homeless-tonight", raised_by="adviser1")
        )
        owner = (await live.cases.state(adding)).owner
        adding_handle = live.client.get_workflow_handle(case_workflow_id(adding))
        add = AddTask(request_id="add-1", actor=owner.key, task="property-inspection")
        await asyncio.gather(adding_handle.signal("add_task", add), adding_handle.cancel())
        await _ends_cancelled(live, adding)
        finals = {
            ref: await live.client.get_workflow_handle(case_workflow_id(ref)).query(
                "state", result_type=CaseState
            )
            for ref in (opening, busy, adding)
        }

    for ref, final in finals.items():
        assert final.status == "closed" and final.close_reason == OPERATOR_CANCELLED, ref
        record = load_case(live.engine, ref)
        assert record is not None and record.status == "closed", ref
        trail = case_audit(live.engine, ref)
        closes = [i for i, a in enumerate(trail) if a.action == "close_case"]
        assert len(closes) == 1, ref
        # Nothing is accepted after the close: later messages are refused (case not open).
        after = trail[closes[0] + 1 :]
        assert all(a.outcome != "accepted" for a in after), (ref, after)
        assert [a.action for a in final.audit].count("close_case") == 1, ref
        assert all(t.status in ("completed", "cancelled") for t in final.tasks), ref
    added = finals[adding].task("property-inspection")
    add_entry = next(a for a in finals[adding].audit if a.request_id == "add-1")
    if add_entry.outcome == "accepted":  # handled first: the close cancelled it
        assert added is not None and added.status == "cancelled"
    else:  # handled after the close
        assert added is None and add_entry.detail.startswith("case_not_open"), add_entry


async def test_reconciliation_marks_ended_cases_and_leaves_running_ones(
    tmp_path: Path,
    dev_server: DevServer,
    activity_executor: concurrent.futures.ThreadPoolExecutor,
) -> None:
    stamp = uuid.uuid4().hex[:8]
    running, killed, ghost, later = (f"REC-{stamp}-{n}" for n in ("run", "kill", "ghost", "late"))
    async with live_cases(tmp_path, dev_server, activity_executor, "reconcile") as live:
        for ref in (running, killed, later):
            await live.cases.raise_case(
                RaiseCase(reference=ref, topic="homeless-tonight", raised_by="adviser1")
            )
            await _stored_status(live, ref, "open")
        # A store row whose workflow Temporal no longer knows (retention, a lost namespace).
        copied = load_case(live.engine, running)
        assert copied is not None
        record_case(live.engine, copied.model_copy(update={"reference": ghost}))
        killed_handle = live.client.get_workflow_handle(case_workflow_id(killed))
        await killed_handle.terminate(reason="operator terminated it")
        killed_desc = await killed_handle.describe()
        running_before = load_case(live.engine, running)

        result = await reconcile_now(live.client, live.queue)
        again = await reconcile_now(live.client, live.queue)

        # The schedule, installed idempotently, runs the same workflow when it fires.
        sid = schedule_id(live.queue)
        assert await install_schedule(live.client, live.queue, timedelta(minutes=60))
        assert not await install_schedule(live.client, live.queue, timedelta(minutes=30))
        schedule = live.client.get_schedule_handle(sid)
        try:
            described = await schedule.describe()
            assert described.schedule.spec.intervals[0].every == timedelta(minutes=30)
            await live.client.get_workflow_handle(case_workflow_id(later)).terminate()
            await schedule.trigger()
            await _stored_status(live, later, "closed", timeout=60)
        finally:
            await schedule.delete()
        still_running = await live.client.get_workflow_handle(case_workflow_id(running)).describe()
        # Its search attributes still say open: the status filter asks Temporal how it ended.
        assert killed_desc.typed_search_attributes.get(search.CASE_STATUS) == "open"
        ours = f"CaseReference IN ('{running}', '{killed}', '{later}')"
        listed = {
            status: await _listed(live, CaseFilter(status=status), ours)
            for status in ("open", "closed")
        }

    assert result.checked == 4 and result.running == 2 and result.reconciled_total == 2
    assert {c.reference: c.execution_status for c in result.reconciled} == {
        killed: "terminated",
        ghost: "not_found",
    }
    assert again.reconciled_total == 0 and again.checked == 2
    record = load_case(live.engine, killed)
    assert record is not None and record.status == "closed"
    assert record.close_reason == "terminated in Temporal (reconciled)"
    assert record.finished_at == killed_desc.close_time
    assert all(t.status in ("completed", "cancelled") for t in record.tasks)
    trail = case_audit(live.engine, killed)
    assert trail[-1].action == "case_reconciled" and trail[-1].actor == SYSTEM
    gone = load_case(live.engine, ghost)
    assert gone is not None and gone.close_reason == "not found in Temporal (reconciled)"
    late = load_case(live.engine, later)
    assert late is not None and late.close_reason == "terminated in Temporal (reconciled)"
    # The running case is untouched, in the store and in Temporal.
    assert load_case(live.engine, running) == running_before
    assert still_running.status == WorkflowExecutionStatus.RUNNING
    assert listed == {"open": {running}, "closed": {killed, later}}


async def test_the_worker_installs_the_schedule_and_the_cli_reconciles(
    tmp_path: Path, dev_server: DevServer
) -> None:
    """The stack as deployed: the worker process installs its queue's schedule at start
    (RECONCILE_EVERY_MINUTES); `python -m starter reconcile` runs one reconciliation now and
    `reconcile --install-schedule --every N` changes the interval."""
    ref = f"RCLI-{uuid.uuid4().hex[:8]}"
    with make_store("sqlite", tmp_path) as store:
        queue = f"rec-cli-{uuid.uuid4().hex[:8]}"
        env = {**service_env(dev_server, queue, store.url), "RECONCILE_EVERY_MINUTES": "60"}
        # As an operator deploys: the schema first (the worker refuses a store behind it).
        upgraded = starter_cli(env, "--json", "db", "upgrade")
        assert upgraded.returncode == 0, str(upgraded)
        loaded = starter_cli(env, "--json", "config", "load", SAMPLE_CONFIG)
        assert loaded.returncode == 0, str(loaded)
        staff = starter_cli(env, "staff", "import", staff_file(SAMPLE_CONFIG))
        assert staff.returncode == 0, str(staff)
        client = await Client.connect(dev_server.address, data_converter=pydantic_data_converter)
        schedule = client.get_schedule_handle(schedule_id(queue))
        with running_worker(env, tmp_path / "worker.log") as worker:
            try:
                installed = [e for e in worker.events() if e["event"].startswith("reconcil")]
                assert [e["event"] for e in installed] == ["reconciliation schedule installed"]
                every = (await schedule.describe()).schedule.spec.intervals[0].every
                assert every == timedelta(minutes=60)
                raised = await starter_cli_async(
                    env, "--json", "raise", "--reference", ref, "--topic", "homeless-tonight",
                    "--by", "adviser1",
                )  # fmt: skip
                assert raised.returncode == 0, str(raised)
                for _ in range(100):  # the case records itself as it opens
                    if load_case(store.engine, ref) is not None:
                        break
                    await asyncio.sleep(0.1)
                await client.get_workflow_handle(case_workflow_id(ref)).terminate()
                run = await starter_cli_async(env, "--json", "reconcile", retry_abort=False)
                assert run.returncode == 0 or run.aborted_at_shutdown, str(run)
                answer = run.json()
                assert answer["reconciled_total"] == 1, answer
                assert answer["reconciled"][0]["reference"] == ref
                changed = await starter_cli_async(
                    env, "--json", "reconcile", "--install-schedule", "--every", "2"
                )
                assert changed.returncode == 0, str(changed)
                assert changed.json()["created"] is False
                every = (await schedule.describe()).schedule.spec.intervals[0].every
                assert every == timedelta(minutes=2)
                refused = await starter_cli_async(
                    env, "--json", "reconcile", "--install-schedule", "--every", "-1"
                )
                assert refused.returncode == 1 and "--every" in refused.stderr
            finally:
                await schedule.delete()
        # No worker on the queue: refused at once, rather than waiting for one.
        idle = {**env, "TEMPORAL_TASK_QUEUE": f"nobody-{uuid.uuid4().hex[:8]}"}
        alone = await starter_cli_async(idle, "--json", "reconcile")
        assert alone.returncode == 1, str(alone)
        assert '"no_worker"' in alone.stderr and "no worker is polling" in alone.stderr
        record = load_case(store.engine, ref)
    assert record is not None and record.status == "closed"
    assert record.close_reason == "terminated in Temporal (reconciled)"


@pytest.mark.parametrize(
    ("value", "minutes"), [("", 5.0), ("5", 5.0), ("0.5", 0.5), ("0", None), (" 2 ", 2.0)]
)
def test_the_schedule_interval_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, value: str, minutes: float | None
) -> None:
    monkeypatch.setenv(EVERY_VARIABLE, value)
    every = interval_from_env()
    assert (every.total_seconds() / 60 if every is not None else None) == minutes


@pytest.mark.parametrize("value", ["-1", "five", "nan", "inf"])
def test_a_bad_schedule_interval_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv(EVERY_VARIABLE, value)
    with pytest.raises(ValueError, match=EVERY_VARIABLE):
        interval_from_env()
