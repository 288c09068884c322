"""History events are what a Temporal cluster spends its time on. A reference 10-task case
(relief duty: ten path tasks, SLA timers armed, recording on every change) run to completion
by updates must stay within a budget of 12 events per task.

Where the events go, per task completed by an update: update accepted + completed (2), one
workflow task (3), the timer for the next instant replaced (cancel + start: 2), the recording
local activity (1 marker), and a search attribute upsert when the case's attributes change
(at most 1). About 8-9; the budget leaves room for the case's own start and finish.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from temporalio.api.enums.v1 import EventType

from models.messages import CompleteTask, RaiseCase
from tests.helpers.workflow_harness import case_engine, wait_open
from workflows.case_workflow import RELEASE_0_2_0

BUDGET_PER_TASK = 12


async def test_reference_case_history_within_budget(tmp_path: Path) -> None:
    async with case_engine(tmp_path) as eng:
        ref = "REL-2028-0100"
        await eng.sleep_until(datetime(2028, 6, 5, 8, tzinfo=UTC))  # Mon 09:00 BST
        handle = await eng.client.raise_case(
            RaiseCase(reference=ref, topic="homeless-tonight", raised_by="adviser1")
        )
        await wait_open(handle)
        completed = 0
        while True:
            state = await eng.client.state(ref)
            if state.status != "open":
                break
            open_tasks = [t for t in state.tasks if t.status == "open"]
            if not open_tasks:
                starts = [t.starts_at for t in state.tasks if t.status == "lagging" and t.starts_at]
                assert starts, "case is stuck: nothing open and nothing lagging"
                await eng.sleep_until(min(starts))
                continue
            for task in open_tasks:
                await eng.client.complete_task(
                    ref,
                    CompleteTask(
                        request_id=f"c-{task.key}",
                        actor="manager1",
                        task=task.key,
                        late_reason="workload",
                    ),
                )
                completed += 1
        final = await eng.client.result(ref)
        assert final.status == "completed"
        assert completed == len(final.tasks) == 10

        history = await handle.fetch_history()
        events = history.events
        by_type = Counter(EventType.Name(e.event_type) for e in events)
        print(f"\n{len(events)} events for {completed} tasks: {dict(by_type)}")
        assert len(events) <= BUDGET_PER_TASK * completed, by_type


async def test_a_new_case_opens_with_one_patch_marker_and_one_opening_activity(
    tmp_path: Path,
) -> None:
    """A case raised on this release decides what the release changed with one patch
    (`RELEASE_0_2_0`): one marker and one search attribute upsert at its opening, where cases of
    development builds recorded three of each; and it opens with one local activity
    (`open_case`: pin and allocation) where they took two. The SDK's core keeps, for as long as
    a case is cached, a command buffer sized for the most commands a workflow task ever sent,
    so the opening's commands are memory as well as events."""
    async with case_engine(tmp_path) as eng:
        handle = await eng.client.raise_case(
            RaiseCase(reference="REL-2028-0101", topic="homeless-tonight", raised_by="adviser1")
        )
        await wait_open(handle)
        events = (await handle.fetch_history()).events
        first_timer = next(
            i for i, e in enumerate(events) if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED
        )
        opening = Counter(EventType.Name(e.event_type) for e in events[: first_timer + 1])
        markers = [
            e.marker_recorded_event_attributes
            for e in events
            if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
        ]
        patches = [
            json.loads(m.details["patch-data"].payloads[0].data)["id"]
            for m in markers
            if m.marker_name == "core_patch"
        ]
        assert patches == [RELEASE_0_2_0], patches
        local_activities = [
            json.loads(m.details["data"].payloads[0].data)["activity_type"]
            for m in markers
            if m.marker_name == "core_local_activity"
        ]
        assert local_activities[:2] == ["open_case", "record_case"], local_activities
        # Started, its first workflow task (3), the patch's marker and upsert, the two local
        # activities of the opening (open, record) and the first timer.
        assert sum(opening.values()) == 9, opening
        assert opening["EVENT_TYPE_MARKER_RECORDED"] == 3, opening
