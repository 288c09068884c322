"""The errors a configuration can have, as data: each names the file, the item and the rule.

`config_files` and `domain.config_validation` collect every problem as a `ConfigIssue`
and refuse the whole configuration at once with a `ConfigurationError`, so the person editing
the files sees the complete list instead of fixing one error per run.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TypeGuard

from models.bounds import KEY_MAX_LENGTH, KEY_PATTERN
from models.config import CONFIG_FILES

_KEY = re.compile(KEY_PATTERN)


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a configuration.

    `file` is the file holding the item (`task_definitions.yaml`; for a single-file
    configuration, `<name> (task_definitions)`), `item` the item's key (`hoi-interview`;
    workflow types add their version: `prevention-duty v2`) or `#3` (1-based position) when
    the item has no usable key, `rule` a short identifier of the rule broken (`unique-key`,
    `unknown-reference`, `cycle`, ...; `schema` and `yaml` for shape and syntax errors) and
    `message` the explanation. `line` is where the item starts in its file, when known.
    """

    file: str
    item: str
    rule: str
    message: str
    line: int | None = field(default=None, compare=False)

    def __str__(self) -> str:
        where = f" (line {self.line})" if self.line is not None else ""
        return f"{self.file}: {self.item}: {self.message}{where} [{self.rule}]"


class ConfigurationError(Exception):
    """The configuration was refused; `issues` lists every problem found."""

    def __init__(self, issues: Iterable[ConfigIssue]) -> None:
        self.issues: list[ConfigIssue] = list(issues)
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(str(issue) for issue in self.issues)


def section_file(section: str) -> str:
    """The file (of a configuration folder) that holds `section`."""
    return CONFIG_FILES.get(section, f"{section}.yaml")


def item_label(section: str, key: object, version: object, index: int) -> str:
    """How an issue names an item: its key (plus `v<version>` for a workflow type), or its
    1-based position `#<n>` in its file when it has no usable key (none, or not a valid key:
    an issue never quotes a value that broke its bound)."""
    if not is_key(key):
        return f"#{index + 1}"
    if section == "workflow_types" and isinstance(version, int) and not isinstance(version, bool):
        return f"{key} v{version}"
    return key


def is_key(value: object) -> TypeGuard[str]:
    """Whether `value` is a valid key (`models.bounds.Key`): safe to quote in an issue."""
    return isinstance(value, str) and len(value) <= KEY_MAX_LENGTH and bool(_KEY.match(value))


def shown_key(value: object) -> str:
    """`value` quoted for an issue's message when it is a valid key, else a placeholder: a
    huge or odd value is never echoed."""
    return repr(value) if is_key(value) else "(not shown: not a valid key)"
