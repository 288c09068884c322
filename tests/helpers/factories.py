"""Hand-built case definitions for the pure-core tests: small, explicit, no files, no store.

The calendars list their closed dates explicitly (the England and Wales bank holidays of 2026
and 2027, docs/domain.md "Bank holidays"), so expected instants can be checked by hand against a
printed calendar.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, time
from typing import Any, Literal
from zoneinfo import ZoneInfo

from domain.planner import Action, apply_action, case_today, plan
from domain.staff import keys_to_look_up, pinned_facts
from models.case import CaseState, Owner
from models.config import (
    Absence,
    AllocationConfig,
    AllocationRuleConfig,
    EscalationRuleConfig,
    FollowOnConfig,
    Key,
    PathStepConfig,
    Permission,
    RoleConfig,
    SlaConfig,
    TaskDefinitionConfig,
    TopicConfig,
    UserConfig,
    WorkflowTypeConfig,
)
from models.definition import CalendarSnapshot, CaseDefinition
from models.directory import DirectoryFacts
from models.period import Period, Unit

LONDON = ZoneInfo("Europe/London")

# docs/domain.md, "Bank holidays".
BANK_HOLIDAYS_ENGLAND_WALES: tuple[date, ...] = (
    date(2026, 1, 1),
    date(2026, 4, 3),
    date(2026, 4, 6),
    date(2026, 5, 4),
    date(2026, 5, 25),
    date(2026, 8, 31),
    date(2026, 12, 25),
    date(2026, 12, 28),
    date(2027, 1, 1),
    date(2027, 3, 26),
    date(2027, 3, 29),
    date(2027, 5, 3),
    date(2027, 5, 31),
    date(2027, 8, 30),
    date(2027, 12, 27),
    date(2027, 12, 28),
)

H24 = "h24"
WORKING = "working"


def london(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    """A London wall-clock time as a UTC instant (what the core returns)."""
    return datetime(year, month, day, hour, minute, second, tzinfo=LONDON).astimezone(UTC)


def p(amount: int, unit: Unit) -> Period:
    return Period(unit=unit, amount=amount)


def calendar_24x7(key: Key = H24) -> CalendarSnapshot:
    return CalendarSnapshot(
        key=key,
        kind="24x7",
        time_zone="Europe/London",
        opening=time(0, 0),
        closing=time(23, 59, 59),
        working_weekdays=[0, 1, 2, 3, 4, 5, 6],
        closed_dates=[],
        first_year=2026,
        last_year=2027,
        minute_precision=True,
    )


def working_calendar(key: Key = WORKING) -> CalendarSnapshot:
    """Monday to Friday 09:00-17:00 London, without England and Wales bank holidays."""
    return CalendarSnapshot(
        key=key,
        kind="working_days",
        time_zone="Europe/London",
        opening=time(9, 0),
        closing=time(17, 0),
        working_weekdays=[0, 1, 2, 3, 4],
        closed_dates=list(BANK_HOLIDAYS_ENGLAND_WALES),
        first_year=2026,
        last_year=2027,
        minute_precision=True,
    )


def follow_on(
    period: Period,
    *,
    repeat: int = 1,
    escalation: Key | None = "leaders",
    reassign: Key | None = None,
    add_task: Key | None = None,
) -> FollowOnConfig:
    return FollowOnConfig(
        period=period,
        repeat_limit=repeat,
        escalation_rule=escalation,
        reassign_rule=reassign,
        add_task=add_task,
    )


def sla(
    target: Period,
    *,
    calendar: Key = WORKING,
    amber: Period | None = None,
    follow: FollowOnConfig | None = None,
    may_exceed_case_target: bool = False,
    statutory: bool = False,
    revisable: bool = False,
) -> SlaConfig:
    return SlaConfig(
        calendar=calendar,
        target=target,
        amber=amber,
        amber_escalation="owner" if amber is not None else None,
        target_exceeded_escalation="owner_and_case_owner",
        follow_on=follow,
        may_exceed_case_target=may_exceed_case_target,
        statutory=statutory,
        target_may_be_revised=revisable,
    )


def task(
    key: Key, sla_config: SlaConfig | None = None, name: str | None = None
) -> TaskDefinitionConfig:
    return TaskDefinitionConfig(
        key=key, name=name or key.replace("_", " ").capitalize(), sla=sla_config
    )


def step(
    task_key: Key,
    predecessors: Sequence[Key] | Literal["all_earlier"] = (),
    *,
    lag: Period | None = None,
    mandatory: bool = True,
) -> PathStepConfig:
    preds: list[Key] | Literal["all_earlier"] = (
        "all_earlier" if predecessors == "all_earlier" else list(predecessors)
    )
    return PathStepConfig(task=task_key, predecessors=preds, lag=lag, mandatory=mandatory)


def user(
    key: Key, *, disabled: bool = False, absent: tuple[date, date] | None = None
) -> UserConfig:
    absences = [Absence(first_day=absent[0], last_day=absent[1])] if absent else []
    return UserConfig(key=key, display_name=key.capitalize(), disabled=disabled, absences=absences)


def role(key: Key, members: Sequence[Key], permissions: Sequence[Permission] = ()) -> RoleConfig:
    return RoleConfig(
        key=key, name=key.capitalize(), members=list(members), permissions=list(permissions)
    )


# The staff every definition knows: two officers, a team leader with every permission, a
# disabled account and an officer on leave in the week after Easter 2026.
STAFF: tuple[UserConfig, ...] = (
    user("alice"),
    user("bob"),
    user("carol"),
    user("dave", disabled=True),
    user("erin", absent=(date(2026, 4, 7), date(2026, 4, 10))),
)
ROLES: tuple[RoleConfig, ...] = (
    role("officers", ["alice", "bob", "erin"]),
    role(
        "leaders",
        ["carol"],
        ["close_any_case", "reassign_any_task", "complete_any_task", "add_task_any_case"],
    ),
)

ALICE = Owner(kind="user", key="alice")
BOB = Owner(kind="user", key="bob")
CAROL = Owner(kind="user", key="carol")
OFFICERS = Owner(kind="role", key="officers")
LEADERS = Owner(kind="role", key="leaders")


def definition(
    task_definitions: Sequence[TaskDefinitionConfig],
    path: Sequence[PathStepConfig],
    *,
    optional: Sequence[Key] = (),
    case_sla: SlaConfig | None = None,
    calendars: Sequence[CalendarSnapshot] | None = None,
) -> CaseDefinition:
    """A pinned definition of workflow type "wt" (version 1) for topic "topic".

    The case SLA defaults to 56 days on the 24x7 calendar with a 7-day amber (a prevention
    duty).
    """
    case = case_sla or sla(p(56, "days"), calendar=H24, amber=p(7, "days"))
    wt = WorkflowTypeConfig(
        key="wt",
        name="Test workflow",
        version=1,
        path=list(path),
        optional_tasks=list(optional),
        case_sla=case,
        allocation=AllocationConfig(case_owner="creator", default_task="creator"),
    )
    cals = calendars if calendars is not None else (calendar_24x7(), working_calendar())
    return CaseDefinition(
        config_version=1,
        topic=TopicConfig(key="topic", name="Test topic", workflow_type="wt"),
        workflow_type=wt,
        task_definitions={t.key: t for t in task_definitions},
        calendars={c.key: c for c in cals},
        escalation_rules={
            "owner": EscalationRuleConfig(key="owner", name="Task owner", task_owner=True),
            "owner_and_case_owner": EscalationRuleConfig(
                key="owner_and_case_owner", name="Owners", task_owner=True, case_owner=True
            ),
            "leaders": EscalationRuleConfig(key="leaders", name="Team leaders", roles=["leaders"]),
        },
        allocation_rules={
            "creator": AllocationRuleConfig(
                key="creator", name="Case creator", kind="case_creator"
            ),
            "leaders": AllocationRuleConfig(
                key="leaders", name="Leaders", kind="role", role="leaders"
            ),
        },
        users={u.key: u for u in STAFF},
        roles={r.key: r for r in ROLES},
        rules_version=2,
    )


def catch_up(defn: CaseDefinition, state: CaseState, now: datetime) -> list[Action]:
    """What the workflow loop does at `now`: plan, then apply every due action in order."""
    due = plan(defn, state, now)
    for action in due.actions:
        assert apply_action(defn, state, action), action
    return due.actions


def with_pinned_staff(
    check: Callable[[CaseDefinition, CaseState, Any, datetime, DirectoryFacts | None], None],
) -> Callable[[CaseDefinition, CaseState, Any, datetime], None]:
    """A message's check given the directory facts of the definition's pinned staff (STAFF and
    ROLES) for the people the request names, as a case raised before the live directory
    decides; tests/test_permissions.py checks the same rules against live facts."""

    def checked(defn: CaseDefinition, state: CaseState, req: Any, now: datetime) -> None:
        facts = pinned_facts(defn, keys_to_look_up(req), case_today(defn, now))
        check(defn, state, req, now, facts)

    return checked
