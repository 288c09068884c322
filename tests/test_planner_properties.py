"""Properties of the planner on random small definitions and random case histories.

Each example builds a random path (a DAG of up to six tasks with random predecessors, lags,
SLAs, ambers and follow-ons on a 24x7 or a working calendar), raises a case at a random
instant, and drives it like the workflow does: at each instant it plans, applies the due
actions, then handles the messages of that instant (complete a random open task, add the
optional task, close the case) and finishes the case when the plan says it may. The reference
run plans only at the message instants and at the end; the test run also plans at random
intermediate instants. Both must reach the same state through the same actions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from hypothesis import given, settings
from hypothesis import strategies as st

from domain import planner
from domain.calendars import sla_calendar
from domain.planner import Action, FireIndicator, StartTask
from models.case import CaseSla, CaseState, CaseTask, pack_state, unpack_state
from models.config import FollowOnConfig, Key, PathStepConfig, SlaConfig, TaskDefinitionConfig
from models.definition import CaseDefinition
from models.messages import AddTask, CloseCase, CompleteTask
from models.period import Period, Unit
from tests.helpers.factories import ALICE, H24, OFFICERS, WORKING, definition

OPTIONAL = "extra"
# A Monday; ambers count back, so leave room before the calendars' first year (2026).
EPOCH = datetime(2026, 2, 2, 9, 0, tzinfo=UTC)
STEP = timedelta(minutes=30)  # messages and plan points fall on a half-hour grid

# --- strategies -------------------------------------------------------------------------------


def periods(units: list[Unit], max_amount: int) -> st.SearchStrategy[Period]:
    return st.builds(
        Period, unit=st.sampled_from(units), amount=st.integers(min_value=0, max_value=max_amount)
    )


@st.composite
def slas(draw: st.DrawFn, task_keys: list[Key]) -> SlaConfig:
    target = draw(periods(["minutes", "hours", "days", "weeks"], 5))
    if target.unit == "minutes":
        target = Period(unit="minutes", amount=target.amount * 45)
    amber = draw(st.none() | periods(["hours", "days"], 2))
    follow = None
    if draw(st.booleans()):
        follow = FollowOnConfig(
            period=draw(periods(["hours", "days"], 3)),
            repeat_limit=draw(st.integers(min_value=1, max_value=3)),
            escalation_rule="leaders",
            reassign_rule=draw(st.sampled_from([None, "leaders"])),
            add_task=draw(st.sampled_from([None, None, OPTIONAL, *task_keys])),
        )
    return SlaConfig(
        calendar=draw(st.sampled_from([H24, WORKING])),
        target=target,
        amber=amber,
        amber_escalation="owner" if amber is not None else None,
        target_exceeded_escalation="owner",
        follow_on=follow,
    )


@st.composite
def definitions(draw: st.DrawFn) -> CaseDefinition:
    n = draw(st.integers(min_value=1, max_value=6))
    keys = [f"t{i}" for i in range(n)]
    task_defs = [
        TaskDefinitionConfig(key=k, name=k, sla=draw(st.none() | slas(keys))) for k in keys
    ]
    task_defs.append(TaskDefinitionConfig(key=OPTIONAL, name="Extra", sla=draw(slas([]))))
    path: list[PathStepConfig] = []
    for i, key in enumerate(keys):
        preds: list[Key] | Literal["all_earlier"]
        if i > 0 and draw(st.integers(0, 4)) == 0:
            preds = "all_earlier"
        else:
            preds = sorted(draw(st.sets(st.sampled_from(keys[:i]))) if i else set())
        path.append(
            PathStepConfig(
                task=key,
                predecessors=preds,
                lag=draw(st.none() | periods(["minutes", "hours", "days"], 3)),
                mandatory=draw(st.booleans()),
            )
        )
    case_sla = SlaConfig(
        calendar=draw(st.sampled_from([H24, WORKING])),
        target=Period(unit="days", amount=draw(st.integers(5, 40))),
        amber=draw(st.none() | periods(["days"], 5)),
        amber_escalation="owner",
        target_exceeded_escalation="owner",
        follow_on=draw(
            st.none()
            | st.builds(
                FollowOnConfig,
                period=periods(["days"], 7),
                repeat_limit=st.integers(1, 3),
                escalation_rule=st.just("leaders"),
                add_task=st.sampled_from([None, OPTIONAL]),
            )
        ),
    )
    return definition(task_defs, path, optional=[OPTIONAL], case_sla=case_sla)


MessageKind = Literal["complete", "add", "close"]
Message = tuple[int, MessageKind, int]  # (grid step, kind, choice)


@dataclass
class Scenario:
    defn: CaseDefinition
    start: datetime
    end: datetime
    messages: list[Message]
    extra_points: list[int]  # grid steps at which the test run also plans


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    defn = draw(definitions())
    start = EPOCH + STEP * draw(st.integers(0, 270 * 48))
    horizon = draw(st.integers(1, 100 * 48))
    kinds: list[MessageKind] = ["complete", "complete", "complete", "complete", "add", "close"]
    kind = st.sampled_from(kinds)
    messages = draw(
        st.lists(st.tuples(st.integers(0, horizon), kind, st.integers(0, 10)), max_size=12)
    )
    extra = draw(st.lists(st.integers(0, horizon), max_size=10))
    return Scenario(defn, start, start + STEP * horizon, messages, extra)


# --- the driver -------------------------------------------------------------------------------


@dataclass
class Run:
    state: CaseState
    log: list[Action] = field(default_factory=list)
    plans: int = 0


def _catch_up(defn: CaseDefinition, run: Run, now: datetime) -> None:
    """Plan at `now` and apply everything due, checking the plan's own promises."""
    before = run.state.model_dump()
    result = planner.plan(defn, run.state, now)
    assert run.state.model_dump() == before, "plan changed the state it was given"
    run.plans += 1
    instants = [a.at for a in result.actions]
    assert instants == sorted(instants), "actions out of chronological order"
    assert all(at <= now for at in instants), "an action planned before its instant"
    for action in result.actions:
        assert planner.apply_action(defn, run.state, action, recipients=["carol"], fired_at=now)
    run.log.extend(result.actions)
    # Nothing was left behind: planning again at the same instant finds nothing due.
    again = planner.plan(defn, run.state, now)
    assert again.actions == []
    assert again.next_instant == result.next_instant
    nxt = result.next_instant
    if nxt is not None:
        assert nxt > now, "next_instant in the past"
        # next_instant is not later than the earliest pending instant: nothing is due before
        # it, and something is due at it.
        assert planner.plan(defn, run.state, now + (nxt - now) / 2).actions == []
        assert planner.plan(defn, run.state, nxt).actions != []


