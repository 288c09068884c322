"""Read a configuration from YAML and refuse it whole, listing every problem, when it is wrong.

A configuration is either a folder holding one file per section (the names in
`models.config.CONFIG_FILES`; a missing file is an empty section) or a single YAML file whose
top-level keys are the section names. Each section is a list of items.

Problems come in three layers and all of them are reported together, each naming the file,
the item and the rule (see `domain.config_errors`):

1. YAML syntax (rule `yaml`), including a key written twice in one mapping, which YAML would
   otherwise resolve silently by keeping the last value;
2. the schema (rule `schema`): every item is checked on its own against its pydantic model,
   so one bad item does not hide the errors of the others;
3. the semantic rules of `domain.config_validation` (`load_and_validate` only), run on the
   items that passed the schema; references to items that failed it are not reported again.

YAML 1.1 reads `17:00` as the base-60 integer 1020, which pydantic would then take as a
number of seconds (00:17). This loader reads such values as strings, as YAML 1.2 does, so
opening hours can be written unquoted.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from domain.config_errors import ConfigIssue, ConfigurationError, item_label, section_file
from domain.config_validation import validate_configuration
from models.config import (
    CONFIG_FILES,
    AllocationRuleConfig,
    CalendarConfig,
    Configuration,
    EscalationRuleConfig,
    RoleConfig,
    TaskDefinitionConfig,
    TopicConfig,
    UserConfig,
    WorkflowTypeConfig,
)

__all__ = ["ConfigIssue", "ConfigurationError", "load_and_validate", "load_configuration"]

_ITEM_MODELS: dict[str, type[BaseModel]] = {
    "calendars": CalendarConfig,
    "users": UserConfig,
    "roles": RoleConfig,
    "escalation_rules": EscalationRuleConfig,
    "allocation_rules": AllocationRuleConfig,
    "task_definitions": TaskDefinitionConfig,
    "workflow_types": WorkflowTypeConfig,
    "topics": TopicConfig,
}
assert set(_ITEM_MODELS) == set(CONFIG_FILES) == set(Configuration.model_fields)

# An issue that concerns a whole file rather than one of its items.
WHOLE_FILE = "-"


def load_configuration(path: Path) -> Configuration:
    """Read the configuration at `path` (a folder or a single file), checking YAML syntax and
    the schema. Raises ConfigurationError listing every problem."""
    loaded = _load(path)
    if loaded.issues:
        raise ConfigurationError(loaded.issues)
    return loaded.config


def load_and_validate(path: Path, today: date) -> Configuration:
    """Read the configuration at `path` and validate it as of `today` (see
    `domain.config_validation`). Raises ConfigurationError listing every problem: syntax,
    schema and semantic."""
    loaded = _load(path)
    semantic = validate_configuration(loaded.config, today, unparsed=loaded.unparsed)
    issues = loaded.issues + [loaded.place(issue) for issue in semantic]
    if issues:
        raise ConfigurationError(issues)
    return loaded.config


# ---------------------------------------------------------------------- YAML

_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_STR = "tag:yaml.org,2002:str"
# Base-60 numbers (YAML 1.1 only): `17:00`, `1:30:00`, `-1:30`.
_SEXAGESIMAL = re.compile(r"^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$")


class _Loader(_BaseLoader):  # type: ignore[misc, valid-type]
    """Safe loading, with base-60 numbers read as strings and repeated keys recorded."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.repeated_keys: list[tuple[str, int]] = []

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                if key_node.value in seen:
                    self.repeated_keys.append((key_node.value, key_node.start_mark.line + 1))
                seen.add(key_node.value)
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return mapping


_Loader.yaml_implicit_resolvers = {
    first: list(resolvers) for first, resolvers in _BaseLoader.yaml_implicit_resolvers.items()
}
for _first in "+-0123456789":
    _Loader.yaml_implicit_resolvers.setdefault(_first, []).insert(0, (_STR, _SEXAGESIMAL))


@dataclass
class _Document:
    data: Any = None
    node: yaml.Node | None = None


