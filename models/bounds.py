"""The bounds every field of every message and of the configuration is held to, in one place.

A value outside its bound is refused where it comes in (a message, a configuration file),
before it can reach a workflow history or the store: a 1 MB actor or a right-to-left override
in a note is refused, not stored. Refusals name the field and the bound, never the value
(`describe_validation_error`), because values may hold personal data and may be huge.

- `Key`: a configuration or staff key (task, actor, owner, topic, user, role, rule, ...):
  letters, digits, `-`, `_`, `.` and `@`, starting with a letter or digit, at most 100
  characters (`KEY_PATTERN`, `KEY_MAX_LENGTH`).
- `RequestId`: printable ASCII without spaces, 1 to 100 characters.
- free text (`Name`, `Description`, `Notes`, `Note`, `Reason`): a maximum length, and no
  control characters or Unicode bidirectional overrides and isolates (U+202A to U+202E,
  U+2066 to U+2069; pydantic itself refuses unpaired surrogates); the multi-line ones
  (`Description`, `Notes`, `Note`) allow newline and tab. Such text is refused, never
  silently stripped: the sender learns what was wrong. The length is checked first, so a
  huge value costs nothing more.
- The `MAX_*` counts: the longest lists a message or a configuration may hold.

Pure (pydantic and the standard library only): workflow code imports it.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, Field, ValidationError
from pydantic_core import ErrorDetails, PydanticCustomError

# ---------------------------------------------------------------------- keys

KEY_MAX_LENGTH = 100
# The length is a separate constraint so that a too-long key is refused as too long.
KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$"
Key = Annotated[str, Field(min_length=1, max_length=KEY_MAX_LENGTH, pattern=KEY_PATTERN)]

REQUEST_ID_MAX_LENGTH = 100
REQUEST_ID_PATTERN = r"^[!-~]+$"
RequestId = Annotated[
    str, Field(min_length=1, max_length=REQUEST_ID_MAX_LENGTH, pattern=REQUEST_ID_PATTERN)
]

# A case reference forms the workflow ID `case-<reference>` (no personal data).
REFERENCE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9-]{2,39}$"

# An IANA time zone name (`Europe/London`, `America/Argentina/Buenos_Aires`, `Etc/GMT+5`);
# whether the zone exists is checked by configuration validation (rule `time-zone`).
TIME_ZONE_MAX_LENGTH = 64

# ---------------------------------------------------------------------- free text

# Lengths of the free text fields. Notes and reasons stay in the case's audit trail, so they
# are kept to what an officer writes by hand.
NAME_MAX_LENGTH = 200  # a display name, a task, rule or topic name (a store column of 500)
DESCRIPTION_MAX_LENGTH = 4_000
NOTES_MAX_LENGTH = 10_000  # the notes of a raise
NOTE_MAX_LENGTH = 4_000  # a note on a reassignment or a completion
REASON_MAX_LENGTH = 500  # why a task is added, why a case closes

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_MULTILINE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_BIDI = re.compile(r"[\u202a-\u202e\u2066-\u2069]")

CONTROL_MESSAGE = "no control characters"
CONTROL_MULTILINE_MESSAGE = "no control characters other than newline and tab"
BIDI_MESSAGE = "no bidirectional override or isolate characters (U+202A-U+202E, U+2066-U+2069)"


def _single_line(text: str) -> str:
    return _plain(text, _CONTROL, CONTROL_MESSAGE)


def _multi_line(text: str) -> str:
    return _plain(text, _CONTROL_MULTILINE, CONTROL_MULTILINE_MESSAGE)


def _plain(text: str, control: re.Pattern[str], message: str) -> str:
    # PydanticCustomError's message has no placeholder for the input: it is never echoed.
    if control.search(text):
        raise PydanticCustomError("control_character", message)
    if _BIDI.search(text):
        raise PydanticCustomError("bidi_character", BIDI_MESSAGE)
    return text


# The free text types. (Written out rather than made by a function: mypy reads them as str.)
SingleLine = AfterValidator(_single_line)
MultiLine = AfterValidator(_multi_line)
Name = Annotated[str, Field(max_length=NAME_MAX_LENGTH), SingleLine]
Description = Annotated[str, Field(max_length=DESCRIPTION_MAX_LENGTH), MultiLine]
Notes = Annotated[str, Field(max_length=NOTES_MAX_LENGTH), MultiLine]
Note = Annotated[str, Field(max_length=NOTE_MAX_LENGTH), MultiLine]
Reason = Annotated[str, Field(max_length=REASON_MAX_LENGTH), SingleLine]
TimeZoneName = Annotated[str, Field(max_length=TIME_ZONE_MAX_LENGTH), SingleLine]


# ---------------------------------------------------------------------- counts

MAX_EXTRA_TASKS = 100  # tasks asked for when a case is raised

# Configuration: items per section, far above what a council has (an authority's whole
# housing service is some hundreds of staff); the pinned definition's size limit
# (`PINNED_DEFINITION_MAX_BYTES`, checked per topic) is the bound that matters for a case.
MAX_CALENDARS = 200
MAX_USERS = 10_000
MAX_ROLES = 2_000
MAX_ESCALATION_RULES = 2_000
MAX_ALLOCATION_RULES = 2_000
MAX_TASK_DEFINITIONS = 2_000
MAX_WORKFLOW_TYPES = 500  # versions included
MAX_TOPICS = 1_000
MAX_PATH_STEPS = 200
MAX_ABSENCES = 1_000  # per user
MAX_CLOSED_DATES = 2_000  # per calendar
MAX_REASONS = 500  # reasons of all kinds
MAX_OUTCOMES = 50  # per task definition
MAX_HOLDS = 200  # holds kept per task (and per case)
MAX_REVISIONS = 200  # target revisions kept per task (and for the case)
MAX_VERSION = 100_000
MAX_PERMISSION_ROWS = 200  # rows of the permission table (one per message)

# Configuration files: checked before any YAML is parsed (a 50 MB file took 47 s and 1.8 GB
# to validate). The sample configuration is some 30 KB in all.
CONFIG_FILE_MAX_BYTES = 2 * 1024 * 1024
CONFIG_TOTAL_MAX_BYTES = 5 * 1024 * 1024
# The nodes a YAML file may stand for once its aliases are expanded: a small file of nested
# aliases ("billion laughs") would otherwise expand into more than the memory there is.
YAML_MAX_NODES = 2_000_000

# What a case pins (`models.definition.CaseDefinition`) is carried in the pin activity's
# result and in every continue-as-new input, with the case's state, under Temporal's 2 MB
# payload limit: the pin is kept to a quarter of it.
PINNED_DEFINITION_MAX_BYTES = 512 * 1024

# ---------------------------------------------------------------------- rendering errors

_PATTERNS: dict[str, str] = {
    KEY_PATTERN: ("a key: letters, digits, '-', '_', '.' and '@', starting with a letter or digit"),
    REQUEST_ID_PATTERN: "printable ASCII characters without spaces",
    REFERENCE_PATTERN: (
        "a case reference: 3 to 40 letters, digits and '-', starting with a letter or digit"
    ),
}


def describe_validation_error(error: ValidationError) -> str:
    """`error` as one line naming each field and the rule it broke, never the value:
    `actor: at most 100 characters; note: no control characters`. Pydantic's own rendering
    (`str(error)`) quotes the input, which may be personal data or megabytes long."""
    return "; ".join(describe_error(detail) for detail in error.errors(include_url=False))


def describe_error(detail: ErrorDetails) -> str:
    """One error of a ValidationError as `field.path: rule` (see describe_validation_error)."""
    loc = error_location(detail)
    rule = error_rule(detail)
    return f"{loc}: {rule}" if loc else rule


def error_location(detail: ErrorDetails) -> str:
    """The field path of `detail` (`to.key`, `extra_tasks.3`), without the union member and
    validator tags pydantic adds to locations (`predecessors.list[str].0` reads
    `predecessors.0`). A part that is not a valid key (an unknown field or a mapping key
    taken from the input: long, or odd) is shown as `<?>`."""
    return ".".join(
        _location_part(p) for p in detail["loc"] if not (isinstance(p, str) and "[" in p)
    )


_KEY = re.compile(KEY_PATTERN)


def _location_part(part: int | str) -> str:
    if isinstance(part, int) or (len(part) <= KEY_MAX_LENGTH and _KEY.match(part)):
        return str(part)
    return "<?>"


def error_rule(detail: ErrorDetails) -> str:
    """The rule `detail` reports, in words, without its input."""
    kind = detail["type"]
    ctx: dict[str, Any] = dict(detail.get("ctx") or {})
    if kind in ("string_too_long", "too_long"):
        unit = "characters" if kind == "string_too_long" else "items"
        return f"at most {ctx.get('max_length')} {unit}"
    if kind in ("string_too_short", "too_short"):
        least = ctx.get("min_length")
        if least == 1:
            return "must not be empty"
        unit = "characters" if kind == "string_too_short" else "items"
        return f"at least {least} {unit}"
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern", ""))
        return "must be " + _PATTERNS.get(pattern, f"text matching {pattern}")
    if kind == "missing":
        return "required"
    if kind == "extra_forbidden":
        return "unknown field (extra inputs are not permitted)"
    if kind == "union_tag_invalid":
        # Pydantic's message quotes the tag found, which is part of the input.
        return f"{ctx.get('discriminator', 'the tag')} must be one of {ctx.get('expected_tags')}"
    message = detail["msg"].removeprefix("Value error, ")
    return _without_input(message, detail.get("input"))


def _without_input(message: str, value: object) -> str:
    """`message` with any quotation of the scalar `value` removed. Pydantic's built-in messages
    do not quote their input (but for the cases handled above); a validator's message might."""
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        for text in (repr(value), str(value)):
            if len(text) > 3 and text in message:
                message = message.replace(text, "<value>")
    return message
