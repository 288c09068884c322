"""End to end, as deployed: the real Temporal dev server, the real worker process
(`python worker.py`, configured by environment variables), the store on SQLite and on
PostgreSQL, the client library and the command line (`python -m starter`).

Each backend gets a store of its own (a SQLite file, or a fresh PostgreSQL schema dropped at
the end), its configuration loaded through the command line, and a worker on a task queue of
its own, stopped with SIGTERM at the end: it must exit 0.

On a real server time runs at its own pace, so the sample configuration (targets of days)
fires nothing during a test. The alert test uses tests/e2e_config/quick_alert.yaml, whose
first task turns amber one minute after it starts, and runs the SQLite and PostgreSQL variants
at once so the minute is waited only once.

Everything here is polled with generous timeouts (visibility is eventually consistent, and
the machine may be loaded); nothing asserts how long anything took.
"""

from __future__ import annotations

import asyncio
import time
import uuid
import warnings
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from temporalio.client import Client
from temporalio.service import RPCError

from domain.sla_calendar import to_minute
from models.activities import Alert, AlertInput
from models.case import CaseState, CaseTask, Owner
from models.config import EscalationRuleConfig
from models.messages import AddTask, CompleteTask, RaiseCase, ReassignTask, TaskView
from starter.client import CaseClient, CaseFilter, CaseListing, RequestRefusedError
from starter.connection import TemporalSettings, connect
from starter.devserver import DevServer
from store import repository
from tests.helpers.stack import (
    AVAILABLE_ADVISERS,
    BACKENDS,
    CliRun,
    Stack,
    started_stack,
    starter_cli_async,
)
from tests.helpers.store import postgres_unreachable

E2E_CONFIG = "tests/e2e_config/quick_alert.yaml"

T = TypeVar("T")


# -------------------------------------------------------------------------------- polling


async def eventually(
    probe: Callable[[], Awaitable[T | None]],
    what: str,
    timeout: float = 30.0,
    interval: float = 0.3,
) -> T:
    """Poll `probe` until it returns something truthy; a query made before the case opened,
    or any Temporal error on the way, counts as "not yet"."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = await probe()
            if value:
                return value
            last = value
        except (RPCError, RequestRefusedError) as e:
            last = e
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s (last seen: {last!r})")
        await asyncio.sleep(interval)


async def opened(cases: CaseClient, reference: str) -> CaseState:
    """The case's state once it has pinned its definition and allocated its owners."""
    return await eventually(lambda: cases.state(reference), f"case {reference} opens", 90)


async def listed(
    cases: CaseClient, reference: str, query: str, timeout: float = 30.0
) -> CaseListing:
    """The case's row in a visibility list query, once visibility has caught up."""

    async def probe() -> CaseListing | None:
        rows = [
            row async for row in cases.list_cases(CaseFilter(reference=reference), raw_query=query)
        ]
        return rows[0] if rows else None

    return await eventually(probe, f"case {reference} listed by {query!r}", timeout)


def task_of(state: CaseState, key: str) -> CaseTask:
    task = state.task(key)
    assert task is not None, f"task {key} is not on case {state.reference}"
    return task


def owner_key(state: CaseState, key: str) -> str:
    """The staff key owning task `key` (allocation gives every task of the sample an owner)."""
    owner = task_of(state, key).owner
    assert owner is not None, f"task {key} of case {state.reference} has no owner"
    return owner.key


async def temporal_client(server: DevServer) -> Client:
    """A client the way the product makes one (pydantic data converter)."""
    return await connect(TemporalSettings(address=server.address))


