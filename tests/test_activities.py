"""The activities against a real store (SQLite and PostgreSQL) loaded with config/sample, run
in Temporal's ActivityEnvironment.

Staff in the sample: housing-advisers = adviser1..adviser5 (adviser2 on leave 2026-12-21 to
2027-01-08, adviser5 disabled); team-leaders = tl1, tl2 (tl1 off sick 2027-01-04 to 01-22);
service-manager = manager1; out-of-hours = ooh1, ooh2; review-officers = tl2, manager1.
"""

from __future__ import annotations

import concurrent.futures
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities import CaseworkActivities
from domain.planner import local_date, raise_allocation_requests
from domain.shared_definition import ENCODING_BINARY, decode_pin
from models.activities import (
    AlertInput,
    AllocateInput,
    AllocateResult,
    AllocationRequest,
    CaseRecord,
    OpenCaseInput,
    OpenCaseResult,
    PinDefinitionInput,
    TaskRecord,
)
from models.case import Owner
from models.config import AllocationRuleConfig, Configuration, EscalationRuleConfig
from models.definition import CaseDefinition
from store.repository import inbox, load_case, save_configuration
from store.schema import InboxAlert
from tests.helpers.store import seed_sample_staff

# adviser2 is on leave that day; adviser5 is disabled.
LEAVE_DAY = date(2026, 12, 22)
ORDINARY_DAY = date(2026, 11, 25)
T0 = datetime(2026, 12, 22, 10, 0, tzinfo=UTC)


@pytest.fixture
def acts(engine: Engine, sample_config: Configuration) -> CaseworkActivities:
    save_configuration(engine, sample_config, "sample")
    seed_sample_staff(engine)
    return CaseworkActivities(engine, version_ttl=0.0, directory_ttl=0.0)


def run(fn: Any, arg: Any) -> Any:
    return ActivityEnvironment().run(fn, arg)


def user(key: str) -> Owner:
    return Owner(kind="user", key=key)


def role(key: str) -> Owner:
    return Owner(kind="role", key=key)


def rule(key: str, **fields: Any) -> AllocationRuleConfig:
    return AllocationRuleConfig(key=key, name=key, **fields)


ADVISERS_LEAST = rule("lw", kind="role_member", role="housing-advisers", strategy="least_open_work")
ADVISERS_ROUND = rule("rr", kind="role_member", role="housing-advisers", strategy="round_robin")


def allocate(
    acts: CaseworkActivities,
    case: str,
    *requests: tuple[str, AllocationRuleConfig],
    on: date = LEAVE_DAY,
    raised_by: str = "adviser1",
    purpose: str = "raise",
) -> AllocateResult:
    result: AllocateResult = run(
        acts.allocate,
        AllocateInput(
            case_reference=case,
            raised_by=raised_by,
            on=on,
            purpose=purpose,
            requests=[AllocationRequest(target=t, rule=r) for t, r in requests],
        ),
    )
    return result


def record(acts: CaseworkActivities, case: str, owners: dict[str, int]) -> None:
    """Record an open case whose tasks give each user the given number of open tasks."""
    tasks = [
        TaskRecord(
            key=f"{owner}-{n}",
            name="Task",
            status="open",
            mandatory=True,
            owner=user(owner),
            started_at=T0,
            due_at=T0 + timedelta(days=1),
            completed_at=None,
            sla_status="on_track",
        )
        for owner, count in owners.items()
        for n in range(count)
    ]
    run(
        acts.record_case,
        CaseRecord(
            reference=case,
            topic="homeless-tonight",
            workflow_type="relief-duty",
            workflow_version=1,
            config_version=1,
            status="open",
            owner=user("adviser1"),
            created_by="adviser1",
            created_at=T0,
            finished_at=None,
            close_reason=None,
            sla_status="on_track",
            case_due_at=None,
            tasks=tasks,
            revision=1,
        ),
    )


# ------------------------------------------------------------------ pin_definition


def pin(acts: CaseworkActivities, topic: str, on: date) -> CaseDefinition:
    """The definition `pin_definition` returns (compressed bytes, as the case records them)."""
    pinned = run(acts.pin_definition, PinDefinitionInput(topic=topic, on=on))
    assert isinstance(pinned, bytes)
    return decode_pin(ENCODING_BINARY, pinned)


