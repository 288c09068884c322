"""A long case continues as new, carrying its whole state: the pinned definition, every
task's story, the audit trail, the request ids already handled.

Runs on the real dev server: the time-skipping test server mishandles messages that race a
continue-as-new (it reports the old run completed instead of handing them to the new run).
"""

from __future__ import annotations

import concurrent.futures
import uuid
from pathlib import Path

from temporalio.api.enums.v1 import EventType

from models.case import CaseState
from models.messages import CaseInput, CloseCase, CompleteTask, RaiseCase
from starter.devserver import DevServer
from tests.helpers.workflow_harness import live_cases, wait_open
from workflows.case_workflow import WORKFLOW_TYPE, case_workflow_id


async def test_case_continues_as_new_and_keeps_its_state(
    tmp_path: Path,
    dev_server: DevServer,
    activity_executor: concurrent.futures.ThreadPoolExecutor,
) -> None:
    ref = f"CAN-{uuid.uuid4().hex[:8]}"
    async with live_cases(tmp_path, dev_server, activity_executor, "can") as live:
        client, cases, queue = live.client, live.cases, live.queue
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
                ref,
                CompleteTask(
                    request_id=f"c-{task.key}",
                    actor="manager1",
                    task=task.key,
                    late_reason="workload",
                ),
            )
            done.append(task.key)
            # A repeated request, in whichever run it lands, changes nothing.
            again = await cases.complete_task(
                ref,
                CompleteTask(
                    request_id=f"c-{done[0]}",
                    actor="manager1",
                    task=done[0],
                    late_reason="workload",
                ),
            )
            assert again is not None and again.duplicate
        assert len(done) >= 5
        await cases.close_case(ref, CloseCase(request_id="close", actor="manager1", reason="test"))
        final: CaseState = await cases.result(ref)

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
