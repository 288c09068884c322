"""Every refusal of the message validators, with its code and its exact message."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from domain import case_rules, planner
from domain.errors import RequestRefused, describe_invalid
from domain.staff import keys_to_look_up, pinned_facts
from models.case import CaseState, Owner
from models.definition import CaseDefinition
from models.directory import DirectoryFacts
from models.messages import AddTask, CloseCase, CompleteTask, RaiseCase, ReassignTask
from tests.helpers.factories import (
    ALICE,
    BOB,
    H24,
    LEADERS,
    OFFICERS,
    catch_up,
    definition,
    london,
    p,
    sla,
    step,
    task,
)

RAISED = london(2026, 4, 7, 10)
NOW = london(2026, 4, 8, 10)  # Wed 8 Apr 2026; erin is on leave 7-10 Apr


def _defn() -> CaseDefinition:
    return definition(
        [
            task("interview", sla(p(2, "days"))),
            task("plan", sla(p(1, "days"))),
            task("review", sla(p(3, "days"))),
            task("long_review", sla(p(60, "days"), calendar=H24)),
            task("statutory_review", sla(p(60, "days"), calendar=H24, may_exceed_case_target=True)),
            task("not_optional"),
        ],
        [step("interview"), step("plan", ["interview"])],
        optional=["review", "long_review", "statutory_review"],
    )


def _case(owners: dict[str, Owner] | None = None) -> tuple[CaseDefinition, CaseState]:
    defn = _defn()
    state = planner.new_case_state(
        defn,
        reference="HOC-7",
        created_by="alice",
        created_at=RAISED,
        case_owner=ALICE,
        task_owners=owners if owners is not None else {"interview": BOB, "plan": OFFICERS},
    )
    catch_up(defn, state, RAISED)
    return defn, state


class pinned:
    """The checks with the directory facts of the definition's pinned staff (the factories'
    STAFF and ROLES), as a case whose history predates the live directory runs them;
    tests/test_permissions.py checks the same rules against live directory facts."""

    @staticmethod
    def check_add_task(defn: CaseDefinition, state: CaseState, req: AddTask, now: datetime) -> None:
        case_rules.check_add_task(defn, state, req, now, _facts(defn, req, now))

    @staticmethod
    def check_reassign_task(
        defn: CaseDefinition, state: CaseState, req: ReassignTask, now: datetime
    ) -> None:
        case_rules.check_reassign_task(defn, state, req, now, _facts(defn, req, now))

    @staticmethod
    def check_complete_task(
        defn: CaseDefinition, state: CaseState, req: CompleteTask, now: datetime
    ) -> None:
        case_rules.check_complete_task(defn, state, req, now, _facts(defn, req, now))

    @staticmethod
    def check_close_case(
        defn: CaseDefinition, state: CaseState, req: CloseCase, now: datetime
    ) -> None:
        case_rules.check_close_case(defn, state, req, now, _facts(defn, req, now))

    @staticmethod
    def check_raise(defn: CaseDefinition, case: RaiseCase) -> None:
        case_rules.check_raise(defn, case, pinned_facts(defn, [case.raised_by], RAISED.date()))


def _facts(defn: CaseDefinition, req: object, now: datetime) -> DirectoryFacts:
    return pinned_facts(defn, keys_to_look_up(req), planner.case_today(defn, now))


def refused(check: Callable[[], object], code: str, message: str) -> None:
    with pytest.raises(RequestRefused) as info:
        check()
    assert info.value.code == code
    assert str(info.value) == message
    assert code in case_rules.REFUSAL_CODES


def add(actor: str = "alice", key: str = "review", owner: Owner | None = None) -> AddTask:
    return AddTask(request_id="r-add", actor=actor, task=key, owner=owner)


def reassign(actor: str = "alice", key: str = "interview", to: Owner = ALICE) -> ReassignTask:
    return ReassignTask(request_id="r-re", actor=actor, task=key, to=to, reason="workload")


def done(actor: str = "bob", key: str = "interview") -> CompleteTask:
    return CompleteTask(request_id="r-done", actor=actor, task=key)


def close(actor: str = "alice", reason: str = "resolved") -> CloseCase:
    return CloseCase(request_id="r-close", actor=actor, reason=reason)


# --- accepted ---------------------------------------------------------------------------------


def test_valid_requests_pass() -> None:
    defn, state = _case()
    pinned.check_add_task(defn, state, add(), NOW)
    pinned.check_add_task(defn, state, add(owner=OFFICERS), NOW)
    pinned.check_add_task(defn, state, add(actor="carol", key="statutory_review"), NOW)
    pinned.check_reassign_task(defn, state, reassign(), NOW)
    pinned.check_reassign_task(defn, state, reassign(actor="bob", to=OFFICERS), NOW)
    pinned.check_reassign_task(defn, state, reassign(actor="carol"), NOW)
    pinned.check_complete_task(defn, state, done(), NOW)
    pinned.check_complete_task(defn, state, done(actor="alice"), NOW)
    pinned.check_complete_task(defn, state, done(actor="carol"), NOW)
    pinned.check_close_case(defn, state, close(), NOW)
    pinned.check_close_case(defn, state, close(actor="carol"), NOW)


def test_members_of_an_owning_role_may_act() -> None:
    defn, state = _case(owners={"interview": OFFICERS})
    pinned.check_complete_task(defn, state, done(actor="bob"), NOW)
    pinned.check_reassign_task(defn, state, reassign(actor="bob", to=BOB), NOW)
    state.owner = OFFICERS
    pinned.check_close_case(defn, state, close(actor="bob"), NOW)
    pinned.check_add_task(defn, state, add(actor="bob"), NOW)


def test_duplicate_request_ids() -> None:
    defn, state = _case()
    assert not case_rules.is_duplicate(state, "r-done")
    planner.complete_task(defn, state, done(), NOW)
    assert case_rules.is_duplicate(state, "r-done")


def test_a_request_id_names_one_request() -> None:
    defn, state = _case()
    assert not case_rules.check_request_id(state, "complete_task", done())
    planner.complete_task(defn, state, done(), NOW)
    # The same request again: a duplicate, answered with the current state.
    assert case_rules.check_request_id(state, "complete_task", done())
    # The same id for other content: refused, not taken for the first.
    refused(
        lambda: case_rules.check_request_id(state, "complete_task", done(key="plan")),
        "request_id_reused",
        "request id 'r-done' was used for another request on case HOC-7; a request id "
        "names one request: send a new id",
    )
    other = CloseCase(request_id="r-done", actor="bob", reason="resolved")
    with pytest.raises(RequestRefused):
        case_rules.check_request_id(state, "close_case", other)


def test_an_invalid_payload_is_described_without_its_value() -> None:
    secret = "Flat 2, 10 Acacia Avenue"  # personal data in the wrong place
    with pytest.raises(ValidationError) as invalid:
        CompleteTask.model_validate(
            {"request_id": "r", "actor": ["x"], "task": 3, "note": 5, secret: 1}
        )
    why = describe_invalid(CompleteTask, invalid.value)
    assert secret not in why and "Acacia" not in why
    assert why.startswith("not a valid CompleteTask: ")
    assert "actor: " in why and "task: " in why and "<?>: " in why
    err = RequestRefused("invalid_request", why)
    assert err.code in case_rules.REFUSAL_CODES
    assert describe_invalid(CompleteTask, ValueError("x")) == (
        "not a CompleteTask (a JSON object with its fields)"
    )


# --- common refusals --------------------------------------------------------------------------


def test_case_not_open() -> None:
    defn, state = _case()
    planner.close_case(defn, state, close(), NOW)
    message = "case HOC-7 is closed; it accepts no changes"
    refused(lambda: pinned.check_add_task(defn, state, add(), NOW), "case_not_open", message)
    refused(
        lambda: pinned.check_reassign_task(defn, state, reassign(), NOW),
        "case_not_open",
        message,
    )
    refused(lambda: pinned.check_complete_task(defn, state, done(), NOW), "case_not_open", message)
    refused(lambda: pinned.check_close_case(defn, state, close(), NOW), "case_not_open", message)


def test_unknown_and_disabled_actor() -> None:
    defn, state = _case()
    refused(
        lambda: pinned.check_complete_task(defn, state, done(actor="zed"), NOW),
        "unknown_actor",
        "actor 'zed' is not a known user of the staff directory",
    )
    refused(
        lambda: pinned.check_close_case(defn, state, close(actor="dave"), NOW),
        "actor_disabled",
        "actor 'dave' is a disabled user",
    )


# --- add_task ---------------------------------------------------------------------------------


def test_add_refusals() -> None:
    defn, state = _case()
    refused(
        lambda: pinned.check_add_task(defn, state, add(actor="bob"), NOW),
        "not_permitted",
        "user 'bob' may not add tasks to case HOC-7: by the permission rule add_task "
        "(case_owner, role:leaders) only the case owner (user:alice) or members of role "
        "leaders may",
    )
    refused(
        lambda: pinned.check_add_task(defn, state, add(key="nothing"), NOW),
        "unknown_task",
        "'nothing' is not a task definition in configuration version 1",
    )
    refused(
        lambda: pinned.check_add_task(defn, state, add(key="not_optional"), NOW),
        "task_not_allowed",
        "task 'not_optional' is not an optional task of workflow type 'wt' version 1 "
        "(optional tasks: review, long_review, statutory_review)",
    )
    refused(
        lambda: pinned.check_add_task(defn, state, add(key="plan"), NOW),
        "task_already_on_case",
        "task 'plan' is already on case HOC-7 (status waiting); a task definition appears at "
        "most once on a case",
    )
    refused(
        lambda: pinned.check_add_task(defn, state, add(owner=Owner(kind="user", key="zed")), NOW),
        "unknown_user",
        "user 'zed' is not a known user of the staff directory",
    )
    refused(
        lambda: pinned.check_add_task(defn, state, add(owner=Owner(kind="user", key="erin")), NOW),
        "user_unavailable",
        "user 'erin' is unavailable on 2026-04-08 (leave 2026-04-07 to 2026-04-10)",
    )
    refused(
        lambda: pinned.check_add_task(defn, state, add(owner=Owner(kind="user", key="dave")), NOW),
        "user_unavailable",
        "user 'dave' is disabled",
    )
    refused(
        lambda: pinned.check_add_task(
            defn, state, add(owner=Owner(kind="role", key="ghosts")), NOW
        ),
        "unknown_role",
        "role 'ghosts' is not a known role",
    )
    # The case target is 56 days on 24x7 from Tue 7 Apr 10:00: Tue 2 Jun 23:59:59 BST.
    refused(
        lambda: pinned.check_add_task(defn, state, add(key="long_review"), NOW),
        "target_after_case_target",
        "task 'long_review' added now would fall due at Sun 07 Jun 2026 23:59 BST "
        "(2026-06-07T22:59:59+00:00), after the case target Tue 02 Jun 2026 23:59 BST "
        "(2026-06-02T22:59:59+00:00); its SLA does not allow exceeding the case target",
    )


def test_availability_uses_the_local_date() -> None:
    defn, state = _case()
    # 23:30 UTC on Fri 10 Apr is 00:30 BST on Sat 11 Apr: erin's leave is over.
    late = datetime.fromisoformat("2026-04-10T23:30:00+00:00")
    pinned.check_add_task(defn, state, add(owner=Owner(kind="user", key="erin")), late)


def test_add_outside_the_calendar_years() -> None:
    defn, state = _case()
    refused(
        lambda: pinned.check_add_task(defn, state, add(), london(2027, 12, 30, 10)),
        "calendar_out_of_range",
        "calendar 'working' has no closed days for 2028-01-01: its bank holidays are known "
        "only for 2026-2027; extend the calendar's years",
    )


# --- reassign_task ----------------------------------------------------------------------------


def test_reassign_refusals() -> None:
    defn, state = _case()
    refused(
        lambda: pinned.check_reassign_task(defn, state, reassign(key="review"), NOW),
        "task_not_on_case",
        "task 'review' is not on case HOC-7",
    )
    refused(
        lambda: pinned.check_reassign_task(defn, state, reassign(actor="erin"), NOW),
        "not_permitted",
        "user 'erin' may not reassign task 'interview': by the permission rule reassign_task "
        "(case_owner, task_owner, owning_role_member, role:leaders) only the case owner "
        "(user:alice), the task owner (user:bob) or members of role leaders may",
    )
    refused(
        lambda: pinned.check_reassign_task(
            defn, state, reassign(to=Owner(kind="user", key="zed")), NOW
        ),
        "unknown_user",
        "user 'zed' is not a known user of the staff directory",
    )
    refused(
        lambda: pinned.check_reassign_task(
            defn, state, reassign(to=Owner(kind="user", key="erin")), NOW
        ),
        "user_unavailable",
        "user 'erin' is unavailable on 2026-04-08 (leave 2026-04-07 to 2026-04-10)",
    )
    refused(
        lambda: pinned.check_reassign_task(
            defn, state, reassign(to=Owner(kind="role", key="ghosts")), NOW
        ),
        "unknown_role",
        "role 'ghosts' is not a known role",
    )
    refused(
        lambda: pinned.check_reassign_task(defn, state, reassign(to=BOB), NOW),
        "same_owner",
        "task 'interview' is already owned by user:bob; nothing to reassign",
    )
    planner.complete_task(defn, state, done(), NOW)
    refused(
        lambda: pinned.check_reassign_task(defn, state, reassign(), NOW),
        "task_finished",
        "task 'interview' is completed; only an unfinished task can be reassigned",
    )


def test_a_waiting_task_may_be_reassigned_by_a_leader() -> None:
    defn, state = _case()
    pinned.check_reassign_task(defn, state, reassign(actor="carol", key="plan", to=LEADERS), NOW)


# --- complete_task ----------------------------------------------------------------------------


def test_complete_refusals() -> None:
    defn, state = _case()
    refused(
        lambda: pinned.check_complete_task(defn, state, done(key="review"), NOW),
        "task_not_on_case",
        "task 'review' is not on case HOC-7",
    )
    refused(
        lambda: pinned.check_complete_task(defn, state, done(actor="erin"), NOW),
        "not_permitted",
        "user 'erin' may not complete task 'interview': by the permission rule complete_task "
        "(case_owner, task_owner, owning_role_member, role:leaders) only the case owner "
        "(user:alice), the task owner (user:bob) or members of role leaders may",
    )
    refused(
        lambda: pinned.check_complete_task(defn, state, done(actor="alice", key="plan"), NOW),
        "task_not_open",
        "task 'plan' is waiting; only an open task can be completed",
    )
    planner.complete_task(defn, state, done(), NOW)
    refused(
        lambda: pinned.check_complete_task(defn, state, done(), NOW),
        "task_not_open",
        "task 'interview' is completed; only an open task can be completed",
    )


# --- close_case -------------------------------------------------------------------------------


def test_close_refusals() -> None:
    defn, state = _case()
    refused(
        lambda: pinned.check_close_case(defn, state, close(actor="bob"), NOW),
        "not_permitted",
        "user 'bob' may not close case HOC-7: by the permission rule close_case (case_owner, "
        "role:leaders) only the case owner (user:alice) or members of role leaders may",
    )
    refused(
        lambda: pinned.check_close_case(defn, state, close(reason="   "), NOW),
        "reason_required",
        "closing a case needs a reason (it was blank)",
    )


# --- extra tasks at raise ---------------------------------------------------------------------


def test_extra_task_refusals() -> None:
    defn = _defn()
    case_rules.check_extra_tasks(defn, ["review", "long_review"])
    refused(
        lambda: case_rules.check_extra_tasks(defn, ["nothing"]),
        "unknown_task",
        "'nothing' is not a task definition in configuration version 1",
    )
    refused(
        lambda: case_rules.check_extra_tasks(defn, ["not_optional"]),
        "task_not_allowed",
        "task 'not_optional' is not an optional task of workflow type 'wt' version 1 "
        "(optional tasks: review, long_review, statutory_review)",
    )
    refused(
        lambda: case_rules.check_extra_tasks(defn, ["review", "review"]),
        "task_already_on_case",
        "task 'review' is already on the case; a task definition appears at most once",
    )


def test_raise_refusals() -> None:
    # The one rule the workflow, the client's raise check and the command line all apply.
    defn = _defn()
    pinned.check_raise(defn, RaiseCase(reference="HOC-8", topic="t", raised_by="alice"))
    for who in ("zed", "dave"):  # unknown; disabled
        refused(
            lambda who=who: pinned.check_raise(  # type: ignore[misc]
                defn, RaiseCase(reference="HOC-8", topic="t", raised_by=who)
            ),
            "unknown_actor",
            f"{who!r} is not an active member of staff in the staff directory",
        )
    refused(
        lambda: pinned.check_raise(
            defn,
            RaiseCase(reference="HOC-8", topic="t", raised_by="alice", extra_tasks=["plan"]),
        ),
        "task_not_allowed",
        "task 'plan' is not an optional task of workflow type 'wt' version 1 "
        "(optional tasks: review, long_review, statutory_review)",
    )


def test_every_code_is_exercised() -> None:
    # Keep REFUSAL_CODES and this file in step: every code must appear in a test above.
    here = Path(__file__).parent
    source = "".join(
        (here / name).read_text(encoding="utf-8")
        for name in ("test_case_rules.py", "test_working_a_case.py")
    )
    missing = [code for code in case_rules.REFUSAL_CODES if f'"{code}"' not in source]
    assert missing == []
