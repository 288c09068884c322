"""Reading configurations: folders and single files, YAML and schema errors, all listed."""

from __future__ import annotations

from datetime import date, time
from pathlib import Path

import pytest

from config_files import load_and_validate, load_configuration
from domain.config_errors import ConfigIssue, ConfigurationError
from domain.messages import MESSAGE_NAMES
from models.config import CONFIG_FILES, Configuration

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "config" / "sample"
DEMO = REPO / "config" / "demo"
TODAY = date(2026, 11, 25)


def refused(path: Path, today: date | None = TODAY) -> list[ConfigIssue]:
    with pytest.raises(ConfigurationError) as caught:
        if today is None:
            load_configuration(path)
        else:
            load_and_validate(path, today)
    return caught.value.issues


def test_sample_folder_loads() -> None:
    config = load_configuration(SAMPLE)
    assert {w.key for w in config.workflow_types} >= {
        "prevention-duty",
        "relief-duty",
        "statutory-review",
    }
    assert len(config.topics) >= 12
    assert len(config.task_definitions) >= 20
    # Staff are the directory's (config/sample/staff.csv feeds it), not the configuration's.
    assert config.users == []
    assert all(not r.members and not r.permissions for r in config.roles)
    # Every message has its row in the sample (none falls back to the default rule).
    assert {r.message for r in config.permissions} == set(MESSAGE_NAMES)


def test_demo_folder_loads_with_the_sample_staff() -> None:
    demo, sample = load_configuration(DEMO), load_configuration(SAMPLE)
    assert (REPO / "config" / "demo" / "staff.csv").read_text() == (
        REPO / "config" / "sample" / "staff.csv"
    ).read_text()
    assert [(r.key, r.name) for r in demo.roles] == [(r.key, r.name) for r in sample.roles]
    assert demo.permissions == sample.permissions
    assert {w.key for w in demo.workflow_types} == {
        "prevention-duty",
        "relief-duty",
        "statutory-review",
    }


def test_single_file_equals_folder(tmp_path: Path) -> None:
    text = ""
    for section, name in CONFIG_FILES.items():
        if not (SAMPLE / name).exists():
            continue  # users.yaml: staff are the directory's
        body = (SAMPLE / name).read_text().splitlines()
        text += f"{section}:\n" + "".join(f"  {line}\n" for line in body)
    single = tmp_path / "all.yaml"
    single.write_text(text)
    assert load_configuration(single) == load_configuration(SAMPLE)


def test_unquoted_times_are_wall_clock_times_not_base_60_numbers() -> None:
    # YAML 1.1 would read 17:00 as the integer 1020, and pydantic would take it as 00:17.
    config = load_configuration(SAMPLE)
    working = next(c for c in config.calendars if c.key == "working-days-ew")
    assert (working.opening, working.closing) == (time(9, 0), time(17, 0))
    scotland = next(c for c in config.calendars if c.key == "working-days-scotland")
    assert (scotland.opening, scotland.closing) == (time(8, 45), time(16, 45))


def test_missing_files_are_empty_sections(tmp_path: Path) -> None:
    (tmp_path / "calendars.yaml").write_text((SAMPLE / "calendars.yaml").read_text())
    (tmp_path / "topics.yaml").write_text("")  # an empty file is an empty section too
    config = load_configuration(tmp_path)
    assert len(config.calendars) == 3
    assert config.users == [] and config.topics == [] and config.workflow_types == []


def test_empty_folder_and_empty_file_are_empty_configurations(tmp_path: Path) -> None:
    assert load_and_validate(tmp_path, TODAY) == Configuration()
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing yet\n")
    assert load_and_validate(empty, TODAY) == Configuration()


def test_missing_path_is_refused(tmp_path: Path) -> None:
    (issue,) = refused(tmp_path / "nowhere")
    assert issue.rule == "not-found"


def test_unknown_yaml_file_in_a_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "topic.yaml").write_text("[]\n")
    (issue,) = refused(tmp_path, today=None)
    assert (issue.file, issue.rule) == ("topic.yaml", "unknown-file")