def _deliver(
    defn: CaseDefinition, state: CaseState, message: Message, now: datetime, n: int
) -> None:
    _, kind, choice = message
    if state.status != "open":
        return
    rid = f"m{n}"
    if kind == "complete":
        open_tasks = [t for t in state.tasks if t.status == "open"]
        if open_tasks:
            key = open_tasks[choice % len(open_tasks)].key
            planner.complete_task(
                defn, state, CompleteTask(request_id=rid, actor="alice", task=key), now
            )
    elif kind == "add":
        if state.task(OPTIONAL) is None:
            req = AddTask(request_id=rid, actor="alice", task=OPTIONAL)
            planner.add_task(defn, state, req, now, ALICE)
    else:
        planner.close_case(defn, state, CloseCase(request_id=rid, actor="alice", reason="x"), now)


def drive(sc: Scenario, extra_points: list[int], *, packed: bool = False) -> Run:
    """Drive the case over the scenario; `packed`: pack and unpack its state before each
    instant, as the workflow does while it waits between them."""
    state = planner.new_case_state(
        sc.defn,
        reference="HOC-P",
        created_by="alice",
        created_at=sc.start,
        case_owner=ALICE,
        task_owners={k: OFFICERS for k in sc.defn.task_definitions},
    )
    run = Run(state)
    by_step: dict[int, list[tuple[int, Message]]] = {}
    for n, message in enumerate(sc.messages):
        by_step.setdefault(message[0], []).append((n, message))
    horizon = round((sc.end - sc.start) / STEP)
    for step in sorted({*by_step, *extra_points, horizon}):
        now = sc.start + STEP * step
        if packed:
            unpacked = unpack_state(pack_state(state))
            assert unpacked == state and unpacked.model_dump_json() == state.model_dump_json()
            state = run.state = unpacked
        _catch_up(sc.defn, run, now)
        for n, message in by_step.get(step, []):
            _deliver(sc.defn, state, message, now, n)
            # The workflow loop: replan after a message, finish when the plan says so.
            _catch_up(sc.defn, run, now)
            if planner.plan(sc.defn, state, now).case_may_finish:
                planner.finish_case(state, now)
    return run


# --- expectations computed independently of the planner -------------------------------------


def _expected_indicators(
    defn: CaseDefinition, holder: CaseTask | CaseSla, sla: SlaConfig, stop: datetime
) -> list[tuple[str, int, datetime]]:
    """Every occurrence that must have fired for a clock started at `holder.started_at` and
    stopped at `stop` (an instant equal to `stop` fires: the workflow catches up first)."""
    start = holder.started_at
    assert start is not None
    calendar = sla_calendar(defn.calendars[sla.calendar])
    due = calendar.due(start, sla.target)
    expected: list[tuple[str, int, datetime]] = []
    if sla.amber is not None:
        amber = max(calendar.amber(due, sla.amber), start)
        if amber <= stop:
            expected.append(("amber", 1, amber))
    if due <= stop:
        expected.append(("target_exceeded", 1, due))
    if sla.follow_on is not None:
        at = due
        for k in range(1, sla.follow_on.repeat_limit + 1):
            at = calendar.follow_on(at, sla.follow_on.period)
            if at > stop:
                break
            expected.append(("follow_on", k, at))
    return expected


