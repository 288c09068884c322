"""Safe worker upgrades (docs/operations.md, "Upgrading workers"): a case runs on build A,
its worker stops, and build B, whose workflow code takes a new step behind
`workflow.patched`, continues it to the end. B replays A's events (no cache: every task
replays); `patched` answers False while replaying them and keeps that answer for the run, so
the case A started keeps A's behaviour, while a case B opens takes the new step. The same
change without the patch cannot replay A's history: what `tests/test_replay.py` catches for
the recorded histories of every released version.
"""

from __future__ import annotations

import concurrent.futures
import uuid
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import Engine
from temporalio import workflow
from temporalio.client import Client, WorkflowHistory
from temporalio.common import RawValue
from temporalio.worker import Replayer, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions
from temporalio.workflow import NondeterminismError

from activities import CaseworkActivities
from domain import planner
from models.case import CaseState
from models.messages import AddTask, CloseCase, RaiseCase
from starter.client import CaseClient
from starter.connection import data_converter
from starter.devserver import DevServer
from tests.helpers.store import sample_store
from worker import PASSTHROUGH, build_worker
from workflows.case_workflow import WORKFLOW_TYPE, HousingOptionsCase

PATCH = "build-b-records-first"


async def _record_now(case: HousingOptionsCase) -> None:
    """Build B's new step: record the case before the usual recording (one more local
    activity: a new command, so a change running cases must meet behind a patch)."""
    state, _ = case._require()
    await workflow.execute_local_activity(
        "record_case",
        planner.case_record(state, case._revision, audit_from=case._audit_recorded),
        start_to_close_timeout=case_timeout(),
        summary="record case (build B)",
    )


def case_timeout() -> Any:
    from datetime import timedelta

    return timedelta(seconds=30)


@workflow.defn(name=WORKFLOW_TYPE, failure_exception_types=[ValidationError])
class BuildB(HousingOptionsCase):
    """Build B: the new step behind `workflow.patched`, as docs/operations.md prescribes."""

    @workflow.run
    async def run(self, raw: RawValue) -> CaseState:
        return await super().run(raw)

    async def _record_if_changed(self) -> None:
        if self._revision != self._recorded_revision and workflow.patched(PATCH):
            await _record_now(self)
        await super()._record_if_changed()


@workflow.defn(name=WORKFLOW_TYPE, failure_exception_types=[ValidationError])
class BuildBUnpatched(HousingOptionsCase):
    """The same change shipped without the patch: it breaks the cases already running."""

    @workflow.run
    async def run(self, raw: RawValue) -> CaseState:
        return await super().run(raw)

    async def _record_if_changed(self) -> None:
        if self._revision != self._recorded_revision:
            await _record_now(self)
        await super()._record_if_changed()


# The builds are defined in this module: pass it through the sandbox rather than re-import.
RUNNER = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH, "tests")
)


def replayer(case_workflow: type) -> Replayer:
    return Replayer(
        workflows=[case_workflow], data_converter=data_converter(None), workflow_runner=RUNNER
    )


def build_b_worker(
    client: Client, engine: Engine, queue: str, executor: concurrent.futures.Executor
) -> Worker:
    """A worker of build B: what `worker.build_worker` makes, with build B's workflow."""
    return Worker(
        client,
        task_queue=queue,
        workflows=[BuildB],
        activities=CaseworkActivities(engine).all(),
        activity_executor=executor,
        max_cached_workflows=0,
        workflow_runner=RUNNER,
    )


async def test_a_case_started_on_build_a_continues_on_build_b(
    dev_server: DevServer,
    activity_executor: concurrent.futures.ThreadPoolExecutor,
    tmp_path: Path,
) -> None:
    engine = sample_store(tmp_path)
    client = await Client.connect(dev_server.address, data_converter=data_converter(None))
    queue = f"upgrade-{uuid.uuid4().hex[:8]}"
    ref = f"UPG-{uuid.uuid4().hex[:8]}"
    cases = CaseClient(client, queue)
    try:
        # Build A opens the case and takes a message.
        async with build_worker(client, engine, queue, activity_executor, max_cached_workflows=0):
            await cases.raise_case(
                RaiseCase(reference=ref, topic="disrepair-or-overcrowding", raised_by="adviser1")
            )
            owner = (await cases.state(ref)).owner.key
            added = await cases.add_task(
                ref,
                AddTask(request_id="a-1", actor=owner, task="tenancy-sustainment-referral"),
            )
            assert added is not None and added.status == "open"
        on_a = await cases.handle(ref).fetch_history()

        # Build B takes over the running case and finishes it; a new case opens on B.
        new_ref = f"UPG-{uuid.uuid4().hex[:8]}"
        async with build_b_worker(client, engine, queue, activity_executor):
            await cases.close_case(ref, CloseCase(request_id="b-1", actor=owner, reason="moved"))
            final = await cases.result(ref)
            await cases.raise_case(
                RaiseCase(
                    reference=new_ref, topic="disrepair-or-overcrowding", raised_by="adviser1"
                )
            )
            await cases.state(new_ref)
            new_on_b = await cases.handle(new_ref).fetch_history()
        assert final.status == "closed"
        assert any(e.action == "add_task" for e in final.audit)  # A's work, carried on by B
        on_b = await cases.handle(ref).fetch_history()
    finally:
        engine.dispose()

    # The case A started keeps A's behaviour to its end (B's `patched` answered False while
    # replaying A's events, and keeps that answer for the run); the case B opened takes B's.
    def patch_markers(history: WorkflowHistory) -> int:
        """Markers of build B's patch (the product's own patches, such as live-directory,
        are recorded too)."""
        return sum(
            e.HasField("marker_recorded_event_attributes")
            and e.marker_recorded_event_attributes.marker_name == "core_patch"
            and PATCH.encode() in e.marker_recorded_event_attributes.SerializeToString()
            for e in history.events
        )

    def build_b_steps(history: WorkflowHistory) -> int:
        return sum(
            e.HasField("user_metadata") and b"build B" in e.user_metadata.summary.data
            for e in history.events
        )

    assert (patch_markers(on_a), patch_markers(on_b), build_b_steps(on_b)) == (0, 0, 0)
    assert patch_markers(new_on_b) == 1 and build_b_steps(new_on_b) >= 1

    # Build B replays both histories; A replays its own; the unpatched change cannot
    # replay the case A started.
    for history in (on_a, on_b, new_on_b):
        await replayer(BuildB).replay_workflow(history)
    await replayer(HousingOptionsCase).replay_workflow(on_a)
    with pytest.raises(NondeterminismError):
        await replayer(BuildBUnpatched).replay_workflow(on_a)
