"""Read a configuration from YAML and refuse it whole, listing every problem, when it is wrong.

A configuration is either a folder holding one file per section (the names in
`models.config.CONFIG_FILES`; a missing file is an empty section) or a single YAML file whose
top-level keys are the section names. Each section is a list of items.

Problems come in three layers and all of them are reported together, each naming the file,
the item and the rule (see `domain.config_errors`):

1. YAML syntax (rule `yaml`), including a key written twice in one mapping, which YAML would
   otherwise resolve silently by keeping the last value;
2. the schema (rule `schema`): every item is checked on its own against its pydantic model,
   so one bad item does not hide the errors of the others; a message names the field and the
   rule, never the value (which may be a member of staff's name, or megabytes long);
3. the semantic rules of `domain.config_validation` (`load_and_validate` only), run on the
   items that passed the schema; references to items that failed it are not reported again.

Before any of these, the sizes (rule `size-limit`, `models.bounds`): a file over
`CONFIG_FILE_MAX_BYTES`, a folder over `CONFIG_TOTAL_MAX_BYTES` in all, or a single file over
`CONFIG_TOTAL_MAX_BYTES` is refused before its YAML is parsed; a file whose aliases expand to
more than `YAML_MAX_NODES` nodes, and a section with more items than `MAX_ITEMS` allows, are
refused before their items are read.

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

from domain.config_errors import (
    ConfigIssue,
    ConfigurationError,
    item_label,
    section_file,
    shown_key,
)
from domain.config_validation import validate_configuration
from models.bounds import (
    CONFIG_FILE_MAX_BYTES,
    CONFIG_TOTAL_MAX_BYTES,
    YAML_MAX_NODES,
    describe_error,
)
from models.config import (
    CONFIG_FILES,
    MAX_ITEMS,
    AlertTemplateConfig,
    AllocationRuleConfig,
    CalendarConfig,
    Configuration,
    EscalationRuleConfig,
    PermissionConfig,
    ReasonConfig,
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
    "reasons": ReasonConfig,
    "alert_templates": AlertTemplateConfig,
    "permissions": PermissionConfig,
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
        if node is not None and (expanded := _expanded_nodes(node)) is not None:
            issues.append(ConfigIssue(file, WHOLE_FILE, "size-limit", expanded))
            return None
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
    except RecursionError:
        issues.append(ConfigIssue(file, WHOLE_FILE, "yaml", "invalid YAML: nested too deeply"))
        return None
    finally:
        loader.dispose()
    for key, line in loader.repeated_keys:
        issues.append(
            ConfigIssue(
                file,
                WHOLE_FILE,
                "yaml",
                f"key {shown_key(key)} is repeated in one mapping "
                "(YAML would silently keep the last)",
                line,
            )
        )
    if loader.repeated_keys:
        return None
    return _Document(data, node)


def _expanded_nodes(root: yaml.Node) -> str | None:
    """Why the document `root` is too large once its aliases are expanded (more than
    `YAML_MAX_NODES` nodes, or an alias inside its own anchor), or None. An alias is the node
    it names, so a node's expanded size is counted once and reused (iteratively: the nesting
    may be deep)."""
    size: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    open_nodes: set[int] = set()
    while stack:
        node, children_done = stack.pop()
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        if children_done:
            open_nodes.discard(id(node))
            size[id(node)] = 1 + sum(size[id(c)] for c in children)
            if size[id(node)] > YAML_MAX_NODES:
                return (
                    f"the YAML expands to more than {YAML_MAX_NODES:,} values (through its "
                    "aliases), over the limit"
                )
            continue
        if id(node) in size:
            continue
        open_nodes.add(id(node))
        stack.append((node, True))
        for child in children:
            if id(child) in open_nodes:
                return "an alias refers to a node that contains it (a recursive structure)"
            if id(child) not in size:
                stack.append((child, False))
    return None


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
    present = {s: folder / n for s, n in CONFIG_FILES.items() if (folder / n).exists()}
    total = sum(_file_size(file) for file in present.values())
    for section, name in CONFIG_FILES.items():
        loaded.files[section] = name
    if total > CONFIG_TOTAL_MAX_BYTES:
        loaded.issues.append(
            ConfigIssue(
                folder.name or str(folder),
                WHOLE_FILE,
                "size-limit",
                f"the configuration files are {_megabytes(total)} in all, over the limit of "
                f"{_megabytes(CONFIG_TOTAL_MAX_BYTES)}",
            )
        )
        loaded.unparsed.update(dict.fromkeys(CONFIG_FILES))
        return sections
    for section, file in present.items():
        name = CONFIG_FILES[section]
        document = _read_file(file, name, loaded.issues, CONFIG_FILE_MAX_BYTES)
        if document is None:
            loaded.unparsed[section] = None
            continue
        sections[section] = (document.data, document.node)
    return sections


def _read_single_file(path: Path, loaded: _Loaded) -> dict[str, tuple[Any, yaml.Node | None]]:
    for section in CONFIG_FILES:
        loaded.files[section] = f"{path.name} ({section})"
    # One file holds every section: it has the limit of a whole configuration.
    document = _read_file(path, path.name, loaded.issues, CONFIG_TOTAL_MAX_BYTES)
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
                    f"unknown section {shown_key(key)}; expected any of " + ", ".join(CONFIG_FILES),
                    line,
                )
            )
            continue
        sections[key] = (value, node)
    return sections


def _read_file(
    path: Path, name: str, issues: list[ConfigIssue], max_bytes: int
) -> _Document | None:
    size = _file_size(path)
    if size > max_bytes:
        # Refused unread: YAML and pydantic would take seconds and gigabytes on a huge file.
        issues.append(
            ConfigIssue(
                name,
                WHOLE_FILE,
                "size-limit",
                f"the file is {_megabytes(size)}, over the limit of {_megabytes(max_bytes)}",
            )
        )
        return None
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
    if len(data) > MAX_ITEMS[section]:
        line = node.start_mark.line + 1 if node is not None else None
        loaded.issues.append(
            ConfigIssue(
                file,
                WHOLE_FILE,
                "size-limit",
                f"{len(data):,} items, over the limit of {MAX_ITEMS[section]:,} for {section}",
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
        # A permission row is named by its message.
        named = fields.get("message") if section == "permissions" else fields.get("key")
        label = item_label(section, named, fields.get("version"), index)
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
                        describe_error(detail),
                        where.start_mark.line + 1 if where is not None else None,
                    )
                )
            key = fields.get("key")
            if isinstance(key, str):
                failed.add(key)
    if failed:
        loaded.unparsed[section] = frozenset(failed)
    return good


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


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0  # reading it reports the error


def _megabytes(size: int) -> str:
    # Two decimals: a file just over its limit must not read "2.0 MB, over the limit of 2.0 MB".
    return f"{size / (1024 * 1024):.2f} MB"


def _kind(data: object) -> str:
    if isinstance(data, dict):
        return "a mapping"
    if isinstance(data, str):
        return "a string"
    return f"a {type(data).__name__}"
