"""How long one `plan()` call takes: the workflow plans on every wake-up (timer or message),
inside the workflow task, so it must stay far below a millisecond for ordinary cases.

Run from the repository root: `.venv/bin/python -m bench.bench_planner` (or `main()` from
another script). Prints the median and 99th percentile per call for 10-, 50- and 200-task
cases, in two situations:

- steady state: every task open or waiting with indicators pending, nothing due now (the
  common case: a message arrived, or a timer for another case's instant);
- due: one amber indicator is due now, so the planner copies what it changes and simulates.

A script, not a test: timings depend on the machine and do not belong in assertions.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from zoneinfo import ZoneInfo

from domain import planner
from domain.case_definition import resolve_calendar
from models.case import CaseState, Owner
from models.config import (
    AllocationConfig,
    AllocationRuleConfig,
    CalendarConfig,
    EscalationRuleConfig,
    FollowOnConfig,
    PathStepConfig,
    RoleConfig,
    SlaConfig,
    TaskDefinitionConfig,
    TopicConfig,
    UserConfig,
    WorkflowTypeConfig,
)
from models.definition import CaseDefinition
from models.messages import CompleteTask
from models.period import Period

RAISED = datetime(2026, 3, 2, 10, tzinfo=ZoneInfo("Europe/London")).astimezone(UTC)  # a Monday
SIZES = (10, 50, 200)
CALLS = 3000
ALICE = Owner(kind="user", key="alice")
OFFICERS = Owner(kind="role", key="officers")


def _days(n: int) -> Period:
    return Period(unit="days", amount=n)


def _definition(tasks: list[TaskDefinitionConfig], path: list[PathStepConfig]) -> CaseDefinition:
    """A pinned definition of its own (the benchmark does not import test code): tasks on a
    Monday-to-Friday 09:00-17:00 London calendar without England and Wales bank holidays, a
    56-day case target on a 24x7 calendar, officers who own the tasks and team leaders who are
    alerted by the follow-ons."""
    calendars = [
        CalendarConfig(key="h24", name="24x7", kind="24x7", nation=None),
        CalendarConfig(key="working", name="Working days", kind="working_days"),
    ]
    case_sla = SlaConfig(
        calendar="h24",
        target=_days(56),
        amber=_days(7),
        amber_escalation="owner",
        target_exceeded_escalation="owner_and_case_owner",
    )
    wt = WorkflowTypeConfig(
        key="wt",
        name="Benchmark workflow",
        version=1,
        path=path,
        case_sla=case_sla,
        allocation=AllocationConfig(case_owner="creator", default_task="creator"),
    )
    rules = [
        EscalationRuleConfig(key="owner", name="Task owner", task_owner=True),
        EscalationRuleConfig(
            key="owner_and_case_owner", name="Owners", task_owner=True, case_owner=True
        ),
        EscalationRuleConfig(key="leaders", name="Team leaders", roles=["leaders"]),
    ]
    roles = [
        RoleConfig(key="officers", name="Officers", members=["alice", "bob"]),
        RoleConfig(key="leaders", name="Leaders", members=["carol"]),
    ]
    return CaseDefinition(
        config_version=1,
        topic=TopicConfig(key="topic", name="Benchmark topic", workflow_type="wt"),
        workflow_type=wt,
        task_definitions={t.key: t for t in tasks},
        calendars={c.key: resolve_calendar(c, 2026, 2027) for c in calendars},
        escalation_rules={r.key: r for r in rules},
        allocation_rules={
            "creator": AllocationRuleConfig(key="creator", name="Creator", kind="case_creator")
        },
        users={
            k: UserConfig(key=k, display_name=k.capitalize()) for k in ("alice", "bob", "carol")
        },
        roles={r.key: r for r in roles},
    )


def _catch_up(defn: CaseDefinition, state: CaseState, now: datetime) -> None:
    """What the workflow loop does at `now`: plan, then apply every due action in order."""
    for action in planner.plan(defn, state, now).actions:
        if not planner.apply_action(defn, state, action):
            raise RuntimeError(f"action not applied: {action}")


def build_case(n: int) -> tuple[CaseDefinition, CaseState]:
    """A case of `n` tasks: a quarter start at once, each of the rest waits for the task a
    quarter before it (so most are waiting, a few open); targets of 5 to 19 working days with a
    2-day amber and two follow-ons. Started, a fifth of the open tasks completed."""
    keys = [f"task_{i:03d}" for i in range(n)]
    first = max(1, n // 4)
    escalate = FollowOnConfig(period=_days(1), repeat_limit=2, escalation_rule="leaders")
    tasks = [
        TaskDefinitionConfig(
            key=k,
            name=k.replace("_", " ").capitalize(),
            sla=SlaConfig(
                calendar="working",
                target=_days(5 + i % 15),
                amber=_days(2),
                amber_escalation="owner",
                target_exceeded_escalation="owner_and_case_owner",
                follow_on=escalate,
            ),
        )
        for i, k in enumerate(keys)
    ]
    path = [
        PathStepConfig(
            task=k, predecessors=[] if i < first else [keys[i - first]], mandatory=i % 3 != 0
        )
        for i, k in enumerate(keys)
    ]
    defn = _definition(tasks, path)
    state = planner.new_case_state(
        defn,
        reference="BENCH-1",
        created_by="alice",
        created_at=RAISED,
        case_owner=ALICE,
        task_owners={k: OFFICERS for k in keys},
    )
    _catch_up(defn, state, RAISED)
    for i in range(0, first, 5):
        planner.complete_task(
            defn,
            state,
            CompleteTask(request_id=f"r{i}", actor="alice", task=keys[i]),
            RAISED + timedelta(hours=1),
        )
    _catch_up(defn, state, RAISED + timedelta(hours=1))
    return defn, state


def measure(call: Callable[[], object], calls: int = CALLS) -> tuple[float, float]:
    """Median and 99th percentile of one call, in microseconds."""
    for _ in range(100):  # warm the calendar cache and the interpreter
        call()
    samples = []
    for _ in range(calls):
        t0 = time.perf_counter_ns()
        call()
        samples.append(time.perf_counter_ns() - t0)
    samples.sort()
    return statistics.median(samples) / 1000, samples[int(len(samples) * 0.99)] / 1000


def main() -> None:
    print(f"plan() per call, {CALLS} calls each (microseconds)")
    print(f"{'tasks':>6} {'situation':<14} {'actions':>7} {'median':>9} {'p99':>9}")
    for n in SIZES:
        defn, state = build_case(n)
        steady_now = RAISED + timedelta(hours=2)
        steady = planner.plan(defn, state, steady_now)
        assert steady.actions == [] and steady.next_instant is not None
        due_now = steady.next_instant  # the earliest amber: due at exactly this instant
        due = planner.plan(defn, state, due_now)
        assert due.actions
        for label, now, actions in (
            ("steady state", steady_now, 0),
            ("due action", due_now, len(due.actions)),
        ):
            median, p99 = measure(partial(planner.plan, defn, state, now))
            print(f"{n:>6} {label:<14} {actions:>7} {median:>9.1f} {p99:>9.1f}")


if __name__ == "__main__":
    main()