def test_pin_definition_known_topic(acts: CaseworkActivities, engine: Engine) -> None:
    defn = pin(acts, "homeless-tonight", LEAVE_DAY)
    assert defn.topic.key == "homeless-tonight"
    assert defn.workflow_type.key == "relief-duty"
    assert defn.config_version == acts.latest_configuration()[0]
    assert "emergency-interview" in defn.task_definitions
    # The version in force on the day: prevention-duty v2 from 1 April 2026.
    before = pin(acts, "care-leaver", date(2026, 3, 1))
    after = pin(acts, "care-leaver", date(2026, 4, 1))
    assert (before.workflow_type.version, after.workflow_type.version) == (1, 2)
    # Pins are kept by (version, topic, day): the same bytes again, and as a new worker's.
    ask = PinDefinitionInput(topic="care-leaver", on=date(2026, 3, 1))
    kept = run(acts.pin_definition, ask)
    assert (
        kept == run(acts.pin_definition, ask) == run(CaseworkActivities(engine).pin_definition, ask)
    )
    assert decode_pin(ENCODING_BINARY, kept) == before


@pytest.mark.parametrize("topic", ["no-such-topic", "welfare-benefit-advice"])
def test_pin_definition_refuses_unknown_or_retired_topic(
    acts: CaseworkActivities, topic: str
) -> None:
    with pytest.raises(ApplicationError) as caught:
        run(acts.pin_definition, PinDefinitionInput(topic=topic, on=LEAVE_DAY))
    assert caught.value.non_retryable
    assert caught.value.type == "DefinitionError"
    assert topic in str(caught.value)


def test_pin_definition_without_configuration(engine: Engine) -> None:
    acts = CaseworkActivities(engine)
    with pytest.raises(ApplicationError, match="config load") as caught:
        run(acts.pin_definition, PinDefinitionInput(topic="homeless-tonight", on=LEAVE_DAY))
    assert caught.value.non_retryable
    assert caught.value.type == "NoConfiguration"


def test_pin_definition_uses_the_latest_configuration(
    acts: CaseworkActivities,
    engine: Engine,
    sample_config: Configuration,
) -> None:
    first = pin(acts, "homeless-tonight", LEAVE_DAY)
    fewer_topics = sample_config.model_copy(
        update={"topics": [t for t in sample_config.topics if t.key != "homeless-tonight"]}
    )
    version = save_configuration(engine, fewer_topics, "changed")
    assert version != first.config_version
    with pytest.raises(ApplicationError, match="unknown topic"):
        run(acts.pin_definition, PinDefinitionInput(topic="homeless-tonight", on=LEAVE_DAY))
    pinned = pin(acts, "rough-sleeping", LEAVE_DAY)
    assert pinned.config_version == version


# ------------------------------------------------------------------ open_case


def open_case(
    acts: CaseworkActivities,
    ref: str,
    *,
    raised_by: str = "adviser1",
    extra_tasks: tuple[str, ...] = (),
    first_run_id: str | None = None,
) -> OpenCaseResult:
    opened: OpenCaseResult = run(
        acts.open_case,
        OpenCaseInput(
            case_reference=ref,
            topic="care-leaver",
            raised_by=raised_by,
            extra_tasks=list(extra_tasks),
            at=T0,
            first_run_id=first_run_id or f"run-{ref}",
        ),
    )
    return opened


def test_open_case_pins_and_allocates_by_the_pinned_rules(acts: CaseworkActivities) -> None:
    opened = open_case(acts, "OPEN-0001", extra_tasks=("landlord-negotiation",))
    # The very pin `pin_definition` gives for the topic on the opening's local date.
    asked = PinDefinitionInput(topic="care-leaver", on=local_date(T0))
    assert opened.pin == run(acts.pin_definition, asked)
    defn = decode_pin(ENCODING_BINARY, opened.pin)
    allocation = opened.allocation
    assert allocation is not None
    raiser = allocation.raiser.get("adviser1") if allocation.raiser else None
    assert raiser is not None and not raiser.disabled
    # The case and every first task, the extra one included, by the pin's own rules.
    targets = {r.target for r in raise_allocation_requests(defn, ["landlord-negotiation"])}
    assert "landlord-negotiation" in targets and "case" in targets
    assert set(allocation.owners) | set(allocation.unallocated) == targets
    # Recorded as JSON (the pin in base64) and read back equal; a retry answers the same.
    assert OpenCaseResult.model_validate_json(opened.model_dump_json()) == opened
    assert open_case(acts, "OPEN-0001", extra_tasks=("landlord-negotiation",)) == opened


