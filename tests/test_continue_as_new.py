"""A long case continues as new, carrying its whole state: the pinned definition, every
task's story, the audit trail, the request ids already handled.

Runs on the real dev server: the time-skipping test server mishandles messages that race a
continue-as-new (it reports the old run completed instead of handing them to the new run).
"""

from __future__ import annotations

import concurrent.futures
import uuid
from datetime import date
from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from config_files import load_and_validate
from models.case import CaseState
from models.messages import CaseInput, CloseCase, CompleteTask, RaiseCase
from starter.client import CaseClient
from starter.devserver import DevServer
from store.db import create_schema, make_engine
from store.repository import save_configuration
from tests.helpers import REPO
from tests.helpers.workflow_harness import wait_open
from worker import build_worker
from workflows.case_workflow import WORKFLOW_TYPE, case_workflow_id


async def test_case_continues_as_new_and_keeps_its_state(
    tmp_path: Path,
    dev_server: DevServer,
    activity_executor: concurrent.futures.ThreadPoolExecutor,
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'casework.db'}")
    create_schema(engine)
    save_configuration(engine, load_and_validate(REPO / "config" / "sample", date.today()), "t")
    client = await Client.connect(dev_server.address, data_converter=pydantic_data_converter)
    queue = f"can-{uuid.uuid4().hex[:8]}"
    cases = CaseClient(client, queue)
    ref = f"CAN-{uuid.uuid4().hex[:8]}"
    async with build_worker(client, engine, queue, activity_executor):
        handle = await client.start_workflow(
            WORKFLOW_TYPE,
            CaseInput(
                case=RaiseCase(reference=ref, topic="homeless-tonight", raised_by="adviser1"),
                history_event_limit=20,
            ),
            id=case_workflow_id(ref),
            task_queue=queue,
        )
        first_run = handle.result_run_id
        await wait_open(handle)
        done: list[str] = []
        for _ in range(20):
            state = await cases.state(ref)
            open_tasks = [t for t in state.tasks if t.status == "open"]
            if not open_tasks:
                break
            task = open_tasks[0]
            await cases.complete_task(
                ref, CompleteTask(request_id=f"c-{task.key}", actor="manager1", task=task.key)
            )
            done.append(task.key)
            # A repeated request, in whichever run it lands, changes nothing.
            again = await cases.complete_task(
                ref, CompleteTask(request_id=f"c-{done[0]}", actor="manager1", task=done[0])
            )
            assert again is not None and again.duplicate
        assert len(done) >= 5
        await cases.close_case(ref, CloseCase(request_id="close", actor="manager1", reason="test"))
        final: CaseState = await cases.result(ref)
    engine.dispose()

    assert final.status == "closed"
    assert sorted(t.key for t in final.tasks if t.status == "completed") == sorted(done)
    assert all(f"c-{k}" in final.request_ids for k in done)
    accepted = [a.task or "" for a in final.audit if a.action == "complete_task"]
    assert sorted(accepted) == sorted(done)
    interview = final.task("emergency-interview")
    assert interview is not None and interview.owner_history[0].reason == "allocated"
    first = client.get_workflow_handle(case_workflow_id(ref), run_id=first_run)
    events = (await first.fetch_history()).events
    assert events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
