"""The bounds of every message and configuration field (`models.bounds`), the rendering of a
refusal that names the field and the rule but never the value, and the configuration's size
limits (the ones too large for a file in tests/config_errors)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from config_files import load_and_validate, load_configuration
from domain.case_definition import DefinitionError, build_case_definition
from domain.config_errors import ConfigIssue, ConfigurationError
from models.bounds import (
    CONFIG_FILE_MAX_BYTES,
    CONFIG_TOTAL_MAX_BYTES,
    MAX_USERS,
    describe_validation_error,
)
from models.case import Owner
from models.config import UserConfig
from models.messages import AddTask, CloseCase, CompleteTask, RaiseCase, ReassignTask

REPO = Path(__file__).resolve().parent.parent
ERRORS = REPO / "tests" / "config_errors"
TODAY = date(2026, 11, 25)
MARKER = "Zq7Marker"  # in no field name and no rule's wording

# A valid request of each message: the tests change one field at a time.
VALID: dict[type[BaseModel], dict[str, Any]] = {
    RaiseCase: {
        "reference": "HO-1",
        "topic": "homeless-tonight",
        "raised_by": "adviser1",
        "notes": "Lives at the address below.\n\tFlat 2",
        "extra_tasks": ["team-leader-case-review"],
    },
    AddTask: {
        "request_id": "r-1",
        "actor": "tl1",
        "task": "team-leader-case-review",
        "owner": {"kind": "user", "key": "tl1"},
        "reason": "second opinion",
    },
    ReassignTask: {
        "request_id": "9f0c6a2e-6d1e-4a53-9d43-2f1c6a0c1b7e",
        "actor": "tl1",
        "task": "call-back",
        "to": {"kind": "role", "key": "advisers"},
        "reason": "workload",
        "note": "Ada is on leave.\nBack on Monday.",
    },
    CompleteTask: {"request_id": "r-3", "actor": "adviser1", "task": "call-back", "note": ""},
    CloseCase: {"request_id": "r-4", "actor": "tl1", "reason": "withdrew the application"},
}


def refusal(model: type[BaseModel], **changes: Any) -> str:
    """The rendered refusal of `model` with `changes` to its valid request."""
    with pytest.raises(ValidationError) as caught:
        model.model_validate({**VALID[model], **changes})
    return describe_validation_error(caught.value)


def test_the_valid_requests_are_valid() -> None:
    for model, fields in VALID.items():
        model.model_validate(fields)


# ---------------------------------------------------------------------- keys


@pytest.mark.parametrize(
    ("model", "field"),
    [
        (CompleteTask, "actor"),
        (CompleteTask, "task"),
        (AddTask, "task"),
        (RaiseCase, "topic"),
        (RaiseCase, "raised_by"),
    ],
)
def test_a_key_has_a_length(model: type[BaseModel], field: str) -> None:
    model.model_validate({**VALID[model], field: "k" * 100})
    assert refusal(model, **{field: "k" * 101}) == f"{field}: at most 100 characters"


@pytest.mark.parametrize("bad", ["a b", "-leading-dash", "tl1\n", "ünï", "tl1;DROP", "a\u202eb"])
def test_a_key_has_a_pattern(bad: str) -> None:
    message = refusal(CompleteTask, actor=bad)
    assert message.startswith("actor: must be a key: letters, digits, '-', '_', '.' and '@'")


def test_a_one_megabyte_actor_is_refused_briefly() -> None:
    message = refusal(CompleteTask, actor="a" * 1_000_000)
    assert message == "actor: at most 100 characters"


def test_owner_and_extra_task_keys_are_bounded() -> None:
    assert refusal(AddTask, owner={"kind": "user", "key": "u" * 101}) == (
        "owner.key: at most 100 characters"
    )
    assert refusal(ReassignTask, to={"kind": "role", "key": "a team"}).startswith(
        "to.key: must be a key"
    )
    assert refusal(RaiseCase, extra_tasks=["ok", "x" * 101]) == (
        "extra_tasks.1: at most 100 characters"
    )
    assert refusal(RaiseCase, extra_tasks=["t"] * 101) == "extra_tasks: at most 100 items"
    with pytest.raises(ValidationError):
        Owner(kind="user", key="")


def test_configuration_keys_are_the_same_keys() -> None:
    with pytest.raises(ValidationError) as caught:
        UserConfig(key="adviser 1", display_name="Ada")
    assert describe_validation_error(caught.value).startswith("key: must be a key")


def test_a_request_id_is_printable_without_spaces() -> None:
    assert refusal(CloseCase, request_id="r 1") == (
        "request_id: must be printable ASCII characters without spaces"
    )
    assert refusal(CloseCase, request_id="r\t1").startswith("request_id: must be printable")
    assert refusal(CloseCase, request_id="") == "request_id: must not be empty"
    assert refusal(CloseCase, request_id="r" * 101) == "request_id: at most 100 characters"


# ---------------------------------------------------------------------- free text


def test_a_control_character_in_a_note_is_refused() -> None:
    assert refusal(CompleteTask, note="done\x1b[31m") == (
        "note: no control characters other than newline and tab"
    )
    assert refusal(ReassignTask, note="a\x00b").startswith("note: no control characters")
    assert refusal(RaiseCase, notes="\x85").startswith("notes: no control characters")


def test_newline_and_tab_are_allowed_in_notes_only() -> None:
    CompleteTask.model_validate({**VALID[CompleteTask], "note": "line 1\n\tline 2"})
    assert refusal(CloseCase, reason="moved\naway") == "reason: no control characters"
    assert refusal(AddTask, reason="a\tb") == "reason: no control characters"


@pytest.mark.parametrize("char", ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066",
                                  "\u2067", "\u2068", "\u2069"])  # fmt: skip
def test_a_bidirectional_override_in_a_reason_is_refused(char: str) -> None:
    message = refusal(CloseCase, reason=f"moved {char}away")
    assert message.startswith("reason: no bidirectional override or isolate characters")


def test_unpaired_surrogates_are_refused() -> None:
    # Pydantic refuses them itself (they cannot be encoded, so could not be stored).
    assert refusal(CompleteTask, note="a\ud800b").startswith("note: Input should be a valid string")


def test_free_text_has_a_length() -> None:
    assert refusal(CloseCase, reason="x" * 501) == "reason: at most 500 characters"
    assert refusal(CompleteTask, note="x" * 4_001) == "note: at most 4000 characters"
    assert refusal(RaiseCase, notes="x" * 10_001) == "notes: at most 10000 characters"
    # The length comes first: a huge value is not scanned.
    assert refusal(CompleteTask, note="\x00" * 1_000_000) == "note: at most 4000 characters"


def test_ordinary_unicode_text_is_kept() -> None:
    text = "Mrs Nowak – rent arrears £1,200; العربية; 中文 ✓"
    request = CloseCase.model_validate({**VALID[CloseCase], "reason": text})
    assert request.reason == text


# ---------------------------------------------------------------------- rendering


def _fields(model: type[BaseModel]) -> list[str]:
    return list(model.model_fields)


_VALUES = st.one_of(
    st.text(min_size=0, max_size=200),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=50),
    st.sampled_from(["\x00", "\u202e", "\n", " ", "a" * 5_000]),
)


@settings(max_examples=300, deadline=None)
@given(
    model=st.sampled_from(list(VALID)),
    data=st.data(),
    before=_VALUES,
    after=_VALUES,
    shape=st.sampled_from(["text", "list", "dict", "owner"]),
)
def test_a_refusal_never_contains_the_value(
    model: type[BaseModel], data: st.DataObject, before: str, after: str, shape: str
) -> None:
    field = data.draw(st.sampled_from(_fields(model)))
    text = before + MARKER + after
    value: Any = {
        "text": text,
        "list": [text, "ok"],
        # Field names that are not keys (too long, odd characters) are not shown either.
        "dict": {"kind": text, "key": text, "k" * 100 + MARKER: 1, f"{MARKER} \u202e": 2},
        "owner": {"kind": "user", "key": text},
    }[shape]
    try:
        model.model_validate({**VALID[model], field: value})
    except ValidationError as e:
        message = describe_validation_error(e)
        assert MARKER not in message
        assert message.startswith(field) or message.startswith(tuple(_fields(model))), message
        assert "input_value" not in message


def test_a_refusal_of_an_unknown_field_names_the_field() -> None:
    assert refusal(CompleteTask, colour="red") == (
        "colour: unknown field (extra inputs are not permitted)"
    )


def test_a_refusal_of_a_wrong_tag_does_not_quote_it() -> None:
    message = refusal(ReassignTask, reason=MARKER)
    assert MARKER not in message
    assert message.startswith("reason: Input should be 'workload'")


# ---------------------------------------------------------------------- configuration


def refused(path: Path) -> list[ConfigIssue]:
    with pytest.raises(ConfigurationError) as caught:
        load_and_validate(path, TODAY)
    return caught.value.issues


def test_a_configuration_refusal_never_contains_the_value(tmp_path: Path) -> None:
    (tmp_path / "users.yaml").write_text(
        f'- {{key: adviser1, display_name: "{MARKER} \\u202E"}}\n'
        f"- {{key: adviser2, display_name: {MARKER * 30}}}\n"
        f"- {{key: {MARKER * 20}, display_name: Ada}}\n"
        f'- {{key: "{MARKER} x", display_name: Ada}}\n'
        f"- {{key: adviser3, display_name: Ada, disabled: {MARKER}}}\n"
    )
    issues = refused(tmp_path)
    assert [(i.item, i.rule) for i in issues] == [
        ("adviser1", "schema"),
        ("adviser2", "schema"),
        ("#3", "schema"),
        ("#4", "schema"),
        ("adviser3", "schema"),
    ]
    assert MARKER not in str(ConfigurationError(issues))


def test_a_file_over_the_size_limit_is_refused_unread(tmp_path: Path) -> None:
    users = tmp_path / "users.yaml"
    line = "- {key: adviser1, display_name: Ada Lovell}\n"
    users.write_text(line * (CONFIG_FILE_MAX_BYTES // len(line) + 1))
    (issue,) = refused(tmp_path)
    assert (issue.file, issue.item, issue.rule) == ("users.yaml", "-", "size-limit")
    assert issue.message.startswith("the file is 2.0")
    assert issue.message.endswith(" MB, over the limit of 2.00 MB")


def test_a_folder_over_the_total_size_limit_is_refused_unread(tmp_path: Path) -> None:
    line = "# a comment that YAML would skip, were the files read\n"
    for name in ("users.yaml", "roles.yaml", "topics.yaml"):
        (tmp_path / name).write_text(line * ((CONFIG_TOTAL_MAX_BYTES // 3) // len(line) + 10))
    (issue,) = refused(tmp_path)
    assert (issue.file, issue.item, issue.rule) == (tmp_path.name, "-", "size-limit")
    assert "in all, over the limit of 5.00 MB" in issue.message


def test_a_single_file_has_the_total_limit(tmp_path: Path) -> None:
    single = tmp_path / "council.yaml"
    base = (ERRORS / "valid.yaml").read_text()
    padding = "# padding\n" * ((CONFIG_FILE_MAX_BYTES + 1024) // 10)
    single.write_text(base + padding)
    load_and_validate(single, TODAY)  # over 2 MB, under 5 MB: one file holds every section
    single.write_text(base + padding * 3)
    (issue,) = refused(single)
    assert (issue.file, issue.rule) == ("council.yaml", "size-limit")


def test_too_many_users_are_refused_before_they_are_read(tmp_path: Path) -> None:
    (tmp_path / "users.yaml").write_text(
        "".join(f"- {{key: u{n}, display_name: U}}\n" for n in range(MAX_USERS + 1))
    )
    (issue,) = refused(tmp_path)
    assert (issue.file, issue.item, issue.rule) == ("users.yaml", "-", "size-limit")
    assert issue.message == "10,001 items, over the limit of 10,000 for users"


def test_aliases_that_expand_too_far_are_refused(tmp_path: Path) -> None:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for n in range(1, 9):
        lines.append(f"a{n}: &a{n} [" + ", ".join([f"*a{n - 1}"] * 9) + "]")
    (tmp_path / "users.yaml").write_text("\n".join(lines) + "\n")
    (issue,) = refused(tmp_path)
    assert (issue.file, issue.rule) == ("users.yaml", "size-limit")
    assert "expands to more than" in issue.message


def test_a_recursive_alias_is_refused(tmp_path: Path) -> None:
    (tmp_path / "users.yaml").write_text("- &a {key: a, display_name: A, absences: [*a]}\n")
    (issue,) = refused(tmp_path)
    assert (issue.file, issue.rule) == ("users.yaml", "size-limit")
    assert "recursive" in issue.message


def test_a_definition_too_large_to_pin_is_refused_naming_the_topic() -> None:
    config = load_configuration(ERRORS / "size_limit_pinned.yaml")
    with pytest.raises(DefinitionError, match="over the limit of 512 KB"):
        build_case_definition(config, 1, "threatened", TODAY)
    # The same rules naming one user each pin a small definition.
    small = config.model_copy(
        update={
            "escalation_rules": [
                r.model_copy(update={"users": r.users[:1]}) for r in config.escalation_rules
            ]
        }
    )
    assert len(build_case_definition(small, 1, "threatened", TODAY).model_dump_json()) < 10_000


def test_the_command_line_refuses_naming_the_fields_not_the_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from starter.cli import main

    monkeypatch.setenv("DEMO_DIR", str(tmp_path / "no-demo"))
    code = main(
        ["--json", "complete", "HO-1", "call-back", "--by", MARKER * 50,
         "--note", f"{MARKER}\x07"]
    )  # fmt: skip
    assert code == 1
    error = json.loads(capsys.readouterr().err)["error"]
    assert error == {
        "code": "invalid_input",
        "message": "actor: at most 100 characters; "
        "note: no control characters other than newline and tab",
    }
    code = main(["--json", "list", "--owner", f"{MARKER} x"])
    error = json.loads(capsys.readouterr().err)["error"]
    assert code == 1 and error["code"] == "invalid_filter" and MARKER not in error["message"]