def test_section_that_is_not_a_list(tmp_path: Path) -> None:
    (tmp_path / "users.yaml").write_text("key: adviser1\ndisplay_name: Ada\n")
    (issue,) = refused(tmp_path, today=None)
    assert (issue.file, issue.rule, issue.line) == ("users.yaml", "schema", 1)
    assert "expected a list of items" in issue.message


def test_schema_error_names_file_item_field_and_line(tmp_path: Path) -> None:
    (tmp_path / "task_definitions.yaml").write_text(
        "- key: hoi-interview\n"
        "  name: Housing options interview\n"
        "  sla:\n"
        "    calendar: 24x7\n"
        "    target: {unit: fortnight, amount: 1}\n"
        "    target_exceeded_escalation: owner\n"
    )
    (issue,) = refused(tmp_path, today=None)
    assert issue.file == "task_definitions.yaml"
    assert issue.item == "hoi-interview"
    assert issue.rule == "schema"
    assert issue.line == 5
    assert issue.message.startswith("sla.target.unit: Input should be 'minutes', ")
    assert str(issue) == (
        f"task_definitions.yaml: hoi-interview: {issue.message} (line 5) [schema]"
    )


def test_every_error_of_every_layer_is_listed(tmp_path: Path) -> None:
    """A YAML error in one file, schema errors in another, semantic errors in a third: all
    reported together; references into the unreadable file are not reported."""
    for name in CONFIG_FILES.values():
        if (SAMPLE / name).exists():
            (tmp_path / name).write_text((SAMPLE / name).read_text())
    # YAML error: the whole escalation rules file is unreadable.
    (tmp_path / "escalation_rules.yaml").write_text("- key: [unclosed\n")
    # Schema errors in two items of roles.yaml (a misspelt field, a missing key).
    roles = (tmp_path / "roles.yaml").read_text()
    roles = roles.replace("name: Team leaders", "nam: Team leaders")
    roles += "- name: Nobody\n"
    (tmp_path / "roles.yaml").write_text(roles)
    # A semantic error: a topic mapped to a workflow type that does not exist.
    topics = (tmp_path / "topics.yaml").read_text()
    (tmp_path / "topics.yaml").write_text(
        topics.replace(
            "workflow_type: housing-advice\n  effective_from: 2018-04-03\n\n",
            "workflow_type: advice\n  effective_from: 2018-04-03\n\n",
            1,
        )
    )
    issues = refused(tmp_path)
    found = [(i.file, i.item, i.rule) for i in issues]
    assert found == [
        ("escalation_rules.yaml", "-", "yaml"),
        ("roles.yaml", "team-leaders", "schema"),
        ("roles.yaml", "team-leaders", "schema"),
        ("roles.yaml", "#6", "schema"),
        ("topics.yaml", "disrepair-or-overcrowding", "unknown-reference"),
    ], "\n".join(map(str, issues))
    # team-leaders is granted permissions, but its item failed the schema: no cascade error.
    assert not any(i.rule == "unknown-reference" and "team-leaders" in i.message for i in issues)
    text = str(ConfigurationError(issues))
    assert text.splitlines() == [str(i) for i in issues]


def test_single_file_issues_name_the_file_and_section(tmp_path: Path) -> None:
    single = tmp_path / "council.yaml"
    single.write_text(
        "users:\n  - {key: adviser1, display_name: Ada, disabled: maybe}\n"
        "roles:\n  - {key: advisers, name: Advisers, members: [adviser1, adviser2]}\n"
        "teams: []\n"
    )
    issues = refused(single)
    assert [(i.file, i.item, i.rule, i.line) for i in issues] == [
        ("council.yaml", "teams", "schema", 5),
        ("council.yaml (users)", "adviser1", "schema", 2),
        ("council.yaml (roles)", "advisers", "staff-in-directory", 4),
    ]


def test_repeated_key_in_a_mapping_is_refused(tmp_path: Path) -> None:
    (tmp_path / "users.yaml").write_text(
        "- key: adviser1\n  display_name: Ada\n  display_name: Bea\n"
    )
    (issue,) = refused(tmp_path, today=None)
    assert (issue.file, issue.rule, issue.line) == ("users.yaml", "yaml", 3)
    assert "display_name" in issue.message
