"""Working a case (DOMAIN "Working a case"): holds, releases, revisions, cancellation and
completion, hand-computed on the pure core.

Every expected instant was worked out by hand from a printed calendar: England and Wales bank
holidays Good Friday 3 Apr and Easter Monday 6 Apr 2026; clocks go forward on Sun 29 Mar 2026
(01:00 UTC). Working calendar: Monday to Friday 09:00-17:00 London.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain import case_rules, planner
from domain.errors import RequestRefused
from domain.planner import working
from models.case import CaseState, CaseTask, Hold, pack_state, unpack_state
from models.definition import CaseDefinition
from models.messages import (
    CancelTask,
    CompleteTask,
    HoldCase,
    HoldTask,
    ReleaseCase,
    ReleaseTask,
    ReviseTarget,
)
from tests.helpers.factories import (
    ALICE,
    BOB,
    H24,
    catch_up,
    definition,
    london,
    p,
    sla,
    step,
    task,
    with_pinned_staff,
)


class rules:
    """The checks with the directory facts of the definition's pinned staff (the factories'
    STAFF and ROLES); tests/test_permissions.py checks the rules against live facts."""

    check_hold_task = staticmethod(with_pinned_staff(case_rules.check_hold_task))
    check_release_task = staticmethod(with_pinned_staff(case_rules.check_release_task))
    check_hold_case = staticmethod(with_pinned_staff(case_rules.check_hold_case))
    check_release_case = staticmethod(with_pinned_staff(case_rules.check_release_case))
    check_revise_target = staticmethod(with_pinned_staff(case_rules.check_revise_target))
    check_cancel_task = staticmethod(with_pinned_staff(case_rules.check_cancel_task))
    check_complete_task = staticmethod(with_pinned_staff(case_rules.check_complete_task))


_ids = iter(range(1, 1_000_000))


def rid() -> str:
    return f"r-{next(_ids)}"


def _defn(*, statutory_case: bool = False, case_revisable: bool = False) -> CaseDefinition:
    return definition(
        [
            # 5 working days, amber 2 days before.
            task("interview", sla(p(5, "days"), amber=p(2, "days"), revisable=True)),
            # 4 working hours.
            task("call_back", sla(p(4, "hours"))),
            # 48 hours around the clock.
            task("visit", sla(p(48, "hours"), calendar=H24)),
            # A statutory 21-day period.
            task(
                "review",
                sla(p(21, "days"), calendar=H24, statutory=True, revisable=True),
            ),
            task("plan", sla(p(2, "days"), amber=p(1, "days"), revisable=True)),
            task("letter", sla(p(3, "days"))),
        ],
        [
            step("interview"),
            step("call_back"),
            step("visit"),
            step("review"),
            step("plan", ["interview"]),
            step("letter", ["plan"], lag=p(2, "days")),
        ],
        case_sla=sla(
            p(56, "days"),
            calendar=H24,
            amber=p(7, "days"),
            statutory=statutory_case,
            revisable=case_revisable,
        ),
    )


def _case(raised: datetime, **kw: bool) -> tuple[CaseDefinition, CaseState]:
    defn = _defn(**kw)
    state = planner.new_case_state(
        defn,
        reference="HOC-W1",
        created_by="alice",
        created_at=raised,
        case_owner=ALICE,
        task_owners={k: BOB for k in ("interview", "call_back", "visit", "plan", "letter")},
    )
    catch_up(defn, state, raised)
    return defn, state


def send(
    defn: CaseDefinition,
    state: CaseState,
    req: object,
    now: datetime,
    check: Callable[..., None],
    change: Callable[..., object],
) -> None:
    """What the workflow does with a message at `now`: catch up, check, change."""
    catch_up(defn, state, now)
    check(defn, state, req, now)
    change(defn, state, req, now)


def hold(defn: CaseDefinition, state: CaseState, key: str, now: datetime, until: datetime) -> None:
    req = HoldTask(
        request_id=rid(), actor="bob", task=key, reason="awaiting_documents", planned_release=until
    )
    send(defn, state, req, now, rules.check_hold_task, working.hold_task)


def release(
    defn: CaseDefinition, state: CaseState, key: str, now: datetime, move: datetime | None = None
) -> None:
    req = ReleaseTask(request_id=rid(), actor="bob", task=key, planned_release=move)
    send(defn, state, req, now, rules.check_release_task, working.release_task)


def refused(check: Callable[[], object], code: str, contains: str = "") -> str:
    with pytest.raises(RequestRefused) as info:
        check()
    assert info.value.code == code, str(info.value)
    assert code in case_rules.REFUSAL_CODES
    assert contains in str(info.value)
    return str(info.value)


def fired(state: CaseState, key: str) -> list[tuple[str, int, int, datetime]]:
    found = state.task(key)
    assert found is not None
    return [(f.indicator, f.occurrence, f.round, f.due_at) for f in found.fired]


def t(state: CaseState, key: str) -> CaseTask:
    found = state.task(key)
    assert found is not None
    return found


RAISED = london(2026, 3, 31, 10)  # Tue 31 Mar 2026, before Easter


def test_day_target_held_across_easter_weekend() -> None:
    defn, state = _case(RAISED)
    # 5 working days from Tue 31 Mar: 1, 2 Apr, (Good Friday, weekend, Easter Monday), 7, 8, 9.
    assert t(state, "interview").due_at == london(2026, 4, 9, 17)
    assert t(state, "interview").amber_at == london(2026, 4, 7, 17)
    hold(defn, state, "interview", london(2026, 4, 2, 11), london(2026, 4, 7, 10))
    assert t(state, "interview").status == "on_hold"
    # Nothing fires while held; it releases itself at the planned release.
    catch_up(defn, state, london(2026, 4, 7, 9, 59))
    assert t(state, "interview").status == "on_hold"
    actions = catch_up(defn, state, london(2026, 4, 7, 10))
    assert planner.ReleaseHold(task="interview", at=london(2026, 4, 7, 10)) in actions
    # Counted days d with 2 Apr < d <= 7 Apr: only Tue 7 Apr. One working day later.
    interview = t(state, "interview")
    assert interview.status == "open"
    assert interview.due_at == london(2026, 4, 10, 17)
    assert interview.amber_at == london(2026, 4, 8, 17)
    hold_record = interview.holds[0]
    assert hold_record.released_at == london(2026, 4, 7, 10)
    assert hold_record.released_by == "system"
    assert working.held_minutes(interview.holds, london(2026, 4, 8)) == (4 * 24 + 23) * 60
    catch_up(defn, state, london(2026, 4, 10, 17))
    assert fired(state, "interview") == [
        ("amber", 1, 1, london(2026, 4, 8, 17)),
        ("target_exceeded", 1, 1, london(2026, 4, 10, 17)),
    ]


def test_released_early_by_hand_and_moved() -> None:
    defn, state = _case(RAISED)
    hold(defn, state, "interview", london(2026, 4, 2, 11), london(2026, 4, 17, 10))
    release(defn, state, "interview", london(2026, 4, 7, 10))
    assert t(state, "interview").due_at == london(2026, 4, 10, 17)

    defn, state = _case(RAISED)
    hold(defn, state, "interview", london(2026, 4, 2, 11), london(2026, 4, 7, 10))
    release(defn, state, "interview", london(2026, 4, 4, 12), move=london(2026, 4, 8, 12))
    catch_up(defn, state, london(2026, 4, 7, 10))
    assert t(state, "interview").status == "on_hold"  # the old instant no longer releases it
    catch_up(defn, state, london(2026, 4, 8, 12))
    # Working days in (2 Apr, 8 Apr]: Tue 7, Wed 8. Two after Thu 9: Fri 10, Mon 13.
    assert t(state, "interview").status == "open"
    assert t(state, "interview").due_at == london(2026, 4, 13, 17)


def test_working_hours_held_over_a_weekend_and_the_clock_change() -> None:
    raised = london(2026, 3, 27, 15)  # Fri 27 Mar 15:00 GMT
    defn, state = _case(raised)
    # 2 open hours on Friday, 2 on Monday (BST from Sunday).
    assert t(state, "call_back").due_at == london(2026, 3, 30, 11)
    hold(defn, state, "call_back", london(2026, 3, 27, 16), london(2026, 3, 30, 10))
    catch_up(defn, state, london(2026, 3, 30, 10))
    # Open time in [Fri 16:00, Mon 10:00): 1 hour on Friday, 1 on Monday.
    assert t(state, "call_back").due_at == london(2026, 3, 30, 13)


def test_24x7_hours_held_across_the_clock_change_are_elapsed_time() -> None:
    raised = london(2026, 3, 28, 12)  # Sat 28 Mar 12:00 GMT
    defn, state = _case(raised)
    assert t(state, "visit").due_at == london(2026, 3, 30, 13)  # 48 h later, in BST
    # Sat 20:00 GMT to Sun 20:00 BST is 23 elapsed hours (the clock went forward).
    hold(defn, state, "visit", london(2026, 3, 28, 20), london(2026, 3, 29, 20))
    catch_up(defn, state, london(2026, 3, 29, 20))
    assert t(state, "visit").due_at == london(2026, 3, 31, 12)


def test_a_hold_within_one_day_moves_a_day_target_by_nothing() -> None:
    defn, state = _case(RAISED)
    hold(defn, state, "interview", london(2026, 4, 1, 10), london(2026, 4, 1, 16))
    catch_up(defn, state, london(2026, 4, 1, 16))
    assert t(state, "interview").due_at == london(2026, 4, 9, 17)


def test_statutory_task_cannot_be_held() -> None:
    defn, state = _case(RAISED)
    req = HoldTask(
        request_id=rid(),
        actor="alice",
        task="review",
        reason="awaiting_documents",
        planned_release=london(2026, 4, 20, 10),
    )
    refused(
        lambda: rules.check_hold_task(defn, state, req, london(2026, 4, 1, 10)),
        "statutory_period",
        "statutory period",
    )


def test_hold_refusals_name_the_rule() -> None:
    defn, state = _case(RAISED)
    now = london(2026, 4, 1, 10)

    def req(**kw: object) -> HoldTask:
        base: dict[str, object] = {
            "request_id": rid(),
            "actor": "bob",
            "task": "interview",
            "reason": "awaiting_documents",
            "planned_release": london(2026, 4, 20, 10),
        }
        return HoldTask.model_validate(base | kw)

    refused(
        lambda: rules.check_hold_task(defn, state, req(planned_release=now), now),
        "not_in_future",
    )
    refused(
        lambda: rules.check_hold_task(defn, state, req(reason="bored"), now),
        "unknown_reason",
        "awaiting_documents",
    )
    refused(lambda: rules.check_hold_task(defn, state, req(actor="erin"), now), "not_permitted")
    refused(
        lambda: rules.check_hold_task(defn, state, req(planned_release=london(2031, 1, 1)), now),
        "calendar_out_of_range",
    )
    hold(defn, state, "interview", now, london(2026, 4, 20, 10))
    refused(lambda: rules.check_hold_task(defn, state, req(), now), "task_on_hold", "held")
    loose = ReleaseTask(request_id=rid(), actor="bob", task="call_back")
    refused(lambda: rules.check_release_task(defn, state, loose, now), "task_not_on_hold")


def test_a_lagging_task_held_has_its_start_moved() -> None:
    defn, state = _case(RAISED)
    # interview done Wed 1 Apr 10:00; plan done Thu 2 Apr 10:00; letter lags 2 working days:
    # opening of the 2nd working day after 2 Apr (Fri 3 and Mon 6 are holidays) = Wed 8 Apr.
    for key, at in (("interview", london(2026, 4, 1, 10)), ("plan", london(2026, 4, 2, 10))):
        req = CompleteTask(request_id=rid(), actor="bob", task=key)
        send(defn, state, req, at, rules.check_complete_task, planner.complete_task)
    assert t(state, "letter").status == "lagging"
    assert t(state, "letter").starts_at == london(2026, 4, 8, 9)
    hold(defn, state, "letter", london(2026, 4, 2, 12), london(2026, 4, 8, 10))
    catch_up(defn, state, london(2026, 4, 8, 10))
    # Working days in (2 Apr, 8 Apr]: 7 and 8 Apr; the start moves to the opening of the 2nd
    # working day after 8 Apr: Fri 10 Apr 09:00.
    assert t(state, "letter").status == "lagging"
    assert t(state, "letter").starts_at == london(2026, 4, 10, 9)
    catch_up(defn, state, london(2026, 4, 10, 9))
    assert t(state, "letter").status == "open"


def test_case_hold_with_a_statutory_case_target() -> None:
    defn, state = _case(RAISED, statutory_case=True)
    case_due = state.case_sla.due_at if state.case_sla else None
    req = HoldCase(
        request_id=rid(),
        actor="alice",
        reason="applicant_unavailable",
        planned_release=london(2026, 4, 14, 10),
    )
    send(defn, state, req, london(2026, 4, 1, 10), rules.check_hold_case, working.hold_case)
    assert state.hold is not None and state.case_sla is not None
    assert not state.case_sla.held  # a statutory case target keeps running
    assert t(state, "review").status == "open"  # statutory: never held
    assert t(state, "interview").status == "on_hold"
    catch_up(defn, state, london(2026, 4, 14, 10))
    assert state.hold is None
    assert state.case_sla.due_at == case_due
    # Working days in (1 Apr, 14 Apr]: 2, 7, 8, 9, 10, 13, 14 = 7. Thu 9 Apr + 7 = Mon 20 Apr.
    assert t(state, "interview").due_at == london(2026, 4, 20, 17)
    assert t(state, "interview").status == "open"


def test_case_hold_holds_the_case_target() -> None:
    raised = london(2026, 4, 7, 10)
    defn, state = _case(raised)
    assert state.case_sla is not None
    # 56 days around the clock from Tue 7 Apr: Tue 2 Jun 23:59:59.
    assert state.case_sla.due_at == london(2026, 6, 2, 23, 59, 59)
    req = HoldCase(
        request_id=rid(), actor="alice", reason="other", planned_release=london(2026, 4, 30, 10)
    )
    send(defn, state, req, london(2026, 4, 8, 10), rules.check_hold_case, working.hold_case)
    assert state.case_sla.held
    done = ReleaseCase(request_id=rid(), actor="alice")
    send(
        defn,
        state,
        done,
        london(2026, 4, 10, 15),
        rules.check_release_case,
        working.release_case,
    )
    # Days d with 8 Apr < d <= 10 Apr: 2. The case target moves two days later.
    assert state.case_sla.due_at == london(2026, 6, 4, 23, 59, 59)
    assert state.case_sla.amber_at == london(2026, 5, 28, 23, 59, 59)
    assert all(task.status != "on_hold" for task in state.tasks)


def test_revision_after_a_breach_starts_a_new_round() -> None:
    raised = london(2026, 4, 7, 10)
    defn, state = _case(raised)
    req = CompleteTask(request_id=rid(), actor="bob", task="interview")
    send(
        defn,
        state,
        req,
        london(2026, 4, 7, 11),
        rules.check_complete_task,
        planner.complete_task,
    )
    catch_up(defn, state, london(2026, 4, 7, 11))
    plan_task = t(state, "plan")
    assert plan_task.due_at == london(2026, 4, 9, 17)  # 2 working days from Tue 7 Apr
    catch_up(defn, state, london(2026, 4, 10, 10))
    assert plan_task.sla_status == "breached"
    revise = ReviseTarget(
        request_id=rid(),
        actor="bob",
        task="plan",
        target=london(2026, 4, 14, 17),
        reason="awaiting_evidence",
    )
    send(
        defn,
        state,
        revise,
        london(2026, 4, 10, 10),
        rules.check_revise_target,
        working.revise_target,
    )
    plan_task = t(state, "plan")
    assert plan_task.round == 2
    assert plan_task.sla_status == "on_track"
    assert plan_task.amber_at == london(2026, 4, 13, 17)
    assert plan_task.revisions[0].old_target == london(2026, 4, 9, 17)
    catch_up(defn, state, london(2026, 4, 14, 17))
    assert fired(state, "plan") == [
        ("amber", 1, 1, london(2026, 4, 8, 17)),
        ("target_exceeded", 1, 1, london(2026, 4, 9, 17)),
        ("amber", 2, 2, london(2026, 4, 13, 17)),
        ("target_exceeded", 2, 2, london(2026, 4, 14, 17)),
    ]


def test_revision_refusals() -> None:
    defn, state = _case(RAISED)
    now = london(2026, 4, 1, 10)

    def req(**kw: object) -> ReviseTarget:
        base: dict[str, object] = {
            "request_id": rid(),
            "actor": "bob",
            "task": "interview",
            "target": london(2026, 4, 20, 17),
            "reason": "awaiting_evidence",
        }
        return ReviseTarget.model_validate(base | kw)

    check = rules.check_revise_target
    refused(lambda: check(defn, state, req(target=now), now), "not_in_future")
    refused(lambda: check(defn, state, req(task="call_back"), now), "revision_not_allowed")
    refused(lambda: check(defn, state, req(task="review", actor="alice"), now), "statutory_period")
    check(defn, state, req(task="review", actor="alice", reason="extension_agreed_in_writing"), now)
    refused(
        lambda: check(defn, state, req(target=london(2026, 6, 30, 17)), now),
        "target_after_case_target",
    )
    refused(lambda: check(defn, state, req(task=None, actor="alice"), now), "revision_not_allowed")
    refused(lambda: check(defn, state, req(task="plan"), now), "task_not_started")

    defn, state = _case(RAISED, case_revisable=True)
    early = req(task=None, actor="alice", target=london(2026, 4, 8, 17))
    message = refused(lambda: check(defn, state, early, now), "case_target_before_task_target")
    assert "interview" in message and "review" in message


def test_cancel_with_and_without_its_chain() -> None:
    defn, state = _case(RAISED)
    now = london(2026, 4, 1, 10)
    alone = CancelTask(request_id=rid(), actor="bob", task="interview", reason="no_longer_required")
    message = refused(
        lambda: rules.check_cancel_task(defn, state, alone, now), "dependants_not_cascaded"
    )
    assert "plan, letter" in message
    chain = CancelTask(
        request_id=rid(), actor="bob", task="interview", reason="no_longer_required", cascade=True
    )
    send(defn, state, chain, now, rules.check_cancel_task, working.cancel_task)
    assert [t(state, k).status for k in ("interview", "plan", "letter")] == ["cancelled"] * 3
    assert t(state, "plan").cancel_reason == "no_longer_required"
    # The cancelled mandatory tasks no longer block the case from finishing.
    for key in ("call_back", "visit", "review"):
        done = CompleteTask(request_id=rid(), actor="alice", task=key, late_reason="workload")
        send(defn, state, done, now, rules.check_complete_task, planner.complete_task)
    assert planner.case_may_finish(state)


def test_late_completion_needs_a_reason_and_outcomes_are_checked() -> None:
    defn, state = _case(RAISED)
    late = london(2026, 4, 10, 10)  # after Thu 9 Apr 17:00
    bare = CompleteTask(request_id=rid(), actor="bob", task="interview")
    catch_up(defn, state, late)
    refused(lambda: rules.check_complete_task(defn, state, bare, late), "late_reason_required")
    odd = CompleteTask(request_id=rid(), actor="bob", task="interview", late_reason="nope")
    refused(lambda: rules.check_complete_task(defn, state, odd, late), "unknown_reason")
    outcome = CompleteTask(
        request_id=rid(), actor="bob", task="interview", late_reason="workload", outcome="x"
    )
    refused(lambda: rules.check_complete_task(defn, state, outcome, late), "unknown_outcome")
    good = CompleteTask(
        request_id=rid(), actor="bob", task="interview", late_reason="workload", note="called"
    )
    send(defn, state, good, late, rules.check_complete_task, planner.complete_task)
    assert t(state, "interview").late_reason == "workload"
    assert t(state, "interview").completion_notes == "called"
    # Completed at the target's own minute is on time (DOMAIN "Precision").
    defn, state = _case(RAISED)
    on_time = CompleteTask(request_id=rid(), actor="bob", task="interview")
    at = london(2026, 4, 9, 17, 0, 30)
    send(defn, state, on_time, at, rules.check_complete_task, planner.complete_task)


def test_completing_a_held_task_ends_its_hold() -> None:
    defn, state = _case(RAISED)
    hold(defn, state, "interview", london(2026, 4, 2, 11), london(2026, 4, 20, 10))
    done = CompleteTask(request_id=rid(), actor="bob", task="interview")
    # Thu 9 Apr 17:00 moved by (2 Apr, 10 Apr] = 7, 8, 9, 10 Apr: four days, Wed 15 Apr.
    send(
        defn,
        state,
        done,
        london(2026, 4, 10, 10),
        rules.check_complete_task,
        planner.complete_task,
    )
    interview = t(state, "interview")
    assert interview.status == "completed"
    assert interview.holds[0].released_at == london(2026, 4, 10, 10)
    assert interview.due_at == london(2026, 4, 15, 17)
    assert interview.sla_status == "on_track"


# --- properties ----------------------------------------------------------------------------

_instants = st.integers(min_value=0, max_value=14 * 24 * 60).map(
    lambda minutes: RAISED + timedelta(minutes=minutes)
)


@settings(max_examples=60, deadline=None)
@given(_instants)
def test_a_zero_length_hold_changes_nothing(at: datetime) -> None:
    defn, state = _case(RAISED)
    catch_up(defn, state, at)
    task_ = t(state, "visit")
    if task_.status != "open":
        return
    before = (task_.due_at, task_.amber_at, task_.next_follow_on_at)
    working.begin_hold(
        task_,
        Hold(begun_at=at, planned_release=at + timedelta(days=1), reason="other", by="bob"),
    )
    working.end_task_hold(defn, state, task_, at, "bob")
    assert (task_.due_at, task_.amber_at, task_.next_follow_on_at) == before


@settings(max_examples=40, deadline=None)
@given(_instants, st.integers(min_value=1, max_value=10 * 24 * 60))
def test_no_indicator_fires_while_held_and_release_is_the_shift_rule(
    begun: datetime, minutes: int
) -> None:
    defn, state = _case(RAISED)
    catch_up(defn, state, begun)
    interview = t(state, "interview")
    if interview.status != "open" or interview.due_at is None:
        return
    due, fired_before = interview.due_at, len(interview.fired)
    end = begun + timedelta(minutes=minutes)
    hold(defn, state, "interview", begun, end)
    catch_up(defn, state, end - timedelta(minutes=1))
    assert len(t(state, "interview").fired) == fired_before
    catch_up(defn, state, end)
    calendar = planner.sla_calendar_of(defn, planner.task_sla(defn, "interview"))  # type: ignore[arg-type]
    assert t(state, "interview").due_at == calendar.shift_for_hold(due, "days", begun, end)


@settings(max_examples=40, deadline=None)
@given(st.lists(_instants, min_size=1, max_size=6))
def test_replanning_at_any_intermediate_time_gives_the_same_result(stops: list[datetime]) -> None:
    end = RAISED + timedelta(days=15)
    defn, direct = _case(RAISED)
    hold(defn, direct, "interview", RAISED + timedelta(hours=1), RAISED + timedelta(days=3))
    _, stepped = _case(RAISED)
    hold(defn, stepped, "interview", RAISED + timedelta(hours=1), RAISED + timedelta(days=3))
    for stop in sorted(stops):
        catch_up(defn, stepped, max(stop, RAISED + timedelta(hours=1)))
    catch_up(defn, stepped, end)
    catch_up(defn, direct, end)
    own = {"audit", "audit_total", "request_ids", "request_digests"}
    assert stepped.model_dump(exclude=own) == direct.model_dump(exclude=own)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=5), min_size=1, max_size=4))
def test_a_revision_round_never_reuses_an_alert_identity(gaps: list[int]) -> None:
    raised = london(2026, 4, 7, 10)
    defn, state = _case(raised)
    req = CompleteTask(request_id=rid(), actor="bob", task="interview")
    send(
        defn,
        state,
        req,
        london(2026, 4, 7, 11),
        rules.check_complete_task,
        planner.complete_task,
    )
    now = london(2026, 4, 7, 11)
    for gap in gaps:
        now = now + timedelta(days=gap)
        catch_up(defn, state, now)
        revise = ReviseTarget(
            request_id=rid(),
            actor="bob",
            task="plan",
            target=now + timedelta(days=1),
            reason="other",
        )
        rules.check_revise_target(defn, state, revise, now)
        working.revise_target(defn, state, revise, now)
    catch_up(defn, state, now + timedelta(days=3))
    identities = [(f.indicator, f.occurrence) for f in t(state, "plan").fired]
    assert len(identities) == len(set(identities))
    assert {f.round for f in t(state, "plan").fired} <= set(range(1, len(gaps) + 2))


def test_case_hold_refusals() -> None:
    defn, state = _case(RAISED)
    now = london(2026, 4, 1, 10)
    free = ReleaseCase(request_id=rid(), actor="alice")
    refused(lambda: rules.check_release_case(defn, state, free, now), "case_not_on_hold")
    req = HoldCase(
        request_id=rid(), actor="alice", reason="other", planned_release=london(2026, 4, 9, 10)
    )
    refused(
        lambda: rules.check_hold_case(defn, state, req.model_copy(update={"actor": "bob"}), now),
        "not_permitted",
    )
    send(defn, state, req, now, rules.check_hold_case, working.hold_case)
    again = req.model_copy(update={"request_id": rid()})
    refused(lambda: rules.check_hold_case(defn, state, again, now), "case_on_hold")
    untargeted = ReviseTarget(
        request_id=rid(), actor="bob", task="visit", target=london(2026, 4, 9, 10), reason="other"
    )
    # "visit" is held by the case hold.
    refused(lambda: rules.check_revise_target(defn, state, untargeted, now), "task_on_hold")


def test_a_task_without_an_sla_has_no_target_to_revise() -> None:
    defn = definition([task("note")], [step("note")])
    state = planner.new_case_state(
        defn, reference="HOC-W2", created_by="alice", created_at=RAISED, case_owner=ALICE
    )
    catch_up(defn, state, RAISED)
    req = ReviseTarget(
        request_id=rid(), actor="alice", task="note", target=london(2026, 4, 9, 10), reason="other"
    )
    refused(lambda: rules.check_revise_target(defn, state, req, RAISED), "no_target")


def test_a_case_raised_before_the_rules_keeps_its_own() -> None:
    """A case pinned before "Working a case" (rules_version 1, calendars without minute
    precision) completes late without a reason and counts from the exact instant: its
    recorded history replays."""
    defn, state = _case(RAISED)
    old = defn.model_copy(
        update={
            "rules_version": 1,
            "calendars": {
                k: c.model_copy(update={"minute_precision": False})
                for k, c in defn.calendars.items()
            },
        }
    )
    late = london(2026, 4, 10, 10)
    catch_up(old, state, late)
    bare = CompleteTask(request_id=rid(), actor="bob", task="interview")
    rules.check_complete_task(old, state, bare, late)
    calendar = planner.sla_calendar_of(old, planner.task_sla(old, "call_back"))  # type: ignore[arg-type]
    start = london(2026, 1, 13, 15).replace(microsecond=14_000)
    assert calendar.due(start, p(2, "hours")) == london(2026, 1, 14, 9).replace(microsecond=14_000)


def test_a_worked_case_packed_while_it_waits_is_the_same_case() -> None:
    # A waiting case keeps its state packed (models.case.pack_state); everything a worked
    # case holds (holds, a case hold, revised rounds, indicators fired, the audit trail and
    # the request ids) must come back equal, and plan as the live state does.
    defn, state = _case(RAISED)
    hold(defn, state, "visit", london(2026, 4, 1, 10), london(2026, 4, 3, 10))
    release(defn, state, "visit", london(2026, 4, 2, 10))
    catch_up(defn, state, london(2026, 4, 9, 10))
    revise = ReviseTarget(
        request_id=rid(),
        actor="bob",
        task="interview",
        target=london(2026, 4, 21, 17),
        reason="awaiting_evidence",
    )
    send(
        defn,
        state,
        revise,
        london(2026, 4, 9, 10),
        rules.check_revise_target,
        working.revise_target,
    )
    req = HoldCase(
        request_id=rid(),
        actor="alice",
        reason="applicant_unavailable",
        planned_release=london(2026, 4, 24, 10),
    )
    send(defn, state, req, london(2026, 4, 10, 10), rules.check_hold_case, working.hold_case)
    planner.audit.system(state, london(2026, 4, 10, 10), "allocation", "visit", "nobody free")
    assert state.hold is not None and t(state, "interview").revisions and t(state, "visit").holds
    assert state.request_ids and state.audit and any(x.fired for x in state.tasks)

    unpacked = unpack_state(pack_state(state))
    assert unpacked == state
    assert unpacked.model_dump_json() == state.model_dump_json()
    for at in (london(2026, 4, 10, 11), london(2026, 4, 24, 10), london(2026, 6, 1, 9)):
        assert planner.plan(defn, unpacked, at) == planner.plan(defn, state, at)
        catch_up(defn, state, at)
        catch_up(defn, unpacked, at)
        assert unpacked.model_dump() == state.model_dump()
