"""Whole cases on the time-skipping server: every alert's exact instant and recipients.

The instants below were computed by hand from the England and Wales calendar (comments show
the working). The cases run in 2028 so the dates stay in the future of the test server's
clock, which starts at the real time: spring 2028 has the clock change on Sun 26 Mar, Good
Friday 14 Apr, Easter Monday 17 Apr and the early May bank holiday on Mon 1 May.
"""

from __future__ import annotations

import asyncio
import gc
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError

from domain import planner
from models.case import CaseState, Owner
from models.messages import (
    AddTask,
    CancelTask,
    CloseCase,
    CompleteTask,
    HoldCase,
    HoldTask,
    RaiseCase,
    ReassignTask,
    ReviseTarget,
)
from starter.client import RequestRefusedError
from store.repository import load_case
from store.schema import Allocation, CaseReference
from tests.helpers.workflow_harness import CaseEngine, case_engine, keep_history, wait_open


def z(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


async def complete(
    eng: CaseEngine, ref: str, task: str, at: datetime, actor: str = "adviser1"
) -> None:
    await eng.sleep_until(at)
    view = await eng.client.complete_task(
        ref, CompleteTask(request_id=f"done-{task}", actor=actor, task=task, late_reason="workload")
    )
    assert view is not None and view.status == "completed"


ADVISER = ("adviser1",)
# Production runs workflow code outside the SDK's sandbox (worker.workflow_runner); these two
# cases also run inside it, so a non-deterministic call the sandbox refuses fails CI.
BOTH_RUNNERS = pytest.mark.parametrize("sandboxed", [False, True], ids=["production", "sandbox"])
OWNER_AND_TLS = ("adviser1", "tl1", "tl2")
TLS_AND_MANAGER = ("adviser1", "manager1", "tl1", "tl2")


@BOTH_RUNNERS
async def test_prevention_case_over_56_days_alerts_at_exact_instants(
    tmp_path: Path, sandboxed: bool
) -> None:
    async with case_engine(tmp_path, sandboxed=sandboxed) as eng:
        ref = "PRV-2028-0001"
        # Mon 20 Mar 2028 10:00 GMT.
        await eng.sleep_until(z(2028, 3, 20, 10))
        handle = await eng.client.raise_case(
            RaiseCase(reference=ref, topic="private-tenancy-ending", raised_by="adviser1")
        )
        await wait_open(handle)
        state = await eng.client.state(ref)
        assert state.workflow_type == "prevention-duty" and state.workflow_version == 2
        assert state.owner == Owner(kind="user", key="adviser1")
        # call-back: 1 working day -> Tue 21 Mar 17:00 GMT; amber 4 open hours before.
        cb = state.task("call-back")
        assert cb is not None and cb.status == "open"
        assert cb.due_at == z(2028, 3, 21, 17) and cb.amber_at == z(2028, 3, 21, 13)

        # Late call back: amber, target exceeded, follow-on #1 (Wed 22 Mar 17:00) have fired.
        await complete(eng, ref, "call-back", z(2028, 3, 23, 10))
        # Interview from Thu 23 Mar 10:00 GMT: 5 working days -> Thu 30 Mar 17:00 BST (the
        # clocks went forward on Sun 26 Mar), amber 2 working days before: Tue 28 Mar 17:00 BST.
        state = await eng.client.state(ref)
        hoi = state.task("housing-options-interview")
        assert hoi is not None and hoi.due_at == z(2028, 3, 30, 16)
        assert hoi.amber_at == z(2028, 3, 28, 16)
        await complete(eng, ref, "housing-options-interview", z(2028, 3, 29, 8))
        # Assessment from Wed 29 Mar: due Fri 31 Mar 17:00 BST; done before its amber.
        await complete(eng, ref, "assessment-and-php", z(2028, 3, 30, 9))
        await complete(eng, ref, "assessment-letter", z(2028, 3, 30, 12))
        # Prevention duty letter from Thu 30 Mar 10:00 BST: 3 working days -> Tue 4 Apr
        # 17:00 BST, amber Mon 3 Apr 17:00 BST; completed late on Wed 5 Apr.
        await complete(eng, ref, "prevention-duty-letter", z(2028, 4, 5, 9))
        # Prevention steps from Thu 30 Mar 13:00 BST, 3 weeks on 24x7 -> end of Thu 20 Apr;
        # amber end of Thu 13 Apr; follow-on one week later (end of Thu 27 Apr) adds the team
        # leader case review.
        await complete(eng, ref, "prevention-steps", z(2028, 4, 28, 9))
        state = await eng.client.state(ref)
        review = state.task("team-leader-case-review")
        assert review is not None and review.origin == "follow_on"
        assert review.started_at == z(2028, 4, 27, 22, 59, 59)
        # Added outside working time on Thu 27 Apr: 2 working days -> Tue 2 May (Mon 1 May is
        # a bank holiday) 17:00 BST; amber Fri 28 Apr 17:00 BST.
        assert review.due_at == z(2028, 5, 2, 16) and review.amber_at == z(2028, 4, 28, 16)
        await complete(eng, ref, "team-leader-case-review", z(2028, 4, 28, 10), actor="tl2")
        # PHP review: lag 4 weeks (20 working days) after the plan on Thu 30 Mar, skipping
        # Good Friday, Easter Monday and 1 May: starts Tue 2 May 09:00 BST.
        state = await eng.client.state(ref)
        php_review = state.task("php-review")
        assert php_review is not None and php_review.status == "lagging"
        assert php_review.starts_at == z(2028, 5, 2, 8)
        await complete(eng, ref, "php-review", z(2028, 5, 2, 10))
        # Outcome from Tue 2 May 11:00 BST: 3 working days -> Fri 5 May 17:00 BST, amber Thu 4
        # May; completed on Tue 9 May, after the case amber (end of Mon 8 May).
        await complete(eng, ref, "prevention-outcome", z(2028, 5, 9, 9))

        final: CaseState = await eng.client.result(ref)
        await keep_history(handle, "prevention_case")
        # Messages arrive a few milliseconds after the instant the test skipped to.
        assert final.status == "completed" and final.finished_at is not None
        assert abs(final.finished_at - z(2028, 5, 9, 9)) < timedelta(seconds=5)
        assert final.case_sla is not None and final.case_sla.due_at == z(2028, 5, 15, 22, 59, 59)

        assert eng.alerts(ref) == [
            ("call-back", "amber", 1, z(2028, 3, 21, 13), ADVISER),
            ("call-back", "target_exceeded", 1, z(2028, 3, 21, 17), OWNER_AND_TLS),
            ("call-back", "follow_on", 1, z(2028, 3, 22, 17), TLS_AND_MANAGER),
            ("housing-options-interview", "amber", 1, z(2028, 3, 28, 16), ADVISER),
            ("prevention-duty-letter", "amber", 1, z(2028, 4, 3, 16), ADVISER),
            ("prevention-duty-letter", "target_exceeded", 1, z(2028, 4, 4, 16), OWNER_AND_TLS),
            ("prevention-steps", "amber", 1, z(2028, 4, 13, 22, 59, 59), ADVISER),
            ("prevention-steps", "target_exceeded", 1, z(2028, 4, 20, 22, 59, 59), OWNER_AND_TLS),
            ("prevention-steps", "follow_on", 1, z(2028, 4, 27, 22, 59, 59), OWNER_AND_TLS),
            ("prevention-outcome", "amber", 1, z(2028, 5, 4, 16), ADVISER),
            ("prevention-outcome", "target_exceeded", 1, z(2028, 5, 5, 16), OWNER_AND_TLS),
            ("case", "amber", 1, z(2028, 5, 8, 22, 59, 59), ADVISER),
        ]
        # The summary keeps each task's story: who owned it, when it started, fell due, ended.
        steps = final.task("prevention-steps")
        assert steps is not None and steps.sla_status == "escalated"
        assert [f.indicator for f in steps.fired] == ["amber", "target_exceeded", "follow_on"]


async def test_relief_case_hours_across_autumn_clock_change_and_follow_on_repeats(
    tmp_path: Path,
) -> None:
    async with case_engine(tmp_path) as eng:
        ref = "REL-2028-0001"
        # Sat 28 Oct 2028 23:00 BST; clocks go back at 02:00 BST on Sun 29 Oct.
        await eng.sleep_until(z(2028, 10, 28, 22))
        handle = await eng.client.raise_case(
            RaiseCase(reference=ref, topic="homeless-tonight", raised_by="ooh1")
        )
        await wait_open(handle)
        state = await eng.client.state(ref)
        interview = state.task("emergency-interview")
        assert interview is not None and interview.owner == Owner(kind="user", key="ooh1")
        # 6 hours on 24x7 is elapsed time: due 04:00 UTC = 04:00 GMT, though the wall clock
        # only moved 5 hours. Amber 2 hours before; follow-on every hour, 3 times. (The case
        # starts a few milliseconds after the instant the test skipped to; SLA arithmetic
        # counts from the start of that minute, 22:00.)
        assert interview.started_at is not None
        assert abs(interview.started_at - z(2028, 10, 28, 22)) < timedelta(seconds=5)
        t0 = z(2028, 10, 28, 22)
        assert interview.due_at == z(2028, 10, 29, 4)
        assert interview.amber_at == z(2028, 10, 29, 2)
        await complete(eng, ref, "emergency-interview", z(2028, 10, 29, 8), actor="ooh1")
        alerts = [a for a in eng.alerts(ref) if a[0] == "emergency-interview"]
        assert [(a[1], a[2], a[3] - t0) for a in alerts] == [
            ("amber", 1, timedelta(hours=4)),
            ("target_exceeded", 1, timedelta(hours=6)),
            ("follow_on", 1, timedelta(hours=7)),
            ("follow_on", 2, timedelta(hours=8)),
            ("follow_on", 3, timedelta(hours=9)),
        ]
        assert alerts[1][4] == ("ooh1", "ooh2")  # out-of-hours team and the owner, once each
        assert alerts[2][4] == ("manager1", "ooh1", "tl1", "tl2")
        # Interim accommodation went to the out-of-hours team in turn (round robin).
        state = await eng.client.state(ref)
        placement = state.task("interim-accommodation")
        assert placement is not None and placement.owner is not None
        assert placement.owner.key in ("ooh1", "ooh2")
        await eng.client.close_case(
            ref, CloseCase(request_id="close-1", actor="manager1", reason="withdrew application")
        )
        final = await eng.client.result(ref)
        await keep_history(handle, "relief_case_closed")
        assert final.status == "closed" and final.close_reason == "withdrew application"
        assert final.tasks and all(t.status in ("completed", "cancelled") for t in final.tasks)


async def test_messages_refusals_duplicates_and_signals(tmp_path: Path) -> None:
    async with case_engine(tmp_path) as eng:
        ref = "PRV-2028-0002"
        await eng.sleep_until(z(2028, 6, 5, 9))  # Mon 5 Jun 2028 10:00 BST
        handle = await eng.client.raise_case(
            RaiseCase(reference=ref, topic="asked-to-leave", raised_by="adviser3")
        )
        await wait_open(handle)

        async def refused(coro: object, code: str) -> str:
            with pytest.raises(RequestRefusedError) as info:
                await coro  # type: ignore[misc]
            assert info.value.code == code, str(info.value)
            return str(info.value)

        # Completing a task that is still waiting is refused, naming its status.
        msg = await refused(
            eng.client.complete_task(
                ref, CompleteTask(request_id="r1", actor="adviser3", task="assessment-letter")
            ),
            "task_not_open",
        )
        assert "waiting" in msg
        await refused(
            eng.client.complete_task(
                ref, CompleteTask(request_id="r2", actor="nobody", task="call-back")
            ),
            "unknown_actor",
        )
        await refused(
            eng.client.complete_task(
                ref, CompleteTask(request_id="r3", actor="adviser4", task="call-back")
            ),
            "not_permitted",
        )
        await refused(
            eng.client.add_task(ref, AddTask(request_id="r4", actor="adviser3", task="call-back")),
            "task_already_on_case",
        )
        await refused(
            eng.client.add_task(
                ref, AddTask(request_id="r5", actor="adviser3", task="s184-decision")
            ),
            "task_not_allowed",
        )
        await refused(
            eng.client.reassign_task(
                ref,
                ReassignTask(
                    request_id="r6",
                    actor="adviser3",
                    task="call-back",
                    to=Owner(kind="user", key="adviser5"),
                    reason="workload",
                ),
            ),
            "user_unavailable",
        )
        await refused(
            eng.client.close_case(ref, CloseCase(request_id="r7", actor="adviser4", reason="x")),
            "not_permitted",
        )
        # A refusal that depends only on the case's state and rules happens in the update's
        # validator and leaves no trace in history; one that depends on who the people are
        # (the live staff directory, looked up by the handler) is refused in the audit trail,
        # naming the actor.
        state = await eng.client.state(ref)
        directory_refusals = [
            (a.request_id, a.actor, a.detail.split(":")[0])
            for a in state.audit
            if a.outcome == "refused"
        ]
        assert directory_refusals == [
            ("r2", "nobody", "unknown_actor"),
            ("r3", "adviser4", "not_permitted"),
            ("r6", "adviser3", "user_unavailable"),
            ("r7", "adviser4", "not_permitted"),
        ]

        # Manual add, reassign (with history), complete; a repeated request id changes nothing.
        added = await eng.client.add_task(
            ref, AddTask(request_id="a1", actor="adviser3", task="landlord-negotiation")
        )
        assert added is not None and added.status == "open"
        again = await eng.client.add_task(
            ref, AddTask(request_id="a1", actor="adviser3", task="landlord-negotiation")
        )
        assert again is not None and again.duplicate
        moved = await eng.client.reassign_task(
            ref,
            ReassignTask(
                request_id="m1",
                actor="tl2",
                task="call-back",
                to=Owner(kind="role", key="team-leaders"),
                reason="absence",
            ),
        )
        assert moved is not None and moved.owner == Owner(kind="role", key="team-leaders")
        # Group ownership: any team leader may complete it.
        done = await eng.client.complete_task(
            ref, CompleteTask(request_id="c1", actor="tl1", task="call-back")
        )
        assert done is not None and done.status == "completed"
        dup = await eng.client.complete_task(
            ref, CompleteTask(request_id="c1", actor="tl1", task="call-back")
        )
        assert dup is not None and dup.duplicate

        # A bad signal is refused into the audit trail and the case carries on.
        await eng.client.complete_task(
            ref,
            CompleteTask(request_id="s1", actor="adviser3", task="prevention-outcome"),
            wait=False,
        )
        await eng.client.complete_task(
            ref,
            CompleteTask(request_id="s2", actor="adviser3", task="housing-options-interview"),
            wait=False,
        )
        # A signal is handled once its directory lookup (a local activity) is back.
        for _ in range(200):
            state = await eng.client.state(ref)
            interview = state.task("housing-options-interview")
            if interview is not None and interview.status == "completed":
                break
            await asyncio.sleep(0.05)
        refusals = [
            a for a in state.audit if a.outcome == "refused" and a.request_id in ("s1", "s2")
        ]
        assert [(a.request_id, a.task) for a in refusals] == [("s1", "prevention-outcome")]
        assert "task_not_open" in refusals[0].detail
        interview = state.task("housing-options-interview")
        assert interview is not None and interview.status == "completed"
        call_back = state.task("call-back")
        assert call_back is not None
        assert [(c.owner.key, c.reason) for c in call_back.owner_history] == [
            ("adviser3", "allocated"),
            ("team-leaders", "absence"),
        ]
        await eng.client.close_case(
            ref, CloseCase(request_id="end", actor="adviser3", reason="duty ended")
        )
        assert (await eng.client.result(ref)).status == "closed"
        await keep_history(handle, "messages_and_refusals")


async def test_bad_raise_input_fails_the_case_at_once_naming_why(tmp_path: Path) -> None:
    async with case_engine(tmp_path) as eng:
        for ref, case, code in (
            (
                "BAD-0001",
                RaiseCase(reference="BAD-0001", topic="care-leaver", raised_by="ghost"),
                "unknown_actor",
            ),
            (
                "BAD-0002",
                RaiseCase(reference="BAD-0002", topic="care-leaver", raised_by="adviser5"),
                "unknown_actor",
            ),  # disabled
            (
                "BAD-0003",
                RaiseCase(
                    reference="BAD-0003",
                    topic="care-leaver",
                    raised_by="adviser1",
                    extra_tasks=["s184-decision"],
                ),
                "task_not_allowed",
            ),
            (
                "BAD-0004",
                RaiseCase(
                    reference="BAD-0004",
                    topic="care-leaver",
                    raised_by="ghost",
                    extra_tasks=["s184-decision"],
                ),
                "unknown_actor",
            ),  # both wrong: the raiser is named first
        ):
            # The client answers the refusal (and the reference stays free for a corrected raise).
            with pytest.raises(RequestRefusedError) as raised:
                await eng.client.raise_case(case)
            assert raised.value.code == code
            with pytest.raises(WorkflowFailureError) as info:
                await eng.client.result(ref)
            cause = info.value.cause
            assert isinstance(cause, ApplicationError) and cause.type == code, cause
        # A refused raise allocated nothing and claimed no reference (the raiser is checked
        # by the raise's allocation itself: `AllocateInput.check_raiser`).
        with eng.engine.connect() as conn:
            for column in (Allocation.case_reference, CaseReference.reference):
                refs = conn.execute(select(column)).scalars().all()
                assert not [r for r in refs if r.startswith("BAD-")], refs
        # Input that does not decode (any language can send JSON) fails the case too.
        handle = await eng.env.client.start_workflow(
            "HousingOptionsCase",
            {"case": {"reference": "bad reference!", "topic": "care-leaver", "raised_by": "x"}},
            id="case-bad-json",
            task_queue=eng.client.task_queue,
        )
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
        assert "reference" in str(failed.value.cause)
        # A message to a finished case is refused, not an RPC error.
        with pytest.raises(RequestRefusedError) as refused:
            await eng.client.complete_task(
                "BAD-0001", CompleteTask(request_id="late", actor="adviser1", task="call-back")
            )
        assert refused.value.code == "case_not_open"


@BOTH_RUNNERS
async def test_a_case_worked_through_hold_release_revision_and_late_completion(
    tmp_path: Path, sandboxed: bool
) -> None:
    """DOMAIN "Working a case" on the time-skipping server: a hold across two working days
    moves the call back's target, nothing fires while held, completion after the target needs
    a late reason, and a revision starts a new round of the interview's indicators."""
    async with case_engine(tmp_path, sandboxed=sandboxed) as eng:
        ref = "PRV-2028-0042"
        await eng.sleep_until(z(2028, 3, 20, 10))  # Mon 20 Mar 2028 10:00 GMT
        handle = await eng.client.raise_case(
            RaiseCase(reference=ref, topic="private-tenancy-ending", raised_by="adviser1")
        )
        await wait_open(handle)
        # call-back: due Tue 21 Mar 17:00 GMT, amber 13:00. Held Mon 11:00 to Thu 23 Mar 10:00.
        await eng.sleep_until(z(2028, 3, 20, 11))
        view = await eng.client.hold_task(
            ref,
            HoldTask(
                request_id="hold-1",
                actor="adviser1",
                task="call-back",
                reason="applicant_unavailable",
                planned_release=z(2028, 3, 23, 10),
                notes="in hospital until Thursday",
            ),
        )
        assert view is not None and view.status == "on_hold"
        with pytest.raises(RequestRefusedError) as again:
            await eng.client.hold_task(
                ref,
                HoldTask(
                    request_id="hold-2",
                    actor="adviser1",
                    task="call-back",
                    reason="other",
                    planned_release=z(2028, 3, 30, 10),
                ),
            )
        assert again.value.code == "task_on_hold"
        await eng.sleep_until(z(2028, 3, 23, 10, 0, 30))
        state = await eng.client.state(ref)
        cb = state.task("call-back")
        assert cb is not None and cb.status == "open" and cb.fired == ()
        # Working days in (20 Mar, 23 Mar]: 21, 22, 23. Three after Tue 21: Fri 24 Mar.
        assert cb.due_at == z(2028, 3, 24, 17) and cb.amber_at == z(2028, 3, 24, 13)
        assert cb.holds[0].released_by == "system"

        # Completed on Mon 27 Mar 10:00 BST (clocks went forward on Sun 26 Mar): late.
        await eng.sleep_until(z(2028, 3, 27, 9))
        bare = CompleteTask(request_id="late-1", actor="adviser1", task="call-back")
        with pytest.raises(RequestRefusedError) as late:
            await eng.client.complete_task(ref, bare)
        assert late.value.code == "late_reason_required"
        done = await eng.client.complete_task(
            ref,
            CompleteTask(
                request_id="late-2",
                actor="adviser1",
                task="call-back",
                late_reason="applicant_delay",
            ),
        )
        assert done is not None and done.status == "completed"
        state = await eng.client.state(ref)
        cb = state.task("call-back")
        assert cb is not None and cb.late_reason == "applicant_delay"
        assert [(f.indicator, f.due_at) for f in cb.fired] == [
            ("amber", z(2028, 3, 24, 13)),
            ("target_exceeded", z(2028, 3, 24, 17)),
        ]
        # The interview started then: 5 working days -> Mon 3 Apr 17:00 BST. Rebooked.
        hoi = state.task("housing-options-interview")
        assert hoi is not None and hoi.due_at == z(2028, 4, 3, 16)
        revised = await eng.client.revise_target(
            ref,
            ReviseTarget(
                request_id="rev-1",
                actor="adviser1",
                task="housing-options-interview",
                target=z(2028, 4, 5, 16),
                reason="applicant_request",
            ),
        )
        assert revised is not None and revised.due_at == z(2028, 4, 5, 16)
        state = await eng.client.state(ref)
        hoi = state.task("housing-options-interview")
        assert hoi is not None and hoi.round == 2
        # Amber 2 working days before Wed 5 Apr: Mon 3 Apr 17:00 BST.
        assert hoi.amber_at == z(2028, 4, 3, 16)
        await eng.sleep_until(z(2028, 4, 5, 16, 0, 30))
        state = await eng.client.state(ref)
        hoi = state.task("housing-options-interview")
        assert hoi is not None
        assert [(f.indicator, f.occurrence, f.round) for f in hoi.fired] == [
            ("amber", 1, 2),
            ("target_exceeded", 1, 2),
        ]
        await eng.client.close_case(
            ref, CloseCase(request_id="close-w", actor="adviser1", reason="duty ended")
        )
        final = await eng.client.result(ref)
        assert final.status == "closed"
        # The store's copy, made of complete records and records of changes, is the case.
        stored = load_case(eng.engine, ref)
        assert stored is not None and stored.status == "closed"
        by_key = sorted(planner.case_record(final, 0).tasks, key=lambda t: t.key)
        assert sorted(stored.tasks, key=lambda t: t.key) == by_key
        await keep_history(handle, "worked_case_hold_revise_late")


async def test_a_case_held_whole_and_a_chain_cancelled(tmp_path: Path) -> None:
    """A case hold on the time-skipping server: every task held at once and released by
    itself at the planned release; the statutory case target runs on; a cancellation with
    its chain. Recorded for replay."""
    async with case_engine(tmp_path) as eng:
        ref = "PRV-2028-0043"
        await eng.sleep_until(z(2028, 3, 20, 10))
        handle = await eng.client.raise_case(
            RaiseCase(reference=ref, topic="private-tenancy-ending", raised_by="adviser1")
        )
        await wait_open(handle)
        before = await eng.client.state(ref)
        assert before.case_sla is not None
        await eng.client.hold_case(
            ref,
            HoldCase(
                request_id="hc-1",
                actor="adviser1",
                reason="awaiting_third_party",
                planned_release=z(2028, 3, 22, 10),
            ),
        )
        held = await eng.client.state(ref)
        assert held.hold is not None
        assert {t.key for t in held.tasks if t.status == "on_hold"} >= {"call-back"}
        await eng.sleep_until(z(2028, 3, 22, 10, 0, 30))
        state = await eng.client.state(ref)
        assert state.hold is None and state.holds[0].released_by == "system"
        cb = state.task("call-back")
        # Working days in (20 Mar, 22 Mar]: 21, 22. Tue 21 Mar 17:00 + 2 = Thu 23 Mar 17:00.
        assert cb is not None and cb.status == "open" and cb.due_at == z(2028, 3, 23, 17)
        added = await eng.client.add_task(
            ref, AddTask(request_id="add-1", actor="adviser1", task="landlord-negotiation")
        )
        assert added is not None
        cancelled = await eng.client.cancel_task(
            ref,
            CancelTask(
                request_id="cx-1",
                actor="adviser1",
                task="landlord-negotiation",
                reason="no_longer_required",
            ),
        )
        assert cancelled is not None and cancelled.status == "cancelled"
        with pytest.raises(RequestRefusedError) as chain:
            await eng.client.cancel_task(
                ref,
                CancelTask(
                    request_id="cx-2", actor="adviser1", task="call-back", reason="duplicate"
                ),
            )
        assert chain.value.code == "dependants_not_cascaded"
        await eng.client.close_case(
            ref, CloseCase(request_id="close-h", actor="adviser1", reason="duty ended")
        )
        assert (await eng.client.result(ref)).status == "closed"
        await keep_history(handle, "case_held_and_chain_cancelled")


def _live_states(refs: list[str]) -> list[CaseState]:
    """The CaseState objects of these cases alive in this process (other tests' own may be
    alive too: only these cases' count)."""
    gc.collect()
    return [
        o
        for o in gc.get_objects()
        if isinstance(o, CaseState) and getattr(o, "reference", None) in refs
    ]


async def test_a_waiting_case_keeps_its_state_packed(tmp_path: Path) -> None:
    # The worker here is in this process: while its cases wait (for a timer, a message), no
    # CaseState is alive in it (each is packed: memory and the collector's work per cached
    # case), and each wakes to the same case, by a message, a query or its timer.
    async with case_engine(tmp_path) as eng:
        await eng.sleep_until(z(2028, 6, 5, 9))  # Mon 5 Jun 2028 10:00 BST
        refs = [f"PRV-2028-07{i:02d}" for i in range(3)]
        for ref in refs:
            await wait_open(
                await eng.client.raise_case(
                    RaiseCase(reference=ref, topic="asked-to-leave", raised_by="adviser3")
                )
            )
        assert _live_states(refs) == []
        state = await eng.client.state(refs[0])  # a query reads a copy
        open_tasks = [t.key for t in state.tasks if t.status == "open"]
        del state
        assert open_tasks and _live_states(refs) == []
        view = await eng.client.complete_task(
            refs[0], CompleteTask(request_id="p1", actor="adviser3", task=open_tasks[0])
        )
        assert view is not None and view.status == "completed"
        assert _live_states(refs) == []
        # A day on: the timers fire (ambers, targets), the cases alert and wait again.
        await eng.sleep_until(z(2028, 6, 7, 9))
        fired = await eng.client.state(refs[1])
        assert any(t.fired for t in fired.tasks)
        done = await eng.client.state(refs[0])
        assert done.task(open_tasks[0]).status == "completed"  # type: ignore[union-attr]
        del fired, done
        assert _live_states(refs) == []
