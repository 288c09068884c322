"""Examples for the planner with exact instants (London wall-clock times, compared in UTC).

April 2026: Good Friday is Fri 3 Apr and Easter Monday Mon 6 Apr (bank holidays); British
Summer Time started on Sun 29 Mar, so London is UTC+1.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain import planner
from domain.planner import FireIndicator, StartTask, apply_action, plan
from models.case import CaseState, CaseTask, SlaStatus
from models.definition import CaseDefinition
from models.messages import AddTask, CloseCase, CompleteTask, ReassignTask
from tests.helpers.factories import (
    ALICE,
    BOB,
    H24,
    LEADERS,
    OFFICERS,
    catch_up,
    definition,
    follow_on,
    london,
    p,
    sla,
    step,
    task,
)

RAISED = london(2026, 4, 7, 10)  # Tue 7 Apr 2026 10:00 BST


def new_case(defn: CaseDefinition, at: datetime = RAISED, **kwargs: object) -> CaseState:
    owners = {t: OFFICERS for t in defn.task_definitions}
    return planner.new_case_state(
        defn,
        reference="HOC-1",
        created_by="alice",
        created_at=at,
        case_owner=ALICE,
        task_owners=owners,
        **kwargs,  # type: ignore[arg-type]
    )


def status(t: CaseTask) -> SlaStatus | None:
    """Read through a function so the type checker does not narrow across mutations."""
    return t.sla_status


def complete(defn: CaseDefinition, state: CaseState, key: str, at: datetime, rid: str) -> None:
    planner.complete_task(defn, state, CompleteTask(request_id=rid, actor="alice", task=key), at)


# --- starting tasks ---------------------------------------------------------------------------


def test_tasks_without_predecessors_start_at_case_start() -> None:
    defn = definition(
        [task("interview", sla(p(2, "days"))), task("plan", sla(p(1, "days")))],
        [step("interview"), step("plan", ["interview"])],
    )
    state = new_case(defn)
    assert [(t.key, t.status, t.starts_at) for t in state.tasks] == [
        ("interview", "lagging", RAISED),
        ("plan", "waiting", None),
    ]
    before = state.model_dump()
    result = plan(defn, state, RAISED)
    assert state.model_dump() == before  # plan never changes the state it is given
    assert result.actions == [StartTask("interview", RAISED)]
    assert not result.case_may_finish
    # After the start, the next instant is the interview's target (no amber configured).
    assert result.next_instant == london(2026, 4, 9, 17)


def test_plan_before_the_case_start_waits_for_it() -> None:
    defn = definition([task("a")], [step("a")])
    state = new_case(defn)
    result = plan(defn, state, RAISED - timedelta(seconds=1))
    assert result.actions == []
    assert result.next_instant == RAISED


def test_due_amber_and_follow_on_instants_on_a_working_calendar() -> None:
    follow = follow_on(p(1, "days"), repeat=2)
    defn = definition(
        [task("interview", sla(p(2, "days"), amber=p(1, "days"), follow=follow))],
        [step("interview")],
    )
    state = new_case(defn)
    catch_up(defn, state, RAISED)
    interview = state.tasks[0]
    assert interview.status == "open"
    assert interview.started_at == RAISED
    assert interview.due_at == london(2026, 4, 9, 17)  # close of the 2nd working day after
    assert interview.amber_at == london(2026, 4, 8, 17)  # 1 working day back from the due
    assert interview.next_follow_on_at == london(2026, 4, 10, 17)
    assert interview.sla_status == "on_track"

    assert plan(defn, state, RAISED).next_instant == london(2026, 4, 8, 17)
    assert catch_up(defn, state, london(2026, 4, 8, 17)) == [
        FireIndicator("interview", "amber", 1, london(2026, 4, 8, 17), "owner")
    ]
    assert status(interview) == "amber"

    assert catch_up(defn, state, london(2026, 4, 9, 17)) == [
        FireIndicator(
            "interview", "target_exceeded", 1, london(2026, 4, 9, 17), "owner_and_case_owner"
        )
    ]
    assert status(interview) == "breached"

    assert catch_up(defn, state, london(2026, 4, 10, 17)) == [
        FireIndicator("interview", "follow_on", 1, london(2026, 4, 10, 17), "leaders")
    ]
    assert status(interview) == "escalated"
    # The second follow-on is one working day later: over the weekend, Monday's close.
    assert interview.next_follow_on_at == london(2026, 4, 13, 17)
    assert catch_up(defn, state, london(2026, 4, 13, 17)) == [
        FireIndicator("interview", "follow_on", 2, london(2026, 4, 13, 17), "leaders")
    ]
    assert interview.next_follow_on_at is None  # the repeat limit is reached
    assert [(f.indicator, f.occurrence, f.due_at) for f in interview.fired] == [
        ("amber", 1, london(2026, 4, 8, 17)),
        ("target_exceeded", 1, london(2026, 4, 9, 17)),
        ("follow_on", 1, london(2026, 4, 10, 17)),
        ("follow_on", 2, london(2026, 4, 13, 17)),
    ]
    # Nothing more for the task: the next instant is the case SLA's amber (26 May 23:59:59).
    assert plan(defn, state, london(2026, 4, 13, 17)).next_instant == london(
        2026, 5, 26, 23, 59, 59
    )


def test_a_late_plan_includes_the_cascade_in_chronological_order() -> None:
    follow = follow_on(p(1, "days"), repeat=2)
    defn = definition(
        [task("interview", sla(p(2, "days"), amber=p(1, "days"), follow=follow))],
        [step("interview")],
    )
    state = new_case(defn)
    now = london(2026, 4, 14, 12)
    result = plan(defn, state, now)
    assert [(type(a).__name__, a.at) for a in result.actions] == [
        ("StartTask", RAISED),
        ("FireIndicator", london(2026, 4, 8, 17)),
        ("FireIndicator", london(2026, 4, 9, 17)),
        ("FireIndicator", london(2026, 4, 10, 17)),
        ("FireIndicator", london(2026, 4, 13, 17)),
    ]
    assert result.next_instant == london(2026, 5, 26, 23, 59, 59)
    # Applying the plan's actions gives the state the simulation reached.
    for action in result.actions:
        assert apply_action(defn, state, action, fired_at=now)
    assert state.tasks[0].fired[-1].fired_at == now
    assert state.tasks[0].fired[-1].due_at == london(2026, 4, 13, 17)
    assert plan(defn, state, now).actions == []


def test_bank_holidays_do_not_count_on_a_working_calendar() -> None:
    defn = definition([task("interview", sla(p(2, "days")))], [step("interview")])
    start = london(2026, 4, 2, 10)  # Thu 2 Apr; Fri 3 and Mon 6 are bank holidays
    state = new_case(defn, at=start)
    catch_up(defn, state, start)
    assert state.tasks[0].due_at == london(2026, 4, 8, 17)


def test_amber_counted_back_before_the_start_fires_at_the_start() -> None:
    defn = definition([task("callback", sla(p(0, "days"), amber=p(1, "days")))], [step("callback")])
    saturday = london(2026, 4, 11, 10)
    state = new_case(defn, at=saturday)
    actions = catch_up(defn, state, saturday)
    callback = state.tasks[0]
    assert callback.due_at == london(2026, 4, 13, 17)  # 0 days out of hours: next working day
    assert callback.amber_at == saturday  # Fri 10 Apr 17:00 moved up to the start
    assert actions == [
        StartTask("callback", saturday),
        FireIndicator("callback", "amber", 1, saturday, "owner"),
    ]


# --- predecessors and lags --------------------------------------------------------------------


def test_completion_releases_a_dependant_after_its_lag() -> None:
    defn = definition(
        [task("interview", sla(p(2, "days"))), task("plan", sla(p(4, "hours")))],
        [step("interview"), step("plan", ["interview"], lag=p(1, "days"))],
    )
    state = new_case(defn)
    catch_up(defn, state, RAISED)
    done = london(2026, 4, 9, 15)
    complete(defn, state, "interview", done, "r1")
    plan_task = state.tasks[1]
    assert plan_task.status == "lagging"
    assert plan_task.starts_at == london(2026, 4, 10, 9)  # opening of the next working day
    result = plan(defn, state, done)
    assert result.actions == []
    assert result.next_instant == london(2026, 4, 10, 9)
    assert catch_up(defn, state, london(2026, 4, 10, 9)) == [
        StartTask("plan", london(2026, 4, 10, 9))
    ]
    assert plan_task.due_at == london(2026, 4, 10, 13)


def test_a_lag_over_a_weekend_starts_on_monday() -> None:
    defn = definition(
        [task("a", sla(p(5, "days"))), task("b", sla(p(1, "days")))],
        [step("a"), step("b", ["a"], lag=p(1, "days"))],
    )
    state = new_case(defn)
    catch_up(defn, state, RAISED)
    complete(defn, state, "a", london(2026, 4, 10, 16), "r1")  # Friday
    assert state.tasks[1].starts_at == london(2026, 4, 13, 9)


def test_a_task_without_lag_starts_when_its_last_predecessor_completes() -> None:
    defn = definition(
        [task("a"), task("b"), task("c", sla(p(1, "days")))],
        [step("a"), step("b"), step("c", "all_earlier")],
    )
    state = new_case(defn)
    assert state.tasks[2].predecessors == ("a", "b")
    catch_up(defn, state, RAISED)
    complete(defn, state, "a", london(2026, 4, 7, 11), "r1")
    assert state.tasks[2].status == "waiting"  # b is still open
    assert catch_up(defn, state, london(2026, 4, 7, 11)) == []
    complete(defn, state, "b", london(2026, 4, 7, 12), "r2")
    assert state.tasks[2].starts_at == london(2026, 4, 7, 12)
    assert catch_up(defn, state, london(2026, 4, 7, 12)) == [StartTask("c", london(2026, 4, 7, 12))]
    assert state.tasks[2].due_at == london(2026, 4, 8, 17)


def test_a_task_without_sla_lags_on_the_case_calendar() -> None:
    defn = definition([task("a"), task("b")], [step("a"), step("b", ["a"], lag=p(2, "days"))])
    state = new_case(defn)
    catch_up(defn, state, RAISED)
    complete(defn, state, "a", london(2026, 4, 10, 16), "r1")  # Fri
    # The case SLA runs on the 24x7 calendar: 00:00 of the 2nd day after (Sunday).
    assert state.tasks[1].starts_at == london(2026, 4, 12, 0)
    catch_up(defn, state, london(2026, 4, 12))
    assert state.tasks[1].status == "open"
    assert state.tasks[1].due_at is None and state.tasks[1].sla_status is None


def test_a_first_task_with_a_lag_starts_after_the_lag_from_the_case_start() -> None:
    defn = definition([task("visit")], [step("visit", lag=p(3, "hours"))])
    state = new_case(defn)
    assert state.tasks[0].starts_at == RAISED + timedelta(hours=3)


# --- completion stops indicators ------------------------------------------------------------


def test_completing_a_task_stops_its_indicators_and_keeps_its_status() -> None:
    follow = follow_on(p(1, "days"), repeat=3)
    defn = definition(
        [
            task("a", sla(p(2, "days"), amber=p(1, "days"), follow=follow)),
            task("b", sla(p(1, "days"), amber=p(2, "hours"))),
        ],
        [step("a"), step("b")],
    )
    state = new_case(defn)
    catch_up(defn, state, london(2026, 4, 9, 17))  # a: amber and target; b: amber and target
    complete(defn, state, "a", london(2026, 4, 9, 18), "r1")
    a = state.tasks[0]
    assert a.status == "completed" and a.sla_status == "breached"
    assert a.completed_at == london(2026, 4, 9, 18) and a.completed_by == "alice"
    # a's follow-ons never fire; nothing is left but the case SLA.
    later = catch_up(defn, state, london(2026, 4, 20))
    assert all(getattr(x, "task", None) != "a" for x in later)
    assert [f.indicator for f in a.fired] == ["amber", "target_exceeded"]


def test_completion_before_the_amber_means_no_indicator() -> None:
    defn = definition([task("a", sla(p(2, "days"), amber=p(1, "days")))], [step("a")])
    state = new_case(defn)
    catch_up(defn, state, RAISED)
    complete(defn, state, "a", london(2026, 4, 8, 12), "r1")
    assert catch_up(defn, state, london(2026, 4, 20)) == []
    assert state.tasks[0].fired == () and state.tasks[0].sla_status == "on_track"


def test_apply_action_refuses_a_stale_action() -> None:
    defn = definition([task("a", sla(p(1, "days")))], [step("a")])
    state = new_case(defn)
    catch_up(defn, state, RAISED)
    target = plan(defn, state, london(2026, 4, 8, 17)).actions
    complete(defn, state, "a", london(2026, 4, 8, 16), "r1")
    assert not planner.action_is_current(state, target[0])
    assert not apply_action(defn, state, target[0])
    assert state.tasks[0].fired == ()


# --- the case SLA -----------------------------------------------------------------------------


def test_case_sla_runs_from_the_case_start() -> None:
    defn = definition([task("a")], [step("a")])
    state = new_case(defn)
    case_sla = state.case_sla
    assert case_sla is not None
    assert case_sla.started_at == RAISED
    assert case_sla.due_at == london(2026, 6, 2, 23, 59, 59)  # 56 days on 24x7
    assert case_sla.amber_at == london(2026, 5, 26, 23, 59, 59)
    catch_up(defn, state, RAISED)
    assert catch_up(defn, state, london(2026, 5, 26, 23, 59, 59)) == [
        FireIndicator(None, "amber", 1, london(2026, 5, 26, 23, 59, 59), "owner")
    ]
    assert case_sla.sla_status == "amber"
    assert planner.case_sla_status(state) == "amber"
    assert catch_up(defn, state, london(2026, 6, 3)) == [
        FireIndicator(
            None, "target_exceeded", 1, london(2026, 6, 2, 23, 59, 59), "owner_and_case_owner"
        )
    ]
    assert planner.case_sla_status(state) == "breached"
    assert plan(defn, state, london(2026, 6, 3)).next_instant is None


def test_case_sla_across_the_clock_change() -> None:
    defn = definition([task("a")], [step("a")], case_sla=sla(p(14, "days"), calendar=H24))
    state = new_case(defn, at=london(2026, 3, 20, 10))  # GMT
    assert state.case_sla is not None
    assert state.case_sla.due_at == datetime(2026, 4, 3, 22, 59, 59, tzinfo=UTC)  # BST


def test_simultaneous_events_tasks_in_path_order_then_the_case() -> None:
    same = sla(p(56, "days"), calendar=H24)
    defn = definition([task("b", same), task("a", same)], [step("b"), step("a")])
    state = new_case(defn)
    due = london(2026, 6, 2, 23, 59, 59)
    actions = catch_up(defn, state, due)
    assert [(a.task, type(a).__name__, a.at) for a in actions][-3:] == [
        ("b", "FireIndicator", due),
        ("a", "FireIndicator", due),
        (None, "FireIndicator", due),
    ]


def test_case_follow_on_with_reassign_changes_the_case_owner() -> None:
    case = sla(p(1, "days"), calendar=H24, follow=follow_on(p(1, "days"), reassign="leaders"))
    defn = definition([task("a")], [step("a")], case_sla=case)
    state = new_case(defn)
    actions = plan(defn, state, london(2026, 4, 10)).actions
    assert actions == [
        StartTask("a", RAISED),
        FireIndicator(
            None, "target_exceeded", 1, london(2026, 4, 8, 23, 59, 59), "owner_and_case_owner"
        ),
        FireIndicator(
            None, "follow_on", 1, london(2026, 4, 9, 23, 59, 59), "leaders", reassign_rule="leaders"
        ),
    ]
    for action in actions:
        apply_action(defn, state, action, new_owner=LEADERS)
    assert state.owner == LEADERS
    assert state.audit[-1].action == "case_reassigned"
    assert state.case_sla is not None and state.case_sla.sla_status == "escalated"


# --- follow-on actions ------------------------------------------------------------------------


def _follow_on_defn() -> CaseDefinition:
    follow = follow_on(p(2, "hours"), reassign="leaders", add_task="review")
    return definition(
        [
            task("a", sla(p(1, "days"), follow=follow)),
            task("review", sla(p(4, "hours"), amber=p(1, "hours"))),
        ],
        [step("a")],
        optional=["review"],
    )


def test_follow_on_reassigns_and_adds_a_task() -> None:
    defn = _follow_on_defn()
    state = new_case(defn)
    catch_up(defn, state, RAISED)
    a = state.tasks[0]
    assert a.due_at == london(2026, 4, 8, 17)
    # 2 working hours after Wednesday's close: Thursday 11:00.
    assert a.next_follow_on_at == london(2026, 4, 9, 11)
    at = london(2026, 4, 9, 11)
    actions = plan(defn, state, at).actions
    assert actions == [
        FireIndicator("a", "target_exceeded", 1, london(2026, 4, 8, 17), "owner_and_case_owner"),
        FireIndicator(
            "a", "follow_on", 1, at, "leaders", reassign_rule="leaders", add_task="review"
        ),
    ]
    apply_action(defn, state, actions[0])
    apply_action(
        defn, state, actions[1], recipients=["carol"], new_owner=LEADERS, added_task_owner=BOB
    )
    assert a.owner == LEADERS
    assert a.owner_history[-1].reason == "escalation" and a.owner_history[-1].by == "system"
    assert a.fired[-1].recipients == ["carol"]
    review = state.task("review")
    assert review is not None
    assert (review.origin, review.status, review.mandatory, review.predecessors) == (
        "follow_on",
        "open",
        False,
        (),
    )
    assert review.owner == BOB
    assert review.started_at == at
    assert review.due_at == london(2026, 4, 9, 15)
    assert review.amber_at == london(2026, 4, 9, 14)


def test_plan_simulates_the_added_task_and_its_indicators() -> None:
    defn = _follow_on_defn()
    state = new_case(defn)
    result = plan(defn, state, london(2026, 4, 9, 16))
    assert [(a.task, getattr(a, "indicator", "start")) for a in result.actions] == [
        ("a", "start"),
        ("a", "target_exceeded"),
        ("a", "follow_on"),
        ("review", "amber"),
        ("review", "target_exceeded"),
    ]
    assert state.task("review") is None  # the simulation ran on a copy
    assert not result.case_may_finish


def test_follow_on_add_of_a_task_already_on_the_case_is_noted() -> None:
    defn = _follow_on_defn()
    state = new_case(defn)
    catch_up(defn, state, RAISED)
    planner.add_task(
        defn,
        state,
        AddTask(request_id="r1", actor="alice", task="review"),
        london(2026, 4, 7, 11),
        ALICE,
    )
    catch_up(defn, state, london(2026, 4, 9, 11))
    assert [t.key for t in state.tasks] == ["a", "review"]
    assert state.audit[-1].action == "task_not_added"
    assert state.audit[-1].detail == "follow-on task already on the case"


# --- finishing and closing --------------------------------------------------------------------


def test_case_may_finish_when_mandatory_tasks_are_done_and_nothing_is_pending() -> None:
    defn = definition(
        [task("a"), task("b"), task("letter")],
        [step("a"), step("b", ["a"], mandatory=False), step("letter", ["a"], mandatory=False)],
    )
    state = new_case(defn)
    catch_up(defn, state, RAISED)
    assert not plan(defn, state, RAISED).case_may_finish
    complete(defn, state, "a", london(2026, 4, 7, 11), "r1")
    # b and letter are not mandatory but start now: the case is not finished yet.
    assert not plan(defn, state, london(2026, 4, 7, 11)).case_may_finish
    catch_up(defn, state, london(2026, 4, 7, 11))
    complete(defn, state, "b", london(2026, 4, 7, 12), "r2")
    complete(defn, state, "letter", london(2026, 4, 7, 12), "r3")
    result = plan(defn, state, london(2026, 4, 7, 12))
    assert result.case_may_finish
    planner.finish_case(state, london(2026, 4, 7, 12))
    assert state.status == "completed" and state.finished_at == london(2026, 4, 7, 12)
    after = plan(defn, state, london(2026, 7, 1))
    assert after.actions == [] and after.next_instant is None and not after.case_may_finish


def test_a_case_with_a_waiting_non_mandatory_task_is_not_finished() -> None:
    defn = definition(
        [task("a"), task("b")], [step("a", mandatory=False), step("b", ["a"], mandatory=False)]
    )
    state = new_case(defn)
    catch_up(defn, state, RAISED)
    assert not plan(defn, state, RAISED).case_may_finish


def test_close_case_cancels_unfinished_tasks_and_stops_everything() -> None:
    defn = definition(
        [task("a", sla(p(1, "days"))), task("b"), task("c")],
        [step("a"), step("b"), step("c", ["a"])],
    )
    state = new_case(defn)
    catch_up(defn, state, RAISED)
    complete(defn, state, "b", london(2026, 4, 7, 11), "r1")
    closed = london(2026, 4, 7, 12)
    req = CloseCase(request_id="r2", actor="alice", reason="applicant found own accommodation")
    planner.close_case(defn, state, req, closed)
    assert [(t.key, t.status) for t in state.tasks] == [
        ("a", "cancelled"),
        ("b", "completed"),
        ("c", "cancelled"),
    ]
    assert state.tasks[0].cancelled_at == closed
    assert (state.status, state.finished_at, state.closed_by, state.close_reason) == (
        "closed",
        closed,
        "alice",
        "applicant found own accommodation",
    )
    assert state.request_ids[-1] == "r2"
    assert state.audit[-1].action == "close_case" and state.audit[-1].outcome == "accepted"
    result = plan(defn, state, london(2026, 12, 1))
    assert result == planner.Plan(actions=[], case_may_finish=False, next_instant=None)


# --- message transitions ----------------------------------------------------------------------


def test_add_task_opens_it_now_with_its_sla() -> None:
    defn = definition(
        [task("a"), task("review", sla(p(3, "days"), amber=p(1, "days")))],
        [step("a")],
        optional=["review"],
    )
    state = new_case(defn)
    catch_up(defn, state, RAISED)
    now = london(2026, 4, 7, 15)
    req = AddTask(request_id="r1", actor="alice", task="review", reason="complex case")
    added = planner.add_task(defn, state, req, now, BOB)
    assert (added.origin, added.status, added.mandatory) == ("manual", "open", False)
    assert added.started_at == now
    assert added.due_at == london(2026, 4, 10, 17)
    assert added.amber_at == london(2026, 4, 9, 17)
    assert added.owner == BOB and added.owner_history[0].by == "alice"
    assert state.request_ids == ["r1"]
    entry = state.audit[-1]
    assert (entry.action, entry.outcome, entry.actor, entry.request_id, entry.task) == (
        "add_task",
        "accepted",
        "alice",
        "r1",
        "review",
    )
    view = planner.task_view(state, "review")
    assert (view.status, view.owner, view.due_at, view.sla_status) == (
        "open",
        BOB,
        london(2026, 4, 10, 17),
        "on_track",
    )
    assert plan(defn, state, now).next_instant == london(2026, 4, 9, 17)


def test_reassign_task_keeps_the_owner_history() -> None:
    defn = definition([task("a")], [step("a")])
    state = new_case(defn)
    now = london(2026, 4, 8, 9)
    req = ReassignTask(request_id="r1", actor="alice", task="a", to=BOB, reason="absence")
    planner.reassign_task(defn, state, req, now)
    a = state.tasks[0]
    assert a.owner == BOB
    assert [(c.owner, c.reason, c.by) for c in a.owner_history] == [
        (OFFICERS, "allocated", "system"),
        (BOB, "absence", "alice"),
    ]
    assert state.audit[-1].detail == "role:officers -> user:bob (absence)"


def test_case_sla_status_is_the_worst_of_open_tasks_and_the_case() -> None:
    defn = definition(
        [task("a", sla(p(1, "days"))), task("b", sla(p(5, "days"), amber=p(4, "days")))],
        [step("a"), step("b")],
    )
    state = new_case(defn)
    catch_up(defn, state, RAISED)
    assert planner.case_sla_status(state) == "on_track"
    catch_up(defn, state, london(2026, 4, 8, 17))  # b amber (Wed 17:00); a due Wed 17:00
    assert planner.case_sla_status(state) == "breached"
    complete(defn, state, "a", london(2026, 4, 8, 18), "r1")
    # A completed task keeps its status but no longer counts.
    assert state.tasks[0].sla_status == "breached"
    assert planner.case_sla_status(state) == "amber"


def test_new_case_state_with_extra_tasks() -> None:
    defn = definition(
        [task("a"), task("review", sla(p(1, "days")))], [step("a")], optional=["review"]
    )
    state = new_case(defn, extra_tasks=["review", "a", "nope"])
    assert [(t.key, t.origin, t.mandatory, t.status, t.starts_at) for t in state.tasks] == [
        ("a", "path", True, "lagging", RAISED),
        ("review", "manual", False, "lagging", RAISED),
    ]
    assert [e.detail for e in state.audit if e.action == "extra_task"] == [
        "extra task 'a' skipped: already on the case",
        "extra task 'nope' skipped: not a task definition",
    ]
    assert (state.topic, state.workflow_type, state.workflow_version, state.config_version) == (
        "topic",
        "wt",
        1,
        1,
    )
    assert state.owner == ALICE and state.created_by == "alice"


def test_task_view_of_a_task_not_on_the_case() -> None:
    defn = definition([task("a")], [step("a")])
    state = new_case(defn)
    with pytest.raises(ValueError, match="'zzz' is not on case HOC-1"):
        planner.task_view(state, "zzz")