def test_open_case_allocates_nothing_for_extra_tasks_the_definition_refuses(
    acts: CaseworkActivities,
) -> None:
    refused = open_case(acts, "OPEN-0002", extra_tasks=("s184-decision",))
    assert refused.allocation is None
    assert decode_pin(ENCODING_BINARY, refused.pin).topic.key == "care-leaver"
    # Nothing claimed either: a corrected raise under the reference (a new case) opens.
    corrected = open_case(acts, "OPEN-0002", first_run_id="another-run")
    assert corrected.allocation is not None and corrected.allocation.owners


def test_open_case_allocates_nothing_for_a_raiser_not_active(acts: CaseworkActivities) -> None:
    opened = open_case(acts, "OPEN-0003", raised_by="adviser5")  # disabled
    assert opened.allocation is not None and opened.allocation.owners == {}
    facts = opened.allocation.raiser.get("adviser5") if opened.allocation.raiser else None
    assert facts is not None and facts.disabled
    unknown = open_case(acts, "OPEN-0004", raised_by="ghost")
    assert unknown.allocation is not None and unknown.allocation.owners == {}
    assert unknown.allocation.raiser is not None and unknown.allocation.raiser.staff == {}


def test_open_case_refuses_a_reference_another_case_claimed(acts: CaseworkActivities) -> None:
    open_case(acts, "OPEN-0005")
    with pytest.raises(ApplicationError) as caught:
        open_case(acts, "OPEN-0005", first_run_id="another-run")
    assert caught.value.type == "reference_in_use" and caught.value.non_retryable


# ------------------------------------------------------------------ allocate


def test_allocate_named_user(acts: CaseworkActivities) -> None:
    result = allocate(
        acts,
        "HO-1",
        ("case", rule("m", kind="named_user", user="manager1")),
        ("absent", rule("a", kind="named_user", user="adviser2")),
        ("disabled", rule("d", kind="named_user", user="adviser5")),
        ("unknown", rule("u", kind="named_user", user="nobody")),
    )
    assert result.owners == {"case": user("manager1")}
    assert result.unallocated == {
        "absent": "user adviser2 is absent on 2026-12-22",
        "disabled": "user adviser5 is disabled",
        "unknown": "user nobody is not in the staff directory",
    }
    # adviser2 is back after the leave.
    later = allocate(
        acts, "HO-2", ("case", rule("a", kind="named_user", user="adviser2")), on=date(2027, 1, 11)
    )
    assert later.owners == {"case": user("adviser2")}


def test_allocate_case_creator(acts: CaseworkActivities) -> None:
    creator = rule("case-creator", kind="case_creator")
    assert allocate(acts, "HO-1", ("case", creator), raised_by="tl2").owners == {
        "case": user("tl2")
    }
    absent = allocate(acts, "HO-2", ("case", creator), raised_by="adviser2")
    assert absent.owners == {}
    assert absent.unallocated == {"case": "user adviser2 is absent on 2026-12-22"}


def test_allocate_role(acts: CaseworkActivities) -> None:
    result = allocate(
        acts,
        "HO-1",
        ("case", rule("r", kind="role", role="review-officers")),
        ("task", rule("x", kind="role", role="no-such-role")),
    )
    assert result.owners == {"case": role("review-officers")}
    assert result.unallocated == {"task": "role no-such-role is not configured"}


def test_least_open_work_picks_the_emptiest_available(acts: CaseworkActivities) -> None:
    # adviser2 (absent) and adviser5 (disabled) have no work at all but are never chosen.
    record(acts, "HO-0", {"adviser1": 3, "adviser3": 1, "adviser4": 2})
    result = allocate(acts, "HO-1", ("case", ADVISERS_LEAST), ("interview", ADVISERS_LEAST))
    # One rule, one answer: the case and its tasks go to the same adviser.
    assert result.owners == {"case": user("adviser3"), "interview": user("adviser3")}


