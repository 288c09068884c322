"""Cases see the staff directory live (issue 9), on the time-skipping server with the real
worker and a real SQLite store: a user disabled after a case was raised is refused on it; a
new starter can be given and can work its tasks; an absence recorded today makes the officer
unavailable for reassignment and for the follow-on reassignment; when the absence ends the
officer can be given work again; a role membership change between an amber and its target
exceeded changes who hears of the target exceeded.

The worker's copy of the directory is used with no staleness here (`directory_ttl=0`), so
each change is seen by the very next message; tests/test_staff_end_to_end.py checks the
default (about a second) with the real worker process on the dev server.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from models.case import Owner
from models.messages import (
    CancelTask,
    CompleteTask,
    HoldTask,
    RaiseCase,
    ReassignTask,
    ReleaseTask,
)
from starter.client import RequestRefusedError
from store.directory import StaffDirectory
from tests.helpers.workflow_harness import case_engine, keep_history, wait_open

NINA = Owner(kind="user", key="nina1")
LONDON = ZoneInfo("Europe/London")


def z(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


async def _refused(coro: object, code: str) -> str:
    with pytest.raises(RequestRefusedError) as info:
        await coro  # type: ignore[misc]
    assert info.value.code == code, str(info.value)
    return str(info.value)


async def test_disable_and_new_starter_reach_a_case_raised_before(tmp_path: Path) -> None:
    async with case_engine(tmp_path, directory_ttl=0.0) as eng:
        staff = StaffDirectory(eng.engine)
        ref = "PRV-2028-0101"
        await eng.sleep_until(z(2028, 6, 5, 9))  # Mon 5 Jun 2028 10:00 BST
        handle = await eng.client.raise_case(
            RaiseCase(reference=ref, topic="asked-to-leave", raised_by="adviser3")
        )
        await wait_open(handle)

        # A new starter, after the case was raised: she can be given its task, and work it.
        staff.add_user("nina1", "Nina Shah", roles=["housing-advisers"], by="hr")
        moved = await eng.client.reassign_task(
            ref,
            ReassignTask(
                request_id="m1", actor="adviser3", task="call-back", to=NINA, reason="workload"
            ),
        )
        assert moved is not None and moved.owner == NINA
        done = await eng.client.complete_task(
            ref, CompleteTask(request_id="c1", actor="nina1", task="call-back")
        )
        assert done is not None and done.status == "completed"

        # adviser3 owns the case and its interview; disabled today, refused at once.
        staff.disable("adviser3", by="hr")
        msg = await _refused(
            eng.client.complete_task(
                ref,
                CompleteTask(request_id="c2", actor="adviser3", task="housing-options-interview"),
            ),
            "actor_disabled",
        )
        assert msg == "actor 'adviser3' is a disabled user"
        state = await eng.client.state(ref)
        last = state.audit[-1]
        assert (last.outcome, last.actor, last.request_id) == ("refused", "adviser3", "c2")
        # Accepted messages name their actor too.
        assert [(a.actor, a.action) for a in state.audit if a.outcome == "accepted"][-2:] == [
            ("adviser3", "reassign_task"),
            ("nina1", "complete_task"),
        ]
        # Enabled again, the same request goes through.
        staff.enable("adviser3", by="hr")
        again = await eng.client.complete_task(
            ref,
            CompleteTask(request_id="c3", actor="adviser3", task="housing-options-interview"),
        )
        assert again is not None and again.status == "completed"
        await keep_history(handle, "live_directory")


async def test_absence_follow_on_and_membership_change(tmp_path: Path) -> None:
    async with case_engine(tmp_path, directory_ttl=0.0) as eng:
        staff = StaffDirectory(eng.engine)
        ref = "PRV-2028-0102"
        await eng.sleep_until(z(2028, 6, 5, 9))  # Mon 5 Jun 2028 10:00 BST
        handle = await eng.client.raise_case(
            RaiseCase(reference=ref, topic="asked-to-leave", raised_by="adviser3")
        )
        await wait_open(handle)

        # Call back: amber (the task owner) Tue 6 Jun 13:00 BST, target exceeded 17:00 (the
        # owner and the team leaders). Between the two, tl1 leaves the team leaders and a new
        # starter joins them.
        await eng.sleep_until(z(2028, 6, 6, 12, 30))  # 13:30 BST: after the amber
        staff.add_user("nina1", "Nina Shah", by="hr")
        staff.add_member("team-leaders", "nina1", by="hr", on=date(2028, 6, 6))
        staff.remove_member("team-leaders", "tl1", by="hr", on=date(2028, 6, 6))
        await eng.sleep_until(z(2028, 6, 6, 16, 30))  # 17:30 BST
        alerts = {(a[0], a[1]): a[4] for a in eng.alerts(ref)}
        assert alerts[("call-back", "amber")] == ("adviser3",)
        # As the sample stands it would be adviser3, tl1, tl2: the directory of 17:00 decides.
        assert alerts[("call-back", "target_exceeded")] == ("adviser3", "nina1", "tl2")

        await eng.client.complete_task(
            ref,
            CompleteTask(
                request_id="c1", actor="adviser3", task="call-back", late_reason="workload"
            ),
        )
        state = await eng.client.state(ref)
        interview = state.task("housing-options-interview")
        assert interview is not None and interview.next_follow_on_at is not None
        follow_on = interview.next_follow_on_at
        day = follow_on.astimezone(LONDON).date()

        # The morning of the follow-on, adviser1 rings in sick: recorded today.
        await eng.sleep_until(follow_on.replace(hour=7))  # 08:00 BST that day
        staff.record_absence("adviser1", day, day, reason="sickness", by="tl2")
        msg = await _refused(
            eng.client.reassign_task(
                ref,
                ReassignTask(
                    request_id="m1",
                    actor="adviser3",
                    task="housing-options-interview",
                    to=Owner(kind="user", key="adviser1"),
                    reason="workload",
                ),
            ),
            "user_unavailable",
        )
        assert msg == (
            f"user 'adviser1' is unavailable on {day.isoformat()} (sickness "
            f"{day.isoformat()} to {day.isoformat()})"
        )
        # The follow-on reassigns to the advisers' least busy member: adviser1 (first on the
        # tie) is absent, so adviser2.
        await eng.sleep_until(follow_on + timedelta(minutes=5))
        state = await eng.client.state(ref)
        interview = state.task("housing-options-interview")
        assert interview is not None
        assert interview.owner == Owner(kind="user", key="adviser2")

        # The next day the absence is over: adviser1 can be given the interview.
        await eng.sleep_until((follow_on + timedelta(days=1)).replace(hour=9))
        moved = await eng.client.reassign_task(
            ref,
            ReassignTask(
                request_id="m2",
                actor="adviser3",
                task="housing-options-interview",
                to=Owner(kind="user", key="adviser1"),
                reason="workload",
            ),
        )
        assert moved is not None and moved.owner == Owner(kind="user", key="adviser1")


async def test_working_a_case_follows_the_permission_table_and_live_membership(
    tmp_path: Path,
) -> None:
    """The hold, release and cancel messages go through the same permission table and live
    membership as the others: a team leader holds a task of a case she does not own (granted
    by `role:team-leaders`); once she has left the team leaders she may not release it, and
    the refusal names the rule and who may; the case owner may."""
    async with case_engine(tmp_path, directory_ttl=0.0) as eng:
        staff = StaffDirectory(eng.engine)
        ref = "PRV-2028-0103"
        await eng.sleep_until(z(2028, 6, 5, 9))  # Mon 5 Jun 2028 10:00 BST
        handle = await eng.client.raise_case(
            RaiseCase(reference=ref, topic="asked-to-leave", raised_by="adviser3")
        )
        await wait_open(handle)
        held = await eng.client.hold_task(
            ref,
            HoldTask(
                request_id="h1",
                actor="tl1",
                task="call-back",
                reason="awaiting_documents",
                planned_release=z(2028, 6, 9, 9),
            ),
        )
        assert held is not None and held.status == "on_hold"

        staff.remove_member("team-leaders", "tl1", by="hr", on=date(2028, 6, 5))
        msg = await _refused(
            eng.client.release_task(
                ref, ReleaseTask(request_id="r1", actor="tl1", task="call-back")
            ),
            "not_permitted",
        )
        assert msg.startswith("user 'tl1' may not release task 'call-back': by the permission ")
        assert "rule release_task" in msg and "members of role team-leaders" in msg
        # adviser2 is an adviser but owns neither the case nor the task: refused the same way.
        await _refused(
            eng.client.cancel_task(
                ref,
                CancelTask(
                    request_id="x1",
                    actor="adviser2",
                    task="call-back",
                    reason="duplicate",
                    cascade=True,
                ),
            ),
            "not_permitted",
        )
        released = await eng.client.release_task(
            ref, ReleaseTask(request_id="r2", actor="adviser3", task="call-back")
        )
        assert released is not None and released.status == "open"
        state = await eng.client.state(ref)
        assert [(a.actor, a.action, a.outcome) for a in state.audit[-4:]] == [
            ("tl1", "hold_task", "accepted"),
            ("tl1", "release_task", "refused"),
            ("adviser2", "cancel_task", "refused"),
            ("adviser3", "release_task", "accepted"),
        ]
        await keep_history(handle, "live_directory_hold_and_release")