def _check_final_state(sc: Scenario, state: CaseState) -> None:
    defn = sc.defn
    by_key = {t.key: t for t in state.tasks}
    for t in state.tasks:
        stop = t.completed_at or t.cancelled_at or sc.end
        if t.started_at is None:
            assert t.status in ("waiting", "lagging", "cancelled") and t.fired == ()
        else:
            assert t.status in ("open", "completed", "cancelled")
        # Starts: only after every predecessor completed and the lag elapsed.
        if t.predecessors:
            preds = [by_key.get(k) for k in t.predecessors]
            all_done = all(p is not None and p.completed_at is not None for p in preds)
            if t.started_at is not None or t.status == "lagging":
                assert all_done
            if all_done:
                anchor = max(p.completed_at for p in preds if p is not None and p.completed_at)
                expected_start = anchor
                if t.lag is not None and t.lag.amount:
                    expected_start = planner.task_calendar(defn, t.key).lag_start(anchor, t.lag)
                assert expected_start >= anchor
                if t.started_at is not None:
                    assert t.started_at == expected_start
                elif t.status != "cancelled":
                    # Not started yet: only because its start instant has not come.
                    assert t.status == "lagging" and expected_start > sc.end
        elif t.origin == "path" and t.status != "cancelled":
            assert t.started_at is not None or (t.starts_at is not None and t.starts_at > sc.end)
        # Indicators: each occurrence exactly once, none for a task already finished.
        sla = planner.task_sla(defn, t.key)
        fired = [(f.indicator, f.occurrence, f.due_at) for f in t.fired]
        if sla is None or t.started_at is None:
            assert fired == []
        else:
            assert fired == _expected_indicators(defn, t, sla, stop)
        for f in t.fired:
            assert f.fired_at >= f.due_at  # nothing fires before its instant
    case_sla = state.case_sla
    assert case_sla is not None
    stop = state.finished_at or sc.end
    fired = [(f.indicator, f.occurrence, f.due_at) for f in case_sla.fired]
    assert fired == _expected_indicators(defn, case_sla, defn.workflow_type.case_sla, stop)


def _without_fired_at(state: CaseState) -> dict[str, Any]:
    """The state minus `fired_at` (when the case acted, which depends on when it planned)."""
    dump = state.model_dump()
    for holder in [*dump["tasks"], dump["case_sla"]]:
        for fired in holder["fired"]:
            del fired["fired_at"]
    return dump


# --- the properties ---------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_replanning_anywhere_gives_the_same_case(sc: Scenario) -> None:
    reference = drive(sc, extra_points=[])
    replanned = drive(sc, extra_points=sc.extra_points)
    assert replanned.log == reference.log
    assert _without_fired_at(replanned.state) == _without_fired_at(reference.state)
    _check_final_state(sc, reference.state)
    _check_final_state(sc, replanned.state)
    # The action log matches the indicators recorded: none lost, none doubled.
    fires = [a for a in reference.log if isinstance(a, FireIndicator)]
    recorded = sum(len(t.fired) for t in reference.state.tasks)
    assert reference.state.case_sla is not None
    assert len(fires) == recorded + len(reference.state.case_sla.fired)
    starts = [a.task for a in reference.log if isinstance(a, StartTask)]
    assert len(starts) == len(set(starts))


@settings(max_examples=100, deadline=None)
@given(scenarios())
def test_a_state_packed_while_the_case_waits_gives_the_same_case(sc: Scenario) -> None:
    # The workflow packs a waiting case's state (memory per cached case) and unpacks it when
    # the case wakes: the copy must plan, act and change exactly as the state it came from.
    live = drive(sc, extra_points=sc.extra_points)
    packed = drive(sc, extra_points=sc.extra_points, packed=True)
    assert packed.log == live.log
    assert packed.state.model_dump() == live.state.model_dump()
    assert len(pack_state(live.state)) < len(live.state.model_dump_json())


@settings(max_examples=100, deadline=None)
@given(scenarios())
def test_planning_once_at_the_end_without_messages(sc: Scenario) -> None:
    quiet = Scenario(sc.defn, sc.start, sc.end, [], sc.extra_points)
    once = drive(quiet, extra_points=[])
    often = drive(quiet, extra_points=sc.extra_points)
    assert once.log == often.log
    assert _without_fired_at(once.state) == _without_fired_at(often.state)
    _check_final_state(quiet, once.state)
