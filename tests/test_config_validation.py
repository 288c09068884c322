"""Semantic validation, the sample and demo configurations, and building case definitions."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from config_files import load_and_validate, load_configuration
from domain.case_definition import DefinitionError, build_case_definition, resolve_calendar
from domain.config_errors import ConfigIssue, ConfigurationError
from domain.config_validation import shorter, validate_configuration
from domain.task_paths import find_cycles
from models.config import Configuration, TaskDefinitionConfig, WorkflowTypeConfig
from models.period import Period

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "config" / "sample"
DEMO = REPO / "config" / "demo"
ERRORS = REPO / "tests" / "config_errors"
TODAY = date(2026, 11, 25)


def refused(path: Path, today: date = TODAY) -> list[ConfigIssue]:
    with pytest.raises(ConfigurationError) as caught:
        load_and_validate(path, today)
    return caught.value.issues


# ---------------------------------------------------------------------- sample and demo


@pytest.mark.parametrize(
    "today",
    [date(2026, 1, 1), TODAY, date(2026, 12, 24), date(2027, 6, 1), date(2027, 12, 31)],
)
@pytest.mark.parametrize("folder", [SAMPLE, DEMO], ids=["sample", "demo"])
def test_shipped_configurations_validate(folder: Path, today: date) -> None:
    load_and_validate(folder, today)


def test_every_sample_topic_in_force_builds_a_definition() -> None:
    config = load_configuration(SAMPLE)
    topics = [t for t in config.topics if t.in_force_on(TODAY)]
    assert len(topics) >= 12
    for topic in topics:
        defn = build_case_definition(config, 7, topic.key, TODAY)
        assert defn.config_version == 7
        assert defn.topic == topic
        assert defn.workflow_type.key == topic.workflow_type
        assert defn.workflow_type.in_force_on(TODAY)
        wt = defn.workflow_type
        for key in [s.task for s in wt.path] + wt.optional_tasks:
            assert key in defn.task_definitions
        for task in defn.task_definitions.values():
            if task.sla is not None:
                assert task.sla.calendar in defn.calendars
                if task.sla.follow_on is not None and task.sla.follow_on.add_task:
                    assert task.sla.follow_on.add_task in defn.task_definitions
        assert wt.case_sla.calendar in defn.calendars
        for snapshot in defn.calendars.values():
            assert (snapshot.first_year, snapshot.last_year) == (2025, 2029)
        assert defn.users == {}  # staff are the live directory's
        assert set(defn.roles) == {r.key for r in config.roles}
        assert defn.permissions == {r.message: r.grants for r in config.permissions}


def test_follow_on_added_tasks_are_pinned() -> None:
    config = load_configuration(SAMPLE)
    defn = build_case_definition(config, 1, "private-tenancy-ending", TODAY)
    # prevention-steps' follow-on adds the team leader review: not in the path, yet pinned.
    assert "team-leader-case-review" in defn.task_definitions
    assert "team-leader-case-review" not in {s.task for s in defn.workflow_type.path}


def test_the_version_in_force_on_the_day_is_pinned() -> None:
    config = load_configuration(SAMPLE)
    before = build_case_definition(config, 1, "private-tenancy-ending", date(2026, 3, 31))
    after = build_case_definition(config, 1, "private-tenancy-ending", date(2026, 4, 1))
    assert (before.workflow_type.version, after.workflow_type.version) == (1, 2)


def test_unknown_topic_is_a_clear_error() -> None:
    config = load_configuration(SAMPLE)
    with pytest.raises(DefinitionError, match="unknown topic 'alien-abduction'"):
        build_case_definition(config, 1, "alien-abduction", TODAY)


def test_retired_topic_is_a_clear_error() -> None:
    config = load_configuration(SAMPLE)
    message = (
        "topic 'welfare-benefit-advice' is not in force on 2026-11-25 "
        "(in force 2018-04-03 to 2025-03-31)"
    )
    with pytest.raises(DefinitionError, match=re.escape(message)):
        build_case_definition(config, 1, "welfare-benefit-advice", TODAY)
    # Before it was retired it worked.
    build_case_definition(config, 1, "welfare-benefit-advice", date(2025, 3, 31))


def test_topic_without_a_workflow_type_in_force_is_a_clear_error() -> None:
    config = load_configuration(SAMPLE)
    early = [t.model_copy(update={"effective_from": date(2018, 1, 1)}) for t in config.topics]
    config = config.model_copy(update={"topics": early})
    with pytest.raises(
        DefinitionError,
        match="topic 'care-leaver': no version of workflow type 'prevention-duty' is in force "
        "on 2018-04-02",
    ):
        build_case_definition(config, 1, "care-leaver", date(2018, 4, 2))


def test_resolved_calendars_carry_bank_holidays_and_closures() -> None:
    config = load_configuration(SAMPLE)
    by_key = {c.key: c for c in config.calendars}
    ew = resolve_calendar(by_key["working-days-ew"], 2026, 2027)
    for day in ["2026-12-25", "2026-12-28", "2027-01-01", "2027-03-26", "2027-08-30"]:
        assert date.fromisoformat(day) in ew.closed_dates
    assert date(2026, 12, 24) in ew.closed_dates  # the office's own closure
    assert date(2027, 1, 4) not in ew.closed_dates
    scotland = resolve_calendar(by_key["working-days-scotland"], 2026, 2026)
    assert date(2026, 1, 2) in scotland.closed_dates
    assert date(2026, 11, 30) in scotland.closed_dates  # St Andrew's Day
    assert resolve_calendar(by_key["24x7"], 2026, 2027).closed_dates == []


# ---------------------------------------------------------------------- one error per file


def _expectations(path: Path) -> list[tuple[str, str, str]]:
    found = []
    for line in path.read_text().splitlines():
        if line.startswith("# expect:") and "nothing" not in line:
            rule, section, item = (p.strip() for p in line.removeprefix("# expect:").split("|"))
            file = path.name if section == "-" else f"{path.name} ({section})"
            found.append((rule, file, item))
    return found


ERROR_FILES = sorted(p for p in ERRORS.glob("*.yaml") if p.name != "valid.yaml")


def test_the_base_of_the_error_files_is_valid() -> None:
    load_and_validate(ERRORS / "valid.yaml", TODAY)


@pytest.mark.parametrize("path", ERROR_FILES, ids=[p.stem for p in ERROR_FILES])
def test_each_error_is_refused_naming_rule_file_and_item(path: Path) -> None:
    expected = _expectations(path)
    assert expected, f"{path.name} has no '# expect:' line"
    issues = refused(path)
    assert sorted((i.rule, i.file, i.item) for i in issues) == sorted(expected), "\n".join(
        map(str, issues)
    )
    for issue in issues:
        assert str(issue).startswith(f"{issue.file}: {issue.item}: ")
        assert str(issue).endswith(f"[{issue.rule}]")


def test_cycle_is_named() -> None:
    (issue,) = refused(ERRORS / "cycle.yaml")
    assert "interview -> letter -> interview" in issue.message


def test_unsynchronised_target_names_task_start_and_both_dates() -> None:
    (issue,) = refused(ERRORS / "targets_not_synchronised.yaml")
    # A 5 working day interview started Friday 18 Dec 2026 ends Tue 29 Dec (Christmas and
    # Boxing Day substitutes closed); the 7-week letter then runs to 16 Feb, after the
    # 56-day case target of 12 Feb. Earlier starts are within the target exactly.
    assert issue.message.startswith(
        "task 'letter' can fall due Tue 16 Feb 2027 23:59 for a case started "
        "Fri 18 Dec 2026 09:00, after the case target Fri 12 Feb 2027 23:59"
    )


def test_several_errors_are_all_listed() -> None:
    base = (ERRORS / "valid.yaml").read_text()
    broken = (
        base.replace("roles: [leaders]", "roles: [leaders, leaders9]")
        .replace("      amber: {unit: days, amount: 2}\n", "      amber: {unit: days, amount: 9}\n")
        .replace(
            "      - task: interview\n", "      - task: interview\n        predecessors: [letter]\n"
        )
        .replace("workflow_type: prevention}", "workflow_type: relief}")
        .replace("{key: leaders, name: Team leaders}", "{key: leaders, nme: Team leaders}")
    )
    assert broken.count("leaders9") == 1 and "nme:" in broken
    path = Path(ERRORS.parent / "_several.yaml")
    try:
        path.write_text(broken)
        issues = refused(path)
    finally:
        path.unlink()
    assert [(i.rule, i.item) for i in issues] == [
        ("schema", "leaders"),
        ("schema", "leaders"),
        ("unknown-reference", "leaders"),
        ("amber-not-shorter", "interview"),
        ("cycle", "prevention v1"),
        ("unknown-reference", "threatened"),
    ], "\n".join(map(str, issues))
    assert len(str(ConfigurationError(issues)).splitlines()) == len(issues)


# ---------------------------------------------------------------------- rules in detail


def _base() -> Configuration:
    return load_configuration(ERRORS / "valid.yaml")


def _with(
    config: Configuration, *tasks: TaskDefinitionConfig, wt: WorkflowTypeConfig
) -> Configuration:
    return config.model_copy(update={"task_definitions": list(tasks), "workflow_types": [wt]})


def _task(key: str, calendar: str, unit: str, amount: int, **sla: object) -> TaskDefinitionConfig:
    return TaskDefinitionConfig.model_validate(
        {
            "key": key,
            "name": key,
            "sla": {
                "calendar": calendar,
                "target": {"unit": unit, "amount": amount},
                "target_exceeded_escalation": "owner",
                **sla,
            },
        }
    )


def _wt(
    path: Sequence[Any], case_unit: str, case_amount: int, **extra: object
) -> WorkflowTypeConfig:
    return WorkflowTypeConfig.model_validate(
        {
            "key": "prevention",
            "name": "Prevention",
            "version": 1,
            "path": path,
            "case_sla": {
                "calendar": "24x7",
                "target": {"unit": case_unit, "amount": case_amount},
                "target_exceeded_escalation": "owner",
            },
            "allocation": {"case_owner": "creator", "default_task": "creator"},
            **extra,
        }
    )


def _rules(issues: list[ConfigIssue]) -> list[str]:
    return [i.rule for i in issues]


def test_bank_holidays_make_a_working_day_target_miss_the_case_target() -> None:
    # 6 working days always fit in 10 calendar days, except across Christmas 2026: the
    # first start that fails is Thursday 17 December (due Tue 29 Dec, target Sun 27 Dec).
    config = _with(
        _base(),
        _task("a", "working-days", "days", 6),
        wt=_wt([{"task": "a"}], "days", 10),
    )
    (issue,) = validate_configuration(config, TODAY)
    assert issue.rule == "targets-not-synchronised"
    assert "case started Thu 17 Dec 2026 09:00" in issue.message
    assert "fall due Tue 29 Dec 2026 17:00" in issue.message
    assert "case target Sun 27 Dec 2026 23:59" in issue.message
    # From January 2027 the first start that fails is the Thursday before Easter.
    (later,) = validate_configuration(config, date(2027, 1, 1))
    assert "case started Thu 18 Mar 2027 09:00" in later.message


def test_start_just_before_closing_is_tried() -> None:
    # 1 working hour fits in 8 elapsed hours from the opening, not from 16:59 (due 09:59
    # the next morning, the case target 00:59).
    config = _with(
        _base(), _task("a", "working-days", "hours", 1), wt=_wt([{"task": "a"}], "hours", 8)
    )
    (issue,) = validate_configuration(config, TODAY)
    assert "case started Wed 25 Nov 2026 16:59" in issue.message


def test_may_exceed_case_target_is_allowed() -> None:
    config = _with(
        _base(),
        _task("a", "24x7", "days", 60, may_exceed_case_target=True),
        wt=_wt([{"task": "a"}], "days", 56),
    )
    assert validate_configuration(config, TODAY) == []


def test_lags_and_all_earlier_count_towards_the_longest_path() -> None:
    tasks = [
        _task("a", "24x7", "days", 10),
        _task("b", "24x7", "days", 20),
        _task("c", "24x7", "days", 5),
    ]
    path = [
        {"task": "a"},
        {"task": "b"},
        {"task": "c", "predecessors": "all_earlier", "lag": {"unit": "weeks", "amount": 4}},
    ]
    # b (20 days) + 4 weeks lag (from the opening of day 48) + 5 days = day 53.
    ok = _with(_base(), *tasks, wt=_wt(path, "days", 53))
    assert validate_configuration(ok, TODAY) == []
    tight = _with(_base(), *tasks, wt=_wt(path, "days", 52))
    (issue,) = validate_configuration(tight, TODAY)
    assert issue.message.startswith("task 'c' can fall due")


def test_each_failing_task_is_reported_once() -> None:
    tasks = [_task("a", "24x7", "days", 60), _task("b", "24x7", "days", 1)]
    path = [{"task": "a"}, {"task": "b", "predecessors": ["a"]}]
    issues = validate_configuration(_with(_base(), *tasks, wt=_wt(path, "days", 56)), TODAY)
    assert [i.message.split(" can ")[0] for i in issues] == ["task 'a'", "task 'b'"]


def test_predecessors_may_be_later_in_the_path() -> None:
    tasks = [_task("a", "24x7", "days", 1), _task("b", "24x7", "days", 1)]
    path = [{"task": "b", "predecessors": ["a"]}, {"task": "a"}]
    assert validate_configuration(_with(_base(), *tasks, wt=_wt(path, "days", 2)), TODAY) == []
    # ... and b's due counts from a's: 1 + 1 days does not fit in 1.
    (issue,) = validate_configuration(_with(_base(), *tasks, wt=_wt(path, "days", 1)), TODAY)
    assert "task 'b'" in issue.message


def test_workflow_types_not_in_force_in_the_coming_year_are_not_checked() -> None:
    config = _with(
        _base(),
        _task("a", "24x7", "days", 60),
        wt=_wt([{"task": "a"}], "days", 56, effective_to="2025-12-31"),
    )
    config = config.model_copy(update={"topics": []})
    assert validate_configuration(config, TODAY) == []


def test_references_into_unparsed_items_are_not_reported() -> None:
    config = _base().model_copy(update={"task_definitions": []})
    assert "unknown-reference" in _rules(validate_configuration(config, TODAY))
    assert validate_configuration(config, TODAY, unparsed={"task_definitions": None}) == []
    assert (
        validate_configuration(
            config,
            TODAY,
            unparsed={"task_definitions": frozenset({"interview", "letter", "review"})},
        )
        == []
    )


def test_cycles_are_found_and_named_in_running_order() -> None:
    preds = {"a": ["c"], "b": ["a"], "c": ["b"], "d": []}
    assert find_cycles(["a", "b", "c", "d"], preds) == [["a", "b", "c", "a"]]
    assert find_cycles(["a", "b"], {"a": [], "b": ["a"]}) == []


@pytest.mark.parametrize(
    ("amber", "target", "ok"),
    [
        (Period(unit="days", amount=4), Period(unit="days", amount=5), True),
        (Period(unit="days", amount=5), Period(unit="days", amount=5), False),
        (Period(unit="hours", amount=23), Period(unit="days", amount=1), True),
        (Period(unit="hours", amount=24), Period(unit="days", amount=1), False),
        (Period(unit="days", amount=6), Period(unit="weeks", amount=1), True),
        (Period(unit="weeks", amount=4), Period(unit="months", amount=1), False),
        (Period(unit="weeks", amount=1), Period(unit="months", amount=1), True),
        (Period(unit="months", amount=1), Period(unit="months", amount=2), True),
    ],
)
def test_amber_shorter_than_target(amber: Period, target: Period, ok: bool) -> None:
    assert shorter(amber, target) is ok
