"""The permission table (domain.permissions): who may send each message, unit and property
tests; its validation on load; and the checks against live directory facts (a new starter,
a leaver, an absence) rather than the pinned staff."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from config_files import load_configuration
from domain import case_rules, permissions, planner
from domain.config_validation import validate_configuration
from domain.errors import RequestRefused
from domain.messages import MESSAGE_NAMES
from domain.permissions import (
    DEFAULT_GRANTS,
    LEGACY_PERMISSIONS,
    check_permitted,
    grant_applies,
    grants_for,
    legacy_table,
    may_send,
    permission_table,
)
from domain.staff import keys_to_look_up, pinned_facts
from models.case import CaseState, Owner
from models.config import Absence, Permission, PermissionConfig, RoleConfig
from models.definition import CaseDefinition
from models.directory import DirectoryFacts, StaffFacts
from models.messages import CloseCase, CompleteTask, ReassignTask
from tests.helpers.factories import ALICE, BOB, OFFICERS, catch_up, definition, london, p, sla
from tests.helpers.factories import step as path_step
from tests.helpers.factories import task as task_def

REPO = Path(__file__).resolve().parent.parent
ERRORS = REPO / "tests" / "config_errors"
DAY = date(2026, 4, 8)
NOW = london(2026, 4, 8, 10)

USERS = ("alice", "bob", "carol", "zoe")
ROLE_KEYS = ("officers", "leaders", "managers")
owners = st.builds(
    Owner,
    kind=st.sampled_from(["user", "role"]),
    key=st.sampled_from(USERS + ROLE_KEYS),
)
actors = st.builds(
    StaffFacts,
    key=st.sampled_from(USERS),
    roles=st.lists(st.sampled_from(ROLE_KEYS), unique=True).map(sorted),
)
grant = st.sampled_from(
    ["case_owner", "task_owner", "owning_role_member", *(f"role:{r}" for r in ROLE_KEYS)]
)
grant_lists = st.lists(grant, unique=True, max_size=6)


def staff(key: str, *roles: str, disabled: bool = False, absent: bool = False) -> StaffFacts:
    absence = Absence(first_day=DAY, last_day=DAY, reason="sickness") if absent else None
    return StaffFacts(key=key, disabled=disabled, roles=sorted(roles), absence=absence)


def live(*people: StaffFacts) -> DirectoryFacts:
    return DirectoryFacts(on=DAY, staff={s.key: s for s in people})


# ------------------------------------------------------------------ the grants


def test_each_grant_kind() -> None:
    carol = staff("carol", "leaders")
    bob = staff("bob", "officers")
    kw = {"has_task": True}
    assert grant_applies("case_owner", staff("alice"), case_owner=ALICE, task_owner=BOB, **kw)
    assert grant_applies("case_owner", bob, case_owner=OFFICERS, task_owner=None, **kw)
    assert not grant_applies("case_owner", bob, case_owner=ALICE, task_owner=BOB, **kw)
    assert grant_applies("task_owner", bob, case_owner=ALICE, task_owner=BOB, **kw)
    assert not grant_applies("task_owner", bob, case_owner=ALICE, task_owner=OFFICERS, **kw)
    assert grant_applies("owning_role_member", bob, case_owner=ALICE, task_owner=OFFICERS, **kw)
    assert not grant_applies(
        "owning_role_member", carol, case_owner=ALICE, task_owner=OFFICERS, **kw
    )
    assert grant_applies("role:leaders", carol, case_owner=ALICE, task_owner=None, has_task=False)
    assert not grant_applies("role:leaders", bob, case_owner=ALICE, task_owner=None, has_task=False)
    # A message about the case itself has no task: task grants give nothing.
    assert not grant_applies("task_owner", bob, case_owner=ALICE, task_owner=BOB, has_task=False)


def test_a_message_without_a_row_gets_the_default() -> None:
    assert grants_for({}, "hold_task") == DEFAULT_GRANTS
    assert grants_for({"hold_task": ("role:leaders",)}, "hold_task") == ("role:leaders",)
    assert DEFAULT_GRANTS == ("case_owner", "task_owner", "owning_role_member")


@given(grants=grant_lists, extra=grant, actor=actors, case_owner=owners, task_owner=owners)
def test_adding_a_grant_never_takes_a_permission_away(
    grants: list[str], extra: str, actor: StaffFacts, case_owner: Owner, task_owner: Owner
) -> None:
    before = may_send(grants, actor, case_owner=case_owner, task_owner=task_owner, has_task=True)
    after = may_send(
        [*grants, extra], actor, case_owner=case_owner, task_owner=task_owner, has_task=True
    )
    assert after or not before


@given(actor=actors, case_owner=owners, task_owner=owners, has_task=st.booleans())
def test_no_grants_means_nobody(
    actor: StaffFacts, case_owner: Owner, task_owner: Owner, has_task: bool
) -> None:
    assert not may_send([], actor, case_owner=case_owner, task_owner=task_owner, has_task=has_task)


@given(grants=grant_lists, actor=actors, case_owner=owners, task_owner=owners)
def test_a_stranger_may_act_only_through_a_role_grant(
    grants: list[str], actor: StaffFacts, case_owner: Owner, task_owner: Owner
) -> None:
    """Someone who owns nothing here, by user or by role, may act exactly when a `role:` grant
    names one of their roles."""
    owns = {case_owner, task_owner}
    if Owner(kind="user", key=actor.key) in owns or any(
        o.kind == "role" and o.key in actor.roles for o in owns
    ):
        return
    allowed = may_send(grants, actor, case_owner=case_owner, task_owner=task_owner, has_task=True)
    assert allowed == any(g.startswith("role:") and g[5:] in actor.roles for g in grants)


# The rules as they were before the permission table (the pinned-directory checks), as the
# oracle for the legacy table: a case pinned then must decide exactly as it did.
_OLD_OWNERS = {
    "add_task": ("case",),
    "reassign_task": ("case", "task"),
    "complete_task": ("task", "case"),
    "close_case": ("case",),
    "hold_task": ("task", "case"),
    "release_task": ("task", "case"),
    "hold_case": ("case",),
    "release_case": ("case",),
    "cancel_task": ("task", "case"),
    "revise_target": ("task", "case"),
}


def _old_rule(
    message: str, actor: StaffFacts, roles: dict[str, RoleConfig], case_owner: Owner, task: Owner
) -> bool:
    def acts_as(owner: Owner) -> bool:
        if owner.kind == "user":
            return owner.key == actor.key
        return owner.key in roles and owner.key in actor.roles

    permission = next(k for k, v in LEGACY_PERMISSIONS.items() if message in v)
    held = any(actor.key in r.members and permission in r.permissions for r in roles.values())
    who = {"case": case_owner, "task": task}
    return any(acts_as(who[o]) for o in _OLD_OWNERS[message]) or held


@given(
    message=st.sampled_from(sorted(_OLD_OWNERS)),
    actor=actors,
    case_owner=owners,
    task_owner=owners,
    granted=st.dictionaries(
        st.sampled_from(ROLE_KEYS),
        st.lists(st.sampled_from(sorted(LEGACY_PERMISSIONS)), unique=True),
    ),
)
def test_the_legacy_table_decides_as_the_pinned_rules_did(
    message: str,
    actor: StaffFacts,
    case_owner: Owner,
    task_owner: Owner,
    granted: dict[str, list[Permission]],
) -> None:
    roles = {
        key: RoleConfig(
            key=key,
            name=key,
            members=[actor.key] if key in actor.roles else [],
            permissions=granted.get(key, []),
        )
        for key in ROLE_KEYS
    }
    table = legacy_table(roles)
    has_task = "task" in _OLD_OWNERS[message]
    new = may_send(
        grants_for(table, message),
        actor,
        case_owner=case_owner,
        task_owner=task_owner if has_task else None,
        has_task=has_task,
    )
    assert new == _old_rule(message, actor, roles, case_owner, task_owner)


# ------------------------------------------------------------------ refusals name the rule


def _defn(table: dict[str, list[str]] | None) -> CaseDefinition:
    base = definition(
        [task_def("interview", sla(p(2, "days"))), task_def("review", sla(p(3, "days")))],
        [path_step("interview")],
        optional=["review"],
    )
    return base.model_copy(update={"permissions": table, "users": {}})


def test_a_refusal_names_the_rule_and_who_may() -> None:
    defn = _defn({"close_case": ["case_owner", "role:managers"]})
    with pytest.raises(RequestRefused) as info:
        check_permitted(
            defn,
            "close_case",
            staff("bob", "officers"),
            case_owner=ALICE,
            task_owner=None,
            has_task=False,
            what="close case HOC-1",
        )
    assert info.value.code == "not_permitted"
    assert str(info.value) == (
        "user 'bob' may not close case HOC-1: by the permission rule close_case (case_owner, "
        "role:managers) only the case owner (user:alice) or members of role managers may"
    )
    with pytest.raises(RequestRefused) as info:
        check_permitted(
            defn,
            "hold_task",
            staff("bob"),
            case_owner=ALICE,
            task_owner=OFFICERS,
            has_task=True,
            what="hold task 'interview'",
        )
    assert str(info.value) == (
        "user 'bob' may not hold task 'interview': by the default rule for hold_task "
        "(case_owner, task_owner, owning_role_member) only the case owner (user:alice), the "
        "task owner (none) or members of the owning role (role:officers) may"
    )


def test_a_pinned_table_is_used_and_an_older_pin_gets_the_legacy_one() -> None:
    assert permission_table(_defn({"close_case": ["role:leaders"]})) == {
        "close_case": ("role:leaders",)
    }
    legacy = permission_table(_defn(None))  # the factories' leaders hold every permission
    assert legacy["close_case"] == ("case_owner", "role:leaders")
    assert legacy["complete_task"] == (*DEFAULT_GRANTS, "role:leaders")


# ------------------------------------------------------------------ checks on live facts


def _case(defn: CaseDefinition) -> CaseState:
    state = planner.new_case_state(
        defn,
        reference="HOC-1",
        created_by="alice",
        created_at=NOW,
        case_owner=ALICE,
        task_owners={"interview": BOB},
    )
    catch_up(defn, state, NOW)
    return state


def test_checks_read_the_live_facts_not_the_pinned_staff() -> None:
    defn = _defn({"complete_task": ["task_owner", "role:leaders"]})
    state = _case(defn)
    done = CompleteTask(request_id="c", actor="nina", task="interview")
    # nina joined after the pin: unknown to it, known to the directory, a team leader.
    case_rules.check_complete_task(defn, state, done, NOW, live(staff("nina", "leaders")))
    with pytest.raises(RequestRefused, match="not a known user"):
        case_rules.check_complete_task(defn, state, done, NOW, live())
    # bob, the task owner, disabled today.
    mine = CompleteTask(request_id="c", actor="bob", task="interview")
    with pytest.raises(RequestRefused) as info:
        case_rules.check_complete_task(defn, state, mine, NOW, live(staff("bob", disabled=True)))
    assert info.value.code == "actor_disabled"
    # Reassigning to someone absent today is refused, naming the absence.
    move = ReassignTask(
        request_id="m",
        actor="bob",
        task="interview",
        to=Owner(kind="user", key="nina"),
        reason="workload",
    )
    with pytest.raises(RequestRefused) as info:
        case_rules.check_reassign_task(
            defn,
            state,
            move,
            NOW,
            live(staff("bob"), staff("nina", absent=True)),
        )
    assert (info.value.code, str(info.value)) == (
        "user_unavailable",
        "user 'nina' is unavailable on 2026-04-08 (sickness 2026-04-08 to 2026-04-08)",
    )
    # The validator's pass (no facts) refuses only on the case's own state.
    close = CloseCase(request_id="x", actor="whoever", reason="done")
    case_rules.check_close_case(defn, state, close, NOW, None)


def test_keys_to_look_up_are_the_actor_and_users_made_owners() -> None:
    move = ReassignTask(
        request_id="m", actor="bob", task="t", to=Owner(kind="user", key="nina"), reason="other"
    )
    assert keys_to_look_up(move) == ["bob", "nina"]
    to_role = move.model_copy(update={"to": OFFICERS})
    assert keys_to_look_up(to_role) == ["bob"]


def test_pinned_facts_are_the_old_directory() -> None:
    defn = definition([task_def("interview")], [path_step("interview")])
    facts = pinned_facts(defn, ["alice", "carol", "dave", "erin", "zed"], DAY)
    assert set(facts.staff) == {"alice", "carol", "dave", "erin"}
    assert facts.staff["carol"].roles == ["leaders"]
    assert facts.staff["dave"].disabled
    assert facts.staff["erin"].absence is not None and not facts.staff["erin"].available


# ------------------------------------------------------------------ validation on load


def _issues(rows: Sequence[PermissionConfig]) -> list[tuple[str, str, str]]:
    config = load_configuration(ERRORS / "valid.yaml")
    config = config.model_copy(update={"permissions": list(rows)})
    return [(i.rule, i.item, i.message) for i in validate_configuration(config, DAY)]


def test_the_table_is_validated_on_load() -> None:
    assert (
        _issues([PermissionConfig(message=m, grants=["case_owner"]) for m in MESSAGE_NAMES]) == []
    )
    ((rule, item, message),) = _issues([PermissionConfig(message="close", grants=[])])
    assert (rule, item) == ("permission-table", "close")
    assert "did you mean 'close_case'?" in message
    ((rule, item, message),) = _issues(
        [PermissionConfig(message="close_case", grants=["role:bosses"])]
    )
    assert (rule, item) == ("unknown-reference", "close_case")
    assert "bosses" in message
    with pytest.raises(ValueError, match="grants"):
        PermissionConfig(message="close_case", grants=["everyone"])


def test_the_message_names_are_the_table_rows() -> None:
    assert set(MESSAGE_NAMES) >= {"add_task", "reassign_task", "complete_task", "close_case"}
    legacy = {m for messages in permissions.LEGACY_PERMISSIONS.values() for m in messages}
    assert legacy <= set(MESSAGE_NAMES)
