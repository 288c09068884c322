"""The allocation tables: pure strategies and rule kinds, and how `allocate` consults them.

The behaviour of allocation end to end (against the store) is in tests/test_activities.py.
"""

from __future__ import annotations

from collections.abc import Sequence, Set
from datetime import UTC, date, datetime
from typing import Any, get_args

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from activities import allocation
from activities.allocation import (
    RULE_KINDS,
    STRATEGIES,
    Choice,
    Directory,
    Pick,
    RoleFacts,
    Strategy,
    least_open_work,
    round_robin,
)
from models.activities import AllocateInput, AllocationRequest
from models.case import Owner
from models.config import Absence, AllocationRuleConfig, Configuration, RoleConfig, UserConfig
from store.directory import load_directory
from store.repository import AllocationAnswer, save_configuration
from tests.helpers.store import seed_sample_staff

DAY = date(2026, 12, 22)
MEMBERS = ("a", "b", "c", "d")


def rule(**fields: Any) -> AllocationRuleConfig:
    return AllocationRuleConfig(key="r", name="R", **fields)


def _literal_names(field: str) -> set[str]:
    """The strings of the field's Literal (inside an Optional too)."""

    def names(annotation: Any) -> set[str]:
        if isinstance(annotation, str):
            return {annotation}
        return {n for arg in get_args(annotation) for n in names(arg)}

    return names(AllocationRuleConfig.model_fields[field].annotation)


def test_the_tables_cover_the_configuration_literals() -> None:
    assert set(STRATEGIES) == _literal_names("strategy") == {"least_open_work", "round_robin"}
    assert set(RULE_KINDS) == _literal_names("kind")


# ------------------------------------------------------------------ strategies


def test_least_open_work_picks_the_emptiest_available_first_key_on_ties() -> None:
    facts = RoleFacts(open_work={"b": 2, "c": 1, "d": 1})
    # "a" has no work but is not available.
    assert least_open_work(MEMBERS, {"b", "c", "d"}, facts) == Choice("c")
    assert least_open_work(MEMBERS, {"b", "d"}, facts) == Choice("d")
    # A member missing from the counts has none.
    assert least_open_work(MEMBERS, {"a", "b"}, RoleFacts(open_work={"b": 1})) == Choice("a")


def test_round_robin_starts_at_the_position_skips_the_unavailable_and_wraps() -> None:
    everyone = set(MEMBERS)
    assert round_robin(MEMBERS, everyone, RoleFacts(position=0)) == Choice("a", 1)
    assert round_robin(MEMBERS, everyone, RoleFacts(position=3)) == Choice("d", 4)
    assert round_robin(MEMBERS, everyone, RoleFacts(position=4)) == Choice("a", 1)
    assert round_robin(MEMBERS, {"a", "c"}, RoleFacts(position=1)) == Choice("c", 3)
    assert round_robin(MEMBERS, {"a"}, RoleFacts(position=2)) == Choice("a", 1)
    with pytest.raises(ValueError):
        round_robin(MEMBERS, set(), RoleFacts(position=0))


def test_strategies_declare_the_facts_they_read() -> None:
    assert STRATEGIES["least_open_work"].needs == {"open_work"}
    assert STRATEGIES["round_robin"].needs == {"position"}


# ------------------------------------------------------------------ rule kinds


def directory(on: date = DAY, raised_by: str = "a") -> Directory:
    users = {
        "a": UserConfig(key="a", display_name="A"),
        "b": UserConfig(
            key="b",
            display_name="B",
            absences=[Absence(first_day=date(2026, 12, 21), last_day=date(2027, 1, 8))],
        ),
        "c": UserConfig(key="c", display_name="C", disabled=True),
    }
    roles = {"team": RoleConfig(key="team", name="Team", members=["c", "b", "a", "a"])}
    return Directory(users=users, roles=roles, on=on, raised_by=raised_by)


def user(key: str) -> Owner:
    return Owner(kind="user", key=key)