# ------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module", params=BACKENDS)
def stack(
    request: pytest.FixtureRequest,
    dev_server: DevServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    """The sample configuration on each backend, with its worker (shared by this module)."""
    workdir = tmp_path_factory.mktemp(f"e2e-{request.param}")
    with started_stack(request.param, dev_server, workdir) as s:
        yield s


# ---------------------------------------------------------------------------------- tests


async def test_case_lifecycle_through_the_client(stack: Stack, dev_server: DevServer) -> None:
    """A housing advice case from raise to completion: updates and signals, refusals, the
    query, visibility with the search attributes, and the store's reporting copy."""
    cases = CaseClient(await temporal_client(dev_server), stack.queue)
    ref = f"E2E-{uuid.uuid4().hex[:10]}"
    await cases.raise_case(
        RaiseCase(reference=ref, topic="disrepair-or-overcrowding", raised_by="adviser1")
    )
    state = await opened(cases, ref)
    assert (state.workflow_type, state.config_version) == ("housing-advice", stack.config_version)
    assert [(t.key, t.status) for t in state.tasks] == [
        ("call-back", "open"),
        ("housing-options-interview", "waiting"),
        ("advice-letter", "waiting"),
    ]
    case_owner = state.owner.key
    call_back = task_of(state, "call-back")
    assert call_back.due_at is not None and call_back.sla_status == "on_track"
    assert state.case_sla is not None and state.case_sla.due_at > call_back.due_at

    # Visibility: the attributes the workflow keeps current, filtered on.
    # (CaseWorkflowType is set by the case itself: visibility has caught up with it.)
    row = await listed(
        cases,
        ref,
        "CaseWorkflowType = 'housing-advice' AND SlaStatus = 'on_track' AND OpenTasks = 1",
    )
    assert row.workflow_type == "housing-advice" and row.topic == "disrepair-or-overcrowding"
    assert row.open_tasks == 1 and row.owners == [owner_key(state, "call-back")]
    assert row.next_deadline == call_back.due_at

    # Refused updates change nothing and say why.
    refusals = [
        ("complete_task", CompleteTask(request_id="r1", actor=case_owner, task="advice-letter")),
        ("complete_task", CompleteTask(request_id="r2", actor="nobody", task="call-back")),
        ("complete_task", CompleteTask(request_id="r3", actor="ooh1", task="call-back")),
        ("add_task", AddTask(request_id="r4", actor=case_owner, task="call-back")),
        (
            "reassign_task",
            ReassignTask(
                request_id="r5",
                actor=case_owner,
                task="call-back",
                to=Owner(kind="user", key="adviser5"),
                reason="workload",
            ),
        ),
    ]
    codes = []
    for name, req in refusals:
        with pytest.raises(RequestRefusedError) as refused:
            await getattr(cases, name)(ref, req)
        codes.append(refused.value.code)
        assert str(refused.value)
    assert codes == [
        "task_not_open",
        "unknown_actor",
        "not_permitted",
        "task_already_on_case",
        "user_unavailable",
    ]

    # Complete by update; the same request again is a duplicate, not a second completion.
    req = CompleteTask(
        request_id="done-call-back", actor=owner_key(state, "call-back"), task="call-back"
    )
    view = await cases.complete_task(ref, req)
    assert view is not None and view.status == "completed" and not view.duplicate
    again = await cases.complete_task(ref, req)
    assert again is not None and again.duplicate and again.status == "completed"

    # Reassign the interview that has just opened, with a reason.
    state = await cases.state(ref)
    interview = task_of(state, "housing-options-interview")
    assert interview.status == "open"
    new_owner = next(
        a for a in AVAILABLE_ADVISERS if a != owner_key(state, "housing-options-interview")
    )
    view = await cases.reassign_task(
        ref,
        ReassignTask(
            request_id="move-interview",
            actor=case_owner,
            task="housing-options-interview",
            to=Owner(kind="user", key=new_owner),
            reason="specialist_knowledge",
        ),
    )
    assert view is not None and view.owner == Owner(kind="user", key=new_owner)

    # Add an optional task by hand (allocated by the workflow type's rules).
    added = await cases.add_task(
        ref,
        AddTask(request_id="add-tsr", actor=case_owner, task="tenancy-sustainment-referral"),
    )
    assert added is not None and added.status == "open" and added.owner is not None
    row = await listed(cases, ref, f"OpenTaskOwners = '{new_owner}' AND OpenTasks = 2")
    assert new_owner in row.owners

    # A refused signal cannot answer: it is refused in the audit trail instead.
    await cases.complete_task(
        ref, CompleteTask(request_id="sig-bad", actor=case_owner, task="advice-letter"), wait=False
    )
    # Complete by signal (fire and forget), then see it through the query.
    await cases.complete_task(
        ref,
        CompleteTask(request_id="sig-interview", actor=new_owner, task="housing-options-interview"),
        wait=False,
    )

    async def letter_open() -> CaseState | None:
        s = await cases.state(ref)
        return s if task_of(s, "advice-letter").status == "open" else None

    state = await eventually(letter_open, "the advice letter opens after the signal")
    assert task_of(state, "housing-options-interview").completed_by == new_owner
    audit = {(a.request_id, a.outcome) for a in state.audit if a.request_id}
    assert ("sig-bad", "refused") in audit and ("sig-interview", "accepted") in audit
    # Refusals on the case's own state never reached the history, so never the audit trail;
    # those on the staff directory's facts were decided after the lookup and are audited,
    # refused, naming the actor.
    assert not {"r1", "r4"} & {a.request_id for a in state.audit}
    directory_refusals = {
        (a.request_id, a.actor, a.detail.split(":")[0])
        for a in state.audit
        if a.request_id in ("r2", "r3", "r5")
    }
    assert directory_refusals == {
        ("r2", "nobody", "unknown_actor"),
        ("r3", "ooh1", "not_permitted"),
        ("r5", case_owner, "user_unavailable"),
    }

    # The store's reporting copy follows the case (written by the worker's activities).
    async def recorded() -> Any:
        record = await asyncio.to_thread(repository.load_case, stack.store.engine, ref)
        if record is None:
            return None
        statuses = {t.key: t.status for t in record.tasks}
        return record if statuses.get("advice-letter") == "open" else None

    record = await eventually(recorded, "the store's copy shows the advice letter open")
    assert record.status == "open" and record.workflow_type == "housing-advice"

    # Finish: every task done, so the case completes by itself.
    for key, actor in (
        ("tenancy-sustainment-referral", case_owner),
        ("advice-letter", owner_key(state, "advice-letter")),
    ):
        view = await cases.complete_task(
            ref, CompleteTask(request_id=f"done-{key}", actor=actor, task=key)
        )
        assert view is not None and view.status == "completed"
    final = await cases.result(ref)
    assert final.status == "completed" and final.finished_at is not None
    assert {t.status for t in final.tasks} == {"completed"}

    row = await listed(cases, ref, "CaseStatus = 'closed' AND ExecutionStatus = 'Completed'")
    assert row.status == "completed" and row.open_tasks == 0 and row.owners == []
    record = await asyncio.to_thread(repository.load_case, stack.store.engine, ref)
    assert record is not None and record.status == "completed"
    assert {t.status for t in record.tasks} == {"completed"}


async def test_command_line(stack: Stack, dev_server: DevServer) -> None:
    """`python -m starter`: JSON output, exit codes (0 done, 1 refused with the reason on
    stderr, 2 bad usage), and the inbox read from the store."""
    cases = CaseClient(await temporal_client(dev_server), stack.queue)
    ref = f"CLI-{uuid.uuid4().hex[:10]}"
    await cases.raise_case(
        RaiseCase(reference=ref, topic="threatened-within-56-days", raised_by="adviser3")
    )
    await opened(cases, ref)

    async def cli(*args: str, retry_abort: bool = True) -> CliRun:
        return await starter_cli_async(stack.env, *args, retry_abort=retry_abort)

    shown = await cli("--json", "show", ref)
    assert shown.returncode == 0, str(shown)
    state = CaseState.model_validate(shown.json())
    assert state.reference == ref and state.workflow_type == "prevention-duty"
    assert task_of(state, "call-back").status == "open"
    assert state.owner == Owner(kind="user", key="adviser3")
    table = await cli("show", ref, "--audit")
    assert table.returncode == 0 and ref in table.stdout, str(table)

    # Refused: exit 1, the reason (code and task) on stderr, nothing on stdout.
    refused = await cli(
        "complete", ref, "housing-options-interview", "--by", "adviser3", "--request-id", "c0"
    )
    assert refused.returncode == 1, str(refused)
    assert "refused (task_not_open)" in refused.message
    assert "housing-options-interview" in refused.message and refused.stdout == ""
    refused = await cli("complete", ref, "call-back", "--by", "adviser1", "--request-id", "c1")
    assert refused.returncode == 1 and "refused (not_permitted)" in refused.message, str(refused)
    # Bad usage: exit 2, before anything is sent.
    usage = await cli("reassign", ref, "call-back", "--by", "adviser3", "--to", "adviser1")
    assert usage.returncode == 2 and "user:KEY or role:KEY" in usage.message, str(usage)

    done = await cli(
        "--json", "complete", ref, "call-back", "--by", "adviser3", "--request-id", "c2"
    )
    assert done.returncode == 0, str(done)
    view = TaskView.model_validate(done.json())
    assert view.key == "call-back" and view.status == "completed"
    # (A run again after an abort at shutdown finds its own first run's work done.)
    assert view.duplicate == (done.attempts > 1)

    moved = await cli(
        "--json", "reassign", ref, "housing-options-interview", "--by", "adviser3",
        "--to", "role:housing-advisers", "--reason", "absence", "--request-id", "m1",
    )  # fmt: skip
    assert moved.returncode == 0, str(moved)
    assert TaskView.model_validate(moved.json()).owner == Owner(kind="role", key="housing-advisers")

    added = await cli(
        "--json", "add-task", ref, "landlord-negotiation", "--by", "adviser3",
        "--owner", "user:adviser3", "--request-id", "a1",
    )  # fmt: skip
    assert added.returncode == 0, str(added)
    assert TaskView.model_validate(added.json()).status == "open"

    async def in_list() -> list[Any] | None:
        run = await cli("--json", "list", "--owner", "housing-advisers", "--status", "open")
        assert run.returncode == 0, str(run)
        rows = [r for r in run.json() if r["reference"] == ref]
        return rows or None

    rows = await eventually(in_list, "`list --owner housing-advisers` shows the case", 60, 1)
    assert rows[0]["workflow_type"] == "prevention-duty" and rows[0]["sla_status"] == "on_track"

    # Not run again if it aborts at shutdown: a closed case answers no more messages.
    closed = await cli(
        "--json", "close", ref, "--by", "adviser3", "--reason", "Moved out of the area",
        "--request-id", "x1", retry_abort=False,
    )  # fmt: skip
    assert closed.returncode == 0 or closed.aborted_at_shutdown, str(closed)
    assert closed.json() == {"done": "close_case"}, str(closed)
    final = await cases.result(ref)
    assert final.status == "closed" and final.close_reason == "Moved out of the area"
    assert {t.status for t in final.tasks} == {"completed", "cancelled"}

    again = await cli("close", ref, "--by", "adviser3", "--reason", "again", "--request-id", "x2")
    assert again.returncode == 1 and "refused (case_not_open)" in again.message, str(again)
    missing = await cli("show", f"NOPE-{uuid.uuid4().hex[:8]}")
    assert missing.returncode == 1 and "not found" in missing.message, str(missing)

    # The inbox, read from the store. Nothing on the sample configuration falls due during a
    # test, so two alerts on this case are written as the alert activity writes them: one to
    # adviser3, one to adviser1. adviser3's inbox holds theirs, and no one else's.
    alert = AlertInput(
        case_reference=ref,
        case_topic="threatened-within-56-days",
        task="call-back",
        task_name="Call back",
        indicator="amber",
        occurrence=1,
        indicator_at=datetime.now(UTC),
        task_due_at=None,
        task_owner=Owner(kind="user", key="adviser3"),
        case_owner=Owner(kind="user", key="adviser3"),
        rule=EscalationRuleConfig(key="e2e", name="E2E", users=["adviser1"], task_owner=True),
    )
    written = await asyncio.to_thread(
        repository.insert_alerts, stack.store.engine, Alert.of(alert, ["adviser3", "adviser1"])
    )
    assert written == 2
    inbox = await cli("--json", "inbox", "adviser3", "--all")
    assert inbox.returncode == 0, str(inbox)
    assert isinstance(inbox.json(), list)
    mine = [r for r in inbox.json() if r["case_reference"] == ref]
    assert [(r["recipient"], r["task_key"], r["indicator"]) for r in mine] == [
        ("adviser3", "call-back", "amber")
    ], inbox.stdout
    assert all(row["recipient"] == "adviser3" for row in inbox.json())


# ------------------------------------------------------------------------ alerts, for real

NOTES = "Applicant disclosed SENSITIVE-NOTE-7f3a; must never reach a log"


async def amber_alert_case(client: Client, stack: Stack) -> None:
    """One case on the quick configuration: its first task turns amber after a minute; the
    alert reaches the inboxes (store and command line), the query and visibility."""
    cases = CaseClient(client, stack.queue)
    engine = stack.store.engine
    ref = f"QA-{stack.store.backend[:2].upper()}-{uuid.uuid4().hex[:8]}"
    await cases.raise_case(
        RaiseCase(reference=ref, topic="quick-advice", raised_by="adviser1", notes=NOTES)
    )
    state = await opened(cases, ref)
    task = task_of(state, "quick-call-back")
    assert task.status == "open" and task.owner == Owner(kind="user", key="adviser1")
    # Minutes on the 24x7 calendar are elapsed time.
    assert task.started_at is not None
    # Counted from the start of the minute the task started in (DOMAIN "Precision").
    assert task.started_at is not None
    assert task.amber_at == to_minute(task.started_at) + timedelta(minutes=1)
    assert task.due_at == to_minute(task.started_at) + timedelta(minutes=2)
    added = await cases.add_task(
        ref, AddTask(request_id="add-referral", actor="tl1", task="quick-referral")
    )
    assert added is not None and added.owner == Owner(kind="user", key="adviser1")

    def alerts(user: str) -> list[repository.AlertRow]:
        return [r for r in repository.inbox(engine, user) if r.case_reference == ref]

    # The minute passes on the server's clock; the worker's timer fires the amber alert.
    rows = await eventually(
        lambda: asyncio.to_thread(alerts, "adviser1"), f"the amber alert of {ref}", 240, 1
    )
    amber = [r for r in rows if r.indicator == "amber"]
    assert len(amber) == 1, rows
    alert = amber[0]
    assert (alert.task_key, alert.occurrence, alert.case_topic) == (
        "quick-call-back",
        1,
        "quick-advice",
    )
    assert alert.indicator_at == task.amber_at and alert.task_due_at == task.due_at
    assert alert.task_owner == "user:adviser1" and alert.read_at is None
    # The escalation rule: the task owner and the team leaders role (tl1).
    leader = [r for r in await asyncio.to_thread(alerts, "tl1") if r.indicator == "amber"]
    assert len(leader) == 1
    assert not [r for r in await asyncio.to_thread(alerts, "adviser2") if r.indicator == "amber"]

    async def amber_in_state() -> CaseState | None:
        s = await cases.state(ref)
        return s if task_of(s, "quick-call-back").fired else None

    state = await eventually(amber_in_state, "the amber indicator in the case state")
    fired = task_of(state, "quick-call-back").fired[0]
    assert fired.indicator == "amber" and sorted(fired.recipients) == ["adviser1", "tl1"]
    assert fired.due_at == task.amber_at
    row = await listed(cases, ref, "SlaStatus IN ('amber', 'breached')")
    assert row.sla_status in ("amber", "breached")  # breached if the machine is very slow

    # The inbox through the command line; marking read.
    run = await starter_cli_async(stack.env, "--json", "inbox", "adviser1")
    assert run.returncode == 0, str(run)
    mine = [r for r in run.json() if r["case_reference"] == ref and r["indicator"] == "amber"]
    assert len(mine) == 1 and mine[0]["task_key"] == "quick-call-back", run.stdout
    run = await starter_cli_async(stack.env, "--json", "inbox", "tl1", "--mark-read")
    assert run.returncode == 0, str(run)
    run = await starter_cli_async(stack.env, "--json", "inbox", "tl1")
    assert run.returncode == 0 and not [r for r in run.json() if r["case_reference"] == ref]
    run = await starter_cli_async(stack.env, "--json", "inbox", "tl1", "--all")
    read = [r for r in run.json() if r["case_reference"] == ref and r["indicator"] == "amber"]
    assert len(read) == 1 and read[0]["read_at"] is not None, run.stdout

    # Finish the case: every task completed.
    for key in ("quick-call-back", "quick-referral"):
        view = await cases.complete_task(
            ref, CompleteTask(request_id=f"done-{key}", actor="adviser1", task=key)
        )
        assert view is not None and view.status == "completed"
    view = await cases.complete_task(
        ref, CompleteTask(request_id="done-letter", actor="tl1", task="quick-letter")
    )
    assert view is not None and view.status == "completed"
    final = await cases.result(ref)
    assert final.status == "completed"
    # Never alerted twice, whatever was retried.
    amber = [r for r in await asyncio.to_thread(alerts, "adviser1") if r.indicator == "amber"]
    assert len(amber) == 1
    await listed(cases, ref, "CaseStatus = 'closed' AND ExecutionStatus = 'Completed'")


async def test_amber_alert_reaches_the_inboxes(dev_server: DevServer, tmp_path: Path) -> None:
    """An SLA alert for real: SQLite and PostgreSQL at once (two stores, two workers, two
    task queues), so the minute's wait is paid once."""
    backends = ["sqlite"]
    postgres_missing = postgres_unreachable()
    if postgres_missing is None:
        backends.append("postgresql")
    client = await temporal_client(dev_server)
    with ExitStack() as stacks:
        started = [
            stacks.enter_context(started_stack(b, dev_server, tmp_path / b, E2E_CONFIG))
            for b in backends
        ]
        async with asyncio.TaskGroup() as group:
            for s in started:
                group.create_task(amber_alert_case(client, s))
    for s in started:
        log = s.worker.log_text()
        # Notes are personal data: in the case history, never in logs.
        assert "SENSITIVE-NOTE" not in log
        assert any(e["event"] == "alert sent" for e in s.worker.events())
    if postgres_missing is not None:
        warnings.warn(f"alert test ran on SQLite only: {postgres_missing}", stacklevel=1)


async def test_a_case_worked_through_the_command_line(
    dev_server: DevServer, tmp_path: Path
) -> None:
    """DOMAIN "Working a case" for real: the real worker process, the real clock, and every
    step through `python -m starter`: hold, release, revise, a late completion refused
    without a reason and accepted with one; the store's record keeps the hold, the revision
    and the late reason."""
    client = await temporal_client(dev_server)
    with started_stack("sqlite", dev_server, tmp_path, E2E_CONFIG) as s:
        cases = CaseClient(client, s.queue)
        ref = f"WRK-{uuid.uuid4().hex[:10]}"
        await cases.raise_case(RaiseCase(reference=ref, topic="quick-advice", raised_by="adviser1"))
        await opened(cases, ref)

        async def cli(*args: str) -> CliRun:
            return await starter_cli_async(s.env, *args)

        release_at = (datetime.now(UTC) + timedelta(minutes=30)).isoformat()
        held = await cli(
            "--json", "hold", ref, "quick-call-back", "--by", "adviser1",
            "--reason", "applicant_unavailable", "--planned-release", release_at,
            "--notes", "SENSITIVE-NOTE in hospital", "--request-id", "h1",
        )  # fmt: skip
        assert held.returncode == 0, str(held)
        assert TaskView.model_validate(held.json()).status == "on_hold"
        again = await cli(
            "hold", ref, "quick-call-back", "--by", "adviser1", "--reason", "other",
            "--planned-release", release_at, "--request-id", "h2",
        )  # fmt: skip
        assert again.returncode == 1 and "refused (task_on_hold)" in again.message, str(again)
        shown = await cli("show", ref)
        assert "on hold until" in shown.stdout, str(shown)

        released = await cli(
            "--json", "release", ref, "quick-call-back", "--by", "adviser1", "--request-id", "r1"
        )
        assert released.returncode == 0, str(released)
        assert TaskView.model_validate(released.json()).status == "open"

        target = datetime.now(UTC) + timedelta(seconds=65)
        revised = await cli(
            "--json", "revise", ref, "quick-call-back", "--by", "adviser1",
            "--target", target.isoformat(), "--reason", "applicant_request",
            "--request-id", "v1",
        )  # fmt: skip
        assert revised.returncode == 0, str(revised)
        assert TaskView.model_validate(revised.json()).due_at == to_minute(target)

        async def past_target() -> CaseState | None:
            state = await cases.state(ref)
            task = task_of(state, "quick-call-back")
            return state if task.round == 2 and task.sla_status == "breached" else None

        await eventually(past_target, "the revised target to pass", timeout=150)
        # Late means after the target's minute (DOMAIN "Precision"): wait for the next one.
        next_minute = to_minute(target) + timedelta(minutes=1)
        await asyncio.sleep(max((next_minute - datetime.now(UTC)).total_seconds(), 0) + 0.5)
        bare = await cli("complete", ref, "quick-call-back", "--by", "adviser1")
        assert bare.returncode == 1 and "refused (late_reason_required)" in bare.message, str(bare)
        done = await cli(
            "--json", "complete", ref, "quick-call-back", "--by", "adviser1",
            "--late-reason", "workload", "--request-id", "c1",
        )  # fmt: skip
        assert done.returncode == 0, str(done)

        async def recorded() -> Any:
            record = repository.load_case(s.store.engine, ref)
            task = (
                next((t for t in record.tasks if t.key == "quick-call-back"), None)
                if record
                else None
            )
            return task if task is not None and task.status == "completed" else None

        task = await eventually(recorded, "the record of the late completion")
        assert task.late_reason == "workload" and task.round == 2
        assert len(task.holds) == 1 and task.holds[0].released_by == "adviser1"
        assert task.revisions[0].reason == "applicant_request"
        assert "SENSITIVE-NOTE" not in s.worker.log_text()
