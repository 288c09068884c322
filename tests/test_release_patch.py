"""The release's one patch (`RELEASE_0_2_0`) and the runs that started before it.

A case raised by a worker that does not take it, as a development build of 0.2.0 did (it knew
`release-0.2.0`, and opened with the `pin_definition` and `allocate` local activities), opens
that way; this release's worker then replays it and carries on along the same path (the
recorded histories of such cases replay in tests/test_replay.py; this runs one live). A case
raised on this release opens with `open_case` (tests/test_history_budget.py).

Real parts: the dev server, the real worker with no cache (every workflow task replays the
history), a real SQLite store with the sample configuration and staff.
"""

from __future__ import annotations

import concurrent.futures
import json
import uuid
from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.worker import PatchActivationInput

from models.messages import CompleteTask, RaiseCase
from starter.client import CaseClient
from starter.connection import CASE_DATA_CONVERTER
from starter.devserver import DevServer
from store.repository import load_case
from tests.helpers.store import sample_store
from tests.helpers.workflow_harness import wait_open
from worker import build_worker
from workflows.case_workflow import RELEASE_0_2_0, RELEASE_0_2_0_DEVELOPMENT


def _development_build(patch: PatchActivationInput) -> bool:
    """Take every patch but this release's: the workflow then decides as a development build
    of 0.2.0 did."""
    return patch.patch_id != RELEASE_0_2_0


async def _markers(client: Client, workflow_id: str) -> tuple[list[str], list[str]]:
    """The patch ids and the local activity types recorded in the case's history, in order."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    patches, local_activities = [], []
    for event in history.events:
        if event.event_type != EventType.EVENT_TYPE_MARKER_RECORDED:
            continue
        marker = event.marker_recorded_event_attributes
        if marker.marker_name == "core_patch":
            patches.append(json.loads(marker.details["patch-data"].payloads[0].data)["id"])
        elif marker.marker_name == "core_local_activity":
            data = json.loads(marker.details["data"].payloads[0].data)
            local_activities.append(data["activity_type"])
    return patches, local_activities


async def test_a_development_build_case_opens_as_it_did_and_carries_on_on_this_release(
    dev_server: DevServer,
    activity_executor: concurrent.futures.ThreadPoolExecutor,
    tmp_path: Path,
) -> None:
    engine = sample_store(tmp_path)
    client = await Client.connect(dev_server.address, data_converter=CASE_DATA_CONVERTER)
    queue = f"release-{uuid.uuid4().hex[:8]}"
    ref = f"DEV-{uuid.uuid4().hex[:8]}"
    workflow_id = f"case-{ref}"
    cases = CaseClient(client, queue)
    try:
        async with build_worker(
            client,
            engine,
            queue,
            activity_executor,
            max_cached_workflows=0,
            patch_activation_callback=_development_build,
        ):
            await cases.raise_case(
                RaiseCase(reference=ref, topic="homeless-tonight", raised_by="adviser1")
            )
            await wait_open(client.get_workflow_handle(workflow_id))
        patches, local_activities = await _markers(client, workflow_id)
        assert patches == [RELEASE_0_2_0_DEVELOPMENT]
        assert local_activities[:3] == ["pin_definition", "allocate", "record_case"]

        # This release's worker: it replays the opening and works the case on the same path.
        async with build_worker(client, engine, queue, activity_executor, max_cached_workflows=0):
            state = await cases.state(ref)
            assert state.status == "open" and state.owner.key == "adviser1"
            task = next(t for t in state.tasks if t.status == "open")
            view = await cases.complete_task(
                ref, CompleteTask(request_id="dev-1", actor="manager1", task=task.key)
            )
            assert view is not None and view.status == "completed"
            state = await cases.state(ref)
            assert next(t for t in state.tasks if t.key == task.key).status == "completed"
        patches, local_activities = await _markers(client, workflow_id)
        assert patches == [RELEASE_0_2_0_DEVELOPMENT]  # no patch taken afresh
        assert "open_case" not in local_activities
        stored = load_case(engine, ref)
        assert stored is not None
        assert next(t for t in stored.tasks if t.key == task.key).status == "completed"
    finally:
        engine.dispose()