def test_named_user_and_case_creator() -> None:
    d = directory()
    assert RULE_KINDS["named_user"](rule(kind="named_user", user="a"), d) == AllocationAnswer(
        user("a"), None
    )
    assert RULE_KINDS["named_user"](rule(kind="named_user", user="b"), d) == AllocationAnswer(
        None, "user b is absent on 2026-12-22"
    )
    assert RULE_KINDS["named_user"](rule(kind="named_user", user="c"), d) == AllocationAnswer(
        None, "user c is disabled"
    )
    assert RULE_KINDS["named_user"](rule(kind="named_user", user="z"), d) == AllocationAnswer(
        None, "user z is not in the staff directory"
    )
    creator = rule(kind="case_creator")
    assert RULE_KINDS["case_creator"](creator, d) == AllocationAnswer(user("a"), None)
    # The day is the one given: b is back after the leave.
    back = directory(on=date(2027, 1, 11), raised_by="b")
    assert RULE_KINDS["case_creator"](creator, back) == AllocationAnswer(user("b"), None)


def test_role_and_role_member() -> None:
    d = directory()
    assert RULE_KINDS["role"](rule(kind="role", role="team"), d) == AllocationAnswer(
        Owner(kind="role", key="team"), None
    )
    assert RULE_KINDS["role"](rule(kind="role", role="nope"), d) == AllocationAnswer(
        None, "role nope is not configured"
    )
    member = rule(kind="role_member", role="team", strategy="round_robin")
    # Members deduplicated, in key order; only the available ones may be chosen.
    assert RULE_KINDS["role_member"](member, d) == Pick(
        "team", "round_robin", ("a", "b", "c"), frozenset({"a"})
    )
    assert RULE_KINDS["role_member"](member, directory(on=date(2027, 1, 11))) == Pick(
        "team", "round_robin", ("a", "b", "c"), frozenset({"a", "b"})
    )
    unknown = rule(kind="role_member", role="nope", strategy="least_open_work")
    assert RULE_KINDS["role_member"](unknown, d) == AllocationAnswer(
        None, "role nope is not configured"
    )
    nobody = Directory(users={}, roles=d.roles, on=DAY, raised_by="a")
    assert RULE_KINDS["role_member"](member, nobody) == AllocationAnswer(
        None, "no member of role team is available on 2026-12-22"
    )


# ------------------------------------------------------------------ allocate and the table


def test_allocate_gathers_only_the_facts_a_strategy_declares(
    engine: Engine,
    sample_config: Configuration,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[tuple[Sequence[str], Set[str], RoleFacts]] = []

    def record(name: str) -> Strategy:
        real = STRATEGIES[name]

        def choose(members: Sequence[str], available: Set[str], facts: RoleFacts) -> Choice:
            seen.append((members, available, facts))
            return real.choose(members, available, facts)

        return Strategy(real.needs, choose)

    monkeypatch.setitem(STRATEGIES, "least_open_work", record("least_open_work"))
    monkeypatch.setitem(STRATEGIES, "round_robin", record("round_robin"))
    request = AllocateInput(
        case_reference="HO-1",
        raised_by="adviser1",
        on=DAY,  # adviser2 is on leave, adviser5 is disabled
        requests=[
            AllocationRequest(
                target="case",
                rule=rule(kind="role_member", role="housing-advisers", strategy="round_robin"),
            ),
            AllocationRequest(
                target="t1",
                rule=AllocationRuleConfig(
                    key="lw",
                    name="LW",
                    kind="role_member",
                    role="housing-advisers",
                    strategy="least_open_work",
                ),
            ),
        ],
    )
    now = datetime(2026, 12, 22, 10, 0, tzinfo=UTC)
    save_configuration(engine, sample_config, "sample")
    seed_sample_staff(engine)
    directory = load_directory(engine)
    users, roles = directory.users(), directory.roles(sample_config.roles, DAY)
    with Session(engine) as session, session.begin():
        result = allocation.allocate(session, users, roles, request, now)
    assert result.owners == {"case": user("adviser1"), "t1": user("adviser1")}
    (rr_members, rr_available, rr_facts), (_, lw_available, lw_facts) = seen
    assert list(rr_members) == ["adviser1", "adviser2", "adviser3", "adviser4", "adviser5"]
    assert rr_available == lw_available == {"adviser1", "adviser3", "adviser4"}
    assert rr_facts == RoleFacts(open_work=None, position=0)
    assert lw_facts == RoleFacts(
        open_work={"adviser1": 0, "adviser3": 0, "adviser4": 0}, position=None
    )