def test_least_open_work_ties_go_to_the_first_key(acts: CaseworkActivities) -> None:
    record(acts, "HO-0", {"adviser1": 2, "adviser3": 1, "adviser4": 1})
    assert allocate(acts, "HO-1", ("case", ADVISERS_LEAST)).owners["case"] == user("adviser3")


def test_least_open_work_counts_cases_not_yet_recorded(acts: CaseworkActivities) -> None:
    # A burst of new cases: each one's tasks count before the workflow records the case.
    owners = [
        allocate(acts, f"HO-{n}", ("case", ADVISERS_LEAST), ("t1", ADVISERS_LEAST)).owners["t1"]
        for n in range(4)
    ]
    assert [o.key for o in owners] == ["adviser1", "adviser3", "adviser4", "adviser1"]


def test_round_robin_rotates_over_available_members(acts: CaseworkActivities) -> None:
    out_of_hours = rule("ooh", kind="role_member", role="out-of-hours", strategy="round_robin")
    turns = [allocate(acts, f"HO-{n}", ("t", out_of_hours)).owners["t"].key for n in range(3)]
    assert turns == ["ooh1", "ooh2", "ooh1"]
    # adviser2 (absent) and adviser5 (disabled) are skipped.
    turns = [allocate(acts, f"HA-{n}", ("t", ADVISERS_ROUND)).owners["t"].key for n in range(5)]
    assert turns == ["adviser1", "adviser3", "adviser4", "adviser1", "adviser3"]


def test_round_robin_turn_is_per_request_not_per_target(acts: CaseworkActivities) -> None:
    first = allocate(acts, "HO-1", ("case", ADVISERS_ROUND), ("t1", ADVISERS_ROUND))
    assert set(first.owners.values()) == {user("adviser1")}
    assert allocate(acts, "HO-2", ("case", ADVISERS_ROUND)).owners["case"] == user("adviser3")


def test_a_retried_allocation_returns_the_same_answer(acts: CaseworkActivities) -> None:
    requests = [("case", ADVISERS_LEAST), ("t1", ADVISERS_ROUND), ("t2", ADVISERS_LEAST)]
    first = allocate(acts, "HO-1", *requests)
    # The workload changes before the retry: the answer does not.
    record(acts, "HO-0", {"adviser1": 5})
    assert allocate(acts, "HO-1", *requests) == first
    # The round-robin counter moved once, not twice.
    assert allocate(acts, "HO-2", ("t1", ADVISERS_ROUND)).owners["t1"] == user("adviser3")
    # Unallocated answers are kept too.
    absent = rule("a", kind="named_user", user="adviser2")
    assert allocate(acts, "HO-3", ("case", absent)).unallocated
    assert allocate(acts, "HO-3", ("case", absent), on=date(2027, 2, 1)).unallocated
    # Another purpose is another allocation of the same target.
    # (adviser1 now has the most work; adviser3 has HO-2's task, not yet recorded.)
    again = allocate(acts, "HO-1", ("case", ADVISERS_LEAST), purpose="follow_on-1")
    assert again.owners["case"] == user("adviser4")


def test_concurrent_round_robin_allocations_share_the_turns(acts: CaseworkActivities) -> None:
    def one(n: int) -> str:
        request = AllocateInput(
            case_reference=f"HO-{n}",
            raised_by="adviser1",
            on=ORDINARY_DAY,
            requests=[AllocationRequest(target="case", rule=ADVISERS_ROUND)],
        )
        return acts.allocate(request).owners["case"].key

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        chosen = list(pool.map(one, range(12)))
    # Four available advisers on an ordinary day (adviser5 is disabled): three turns each.
    assert Counter(chosen) == {"adviser1": 3, "adviser2": 3, "adviser3": 3, "adviser4": 3}


# ------------------------------------------------------------------ send_alert


def alert(
    escalation: EscalationRuleConfig,
    task_owner: Owner | None = None,
    case_owner: Owner | None = None,
    task: str | None = "assessment-and-php",
    occurrence: int = 1,
) -> AlertInput:
    return AlertInput(
        case_reference="HO-1",
        case_topic="homeless-tonight",
        task=task,
        task_name="Assessment and personalised housing plan",
        indicator="target_exceeded",
        occurrence=occurrence,
        indicator_at=T0,
        task_due_at=T0,
        task_owner=task_owner,
        case_owner=case_owner or user("adviser1"),
        rule=escalation,
    )