def _parse(text: str, file: str, issues: list[ConfigIssue]) -> _Document | None:
    """The document in `text` with its node tree (for line numbers), or None after recording
    the syntax errors."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        what = ": ".join(p for p in (error.context, error.problem) if p) or str(error)
        column = f" at column {mark.column + 1}" if mark is not None else ""
        issues.append(
            ConfigIssue(
                file,
                WHOLE_FILE,
                "yaml",
                f"invalid YAML: {what}{column}",
                mark.line + 1 if mark is not None else None,
            )
        )
        return None
    except yaml.YAMLError as error:
        issues.append(ConfigIssue(file, WHOLE_FILE, "yaml", f"invalid YAML: {error}"))
        return None
    finally:
        loader.dispose()
    for key, line in loader.repeated_keys:
        issues.append(
            ConfigIssue(
                file,
                WHOLE_FILE,
                "yaml",
                f"key {key!r} is repeated in one mapping (YAML would silently keep the last)",
                line,
            )
        )
    if loader.repeated_keys:
        return None
    return _Document(data, node)


# ---------------------------------------------------------------------- loading


@dataclass
class _Loaded:
    config: Configuration = field(default_factory=Configuration)
    issues: list[ConfigIssue] = field(default_factory=list)
    unparsed: dict[str, frozenset[str] | None] = field(default_factory=dict)
    # How issues name each section's file, and where each item starts.
    files: dict[str, str] = field(default_factory=dict)
    lines: dict[tuple[str, str], int] = field(default_factory=dict)

    def place(self, issue: ConfigIssue) -> ConfigIssue:
        """A validation issue (which names sections by their folder file name) with this
        configuration's file name and the item's line."""
        section = _SECTION_OF_FILE.get(issue.file)
        if section is None:
            return issue
        return ConfigIssue(
            self.files.get(section, issue.file),
            issue.item,
            issue.rule,
            issue.message,
            self.lines.get((section, issue.item)),
        )


_SECTION_OF_FILE = {section_file(section): section for section in CONFIG_FILES}


def _load(path: Path) -> _Loaded:
    loaded = _Loaded()
    if path.is_dir():
        sections = _read_folder(path, loaded)
    elif path.is_file():
        sections = _read_single_file(path, loaded)
    else:
        raise ConfigurationError(
            [ConfigIssue(str(path), WHOLE_FILE, "not-found", "no such file or folder")]
        )
    items: dict[str, list[BaseModel]] = {}
    for section, (data, node) in sections.items():
        items[section] = _read_items(section, data, node, loaded)
    # The items are validated models already: pydantic keeps them as they are.
    loaded.config = Configuration.model_validate(items)
    return loaded


def _read_folder(folder: Path, loaded: _Loaded) -> dict[str, tuple[Any, yaml.Node | None]]:
    sections: dict[str, tuple[Any, yaml.Node | None]] = {}
    expected = set(CONFIG_FILES.values())
    for other in sorted(folder.iterdir()):
        if other.suffix in (".yaml", ".yml") and other.name not in expected:
            loaded.issues.append(
                ConfigIssue(
                    other.name,
                    WHOLE_FILE,
                    "unknown-file",
                    "not a configuration file; expected any of " + ", ".join(CONFIG_FILES.values()),
                )
            )
    for section, name in CONFIG_FILES.items():
        loaded.files[section] = name
        file = folder / name
        if not file.exists():
            continue
        document = _read_file(file, name, loaded.issues)
        if document is None:
            loaded.unparsed[section] = None
            continue
        sections[section] = (document.data, document.node)
    return sections


def _read_single_file(path: Path, loaded: _Loaded) -> dict[str, tuple[Any, yaml.Node | None]]:
    for section in CONFIG_FILES:
        loaded.files[section] = f"{path.name} ({section})"
    document = _read_file(path, path.name, loaded.issues)
    if document is None:
        loaded.unparsed.update(dict.fromkeys(CONFIG_FILES))
        return {}
    if document.data is None:
        return {}
    if not isinstance(document.data, dict):
        loaded.issues.append(
            ConfigIssue(
                path.name,
                WHOLE_FILE,
                "schema",
                "expected a mapping of sections (" + ", ".join(CONFIG_FILES) + ")",
                1,
            )
        )
        loaded.unparsed.update(dict.fromkeys(CONFIG_FILES))
        return {}
    nodes: dict[str, tuple[int, yaml.Node]] = {}
    if isinstance(document.node, yaml.MappingNode):
        for key_node, value_node in document.node.value:
            nodes[str(key_node.value)] = (key_node.start_mark.line + 1, value_node)
    sections: dict[str, tuple[Any, yaml.Node | None]] = {}
    for key, value in document.data.items():
        line, node = nodes.get(str(key), (None, None))
        if key not in CONFIG_FILES:
            loaded.issues.append(
                ConfigIssue(
                    path.name,
                    str(key),
                    "schema",
                    f"unknown section {key!r}; expected any of " + ", ".join(CONFIG_FILES),
                    line,
                )
            )
            continue
        sections[key] = (value, node)
    return sections


def _read_file(path: Path, name: str, issues: list[ConfigIssue]) -> _Document | None:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        issues.append(ConfigIssue(name, WHOLE_FILE, "yaml", f"cannot read the file: {error}"))
        return None
    return _parse(text, name, issues)


def _read_items(
    section: str, data: Any, node: yaml.Node | None, loaded: _Loaded
) -> list[BaseModel]:
    """The items of `section` that pass the schema; the others become issues, and their keys
    go to `loaded.unparsed`."""
    file = loaded.files[section]
    if data is None:
        return []
    if not isinstance(data, list):
        line = node.start_mark.line + 1 if node is not None else None
        loaded.issues.append(
            ConfigIssue(
                file,
                WHOLE_FILE,
                "schema",
                f"expected a list of items, found {_kind(data)}",
                line,
            )
        )
        loaded.unparsed[section] = None
        return []
    item_nodes: Sequence[yaml.Node] = node.value if isinstance(node, yaml.SequenceNode) else []
    model = _ITEM_MODELS[section]
    good: list[BaseModel] = []
    failed: set[str] = set()
    for index, raw in enumerate(data):
        fields = raw if isinstance(raw, dict) else {}
        label = item_label(section, fields.get("key"), fields.get("version"), index)
        item_node = item_nodes[index] if index < len(item_nodes) else None
        if item_node is not None:
            loaded.lines.setdefault((section, label), item_node.start_mark.line + 1)
        try:
            good.append(model.model_validate(raw))
        except ValidationError as error:
            for detail in error.errors(include_url=False):
                where = _node_at(item_node, detail["loc"])
                loaded.issues.append(
                    ConfigIssue(
                        file,
                        label,
                        "schema",
                        _schema_message(detail),
                        where.start_mark.line + 1 if where is not None else None,
                    )
                )
            key = fields.get("key")
            if isinstance(key, str):
                failed.add(key)
    if failed:
        loaded.unparsed[section] = frozenset(failed)
    return good


def _schema_message(detail: ErrorDetails) -> str:
    """A pydantic error as `field.path: message`, without the union member tags pydantic puts
    in locations (`predecessors.list[str].0` reads `predecessors.0`)."""
    loc = ".".join(str(p) for p in detail["loc"] if not (isinstance(p, str) and "[" in p))
    message = detail["msg"].removeprefix("Value error, ")
    if detail["type"] == "extra_forbidden":
        message = "unknown field (extra inputs are not permitted)"
    elif not isinstance(detail.get("input"), dict | list) and detail["type"] != "missing":
        message += f" (got {detail.get('input')!r})"
    return f"{loc}: {message}" if loc else message


def _node_at(node: yaml.Node | None, loc: Sequence[int | str]) -> yaml.Node | None:
    """The deepest node of `node` along the pydantic location `loc` (for its line)."""
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if key_node.value == part:
                    node = value_node
                    break
            else:
                return node
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if not 0 <= part < len(node.value):
                return node
            node = node.value[part]
        elif isinstance(part, str) and "[" in part:
            continue  # a union member tag
        else:
            return node
    return node


def _kind(data: object) -> str:
    if isinstance(data, dict):
        return "a mapping"
    if isinstance(data, str):
        return "a string"
    return f"a {type(data).__name__}"