def esc(**fields: Any) -> EscalationRuleConfig:
    return EscalationRuleConfig(key="rule", name="Rule", **fields)


def inbox_count(engine: Engine) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(InboxAlert)) or 0


def test_send_alert_resolves_and_deduplicates_recipients(
    acts: CaseworkActivities,
    engine: Engine,
) -> None:
    rule_ = esc(
        roles=["team-leaders", "service-manager"],
        users=["manager1"],
        task_owner=True,
        case_owner=True,
    )
    # manager1 comes by role, by name and as a member of the owning role; tl2 by two roles.
    result = run(
        acts.send_alert,
        alert(rule_, task_owner=user("adviser3"), case_owner=role("review-officers")),
    )
    assert result.recipients == ["adviser3", "manager1", "tl1", "tl2"]
    assert result.created == 4
    assert inbox_count(engine) == 4
    (row,) = inbox(engine, "manager1")
    assert (row.case_reference, row.task_key, row.indicator, row.occurrence) == (
        "HO-1",
        "assessment-and-php",
        "target_exceeded",
        1,
    )
    assert row.task_owner == "user:adviser3"
    assert row.indicator_at == T0


def test_send_alert_owner_flags(acts: CaseworkActivities) -> None:
    def recipients(escalation: EscalationRuleConfig, task: str) -> list[str]:
        request = alert(escalation, user("adviser3"), user("adviser4"), task=task)
        result: list[str] = run(acts.send_alert, request).recipients
        return result

    assert recipients(esc(task_owner=True), "a") == ["adviser3"]
    assert recipients(esc(case_owner=True), "b") == ["adviser4"]
    assert recipients(esc(roles=["out-of-hours"]), "c") == ["ooh1", "ooh2"]
    # A task owned by a role alerts its members: disabled adviser5 is left out, adviser2 (on
    # leave) is not: the alert waits in the inbox.
    by_role = run(
        acts.send_alert, alert(esc(task_owner=True), task="z", task_owner=role("housing-advisers"))
    )
    assert by_role.recipients == ["adviser1", "adviser2", "adviser3", "adviser4"]
    # A disabled owner is not alerted; a rule can then reach nobody.
    nobody = run(
        acts.send_alert, alert(esc(task_owner=True), task="w", task_owner=user("adviser5"))
    )
    assert (nobody.recipients, nobody.created) == ([], 0)


def test_send_alert_for_the_case_target(acts: CaseworkActivities, engine: Engine) -> None:
    result = run(acts.send_alert, alert(esc(case_owner=True), task=None))
    assert result.recipients == ["adviser1"]
    (row,) = inbox(engine, "adviser1")
    assert row.task_key is None


def test_a_retried_alert_writes_nothing_new(
    acts: CaseworkActivities,
    engine: Engine,
) -> None:
    request = alert(esc(roles=["team-leaders"], task_owner=True), task_owner=user("adviser1"))
    first = run(acts.send_alert, request)
    assert first.created == 3
    again = run(acts.send_alert, request)
    assert again.recipients == first.recipients
    assert again.created == 0
    assert inbox_count(engine) == 3
    # The next occurrence of the same indicator is a new alert.
    assert (
        run(acts.send_alert, alert(request.rule, task_owner=user("adviser1"), occurrence=2)).created
        == 3
    )


# ------------------------------------------------------------------ record_case


def test_record_case_activity(acts: CaseworkActivities, engine: Engine) -> None:
    record(acts, "HO-1", {"adviser1": 2})
    stored = load_case(engine, "HO-1")
    assert stored is not None and len(stored.tasks) == 2
    # A stale retry (same revision, fewer tasks) changes nothing.
    record(acts, "HO-1", {"adviser1": 1})
    stored = load_case(engine, "HO-1")
    assert stored is not None and len(stored.tasks) == 2


def test_every_activity_is_registered(acts: CaseworkActivities) -> None:
    from temporalio import activity

    names = sorted(str(activity._Definition.must_from_callable(fn).name) for fn in acts.all())
    assert names == [
        "allocate",
        "directory_facts",
        "open_case",
        "pin_definition",
        "record_case",
        "send_alert",
    ]
