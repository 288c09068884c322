"""Semantic validation of a whole configuration: the rules the schema cannot express.

`validate_configuration` returns every problem found (an empty list means valid); the loader
turns a non-empty list into a `ConfigurationError`. The rules, each with its `rule` id:

- `unique-key`: keys are unique within a section; workflow types by (key, version).
- `reserved-key`: no task definition is keyed `case`, the key that stands for the case itself.
- `overlapping-versions`: the versions of one workflow type are in force on disjoint dates.
- `effective-dates`, `absence-dates`: a range's start is not after its end.
- `unknown-reference`: every key an item names exists (escalation rules' roles, allocation
  rules' roles, SLA calendars and rules, follow-on actions, path tasks and predecessors,
  optional tasks, allocation by task, topics' workflow types).
- `cycle`: the predecessors of a task path do not loop (the message names the loop).
- `task-twice-in-path`, `optional-task-in-path`, `add-task-in-path`: a task definition
  appears at most once on a case, so it is in a path once, an optional task is not also in
  the path, and a follow-on never "adds" a task the path already created.
- `amber-not-shorter`: amber is shorter than the target, compared calendar-independently
  (minutes, with a day = 1440 minutes, a week = 7 days, a month = 28 days).
- `statutory-on-working-days`: statutory periods run in calendar days, so a statutory SLA is
  measured on a 24x7 calendar (docs/domain.md, "SLA arithmetic").
- `time-zone`, `opening-hours`, `weekday`: calendars are usable.
- `empty-escalation-rule`: an escalation rule alerts someone.
- `staff-in-directory`: the configuration lists no staff (`users`) and no role members: they
  live in the staff directory (`store.directory`, fed by `python -m starter staff ...`).
- `permission-table`: who may send each message is the permission table
  (`permissions.yaml`): one row per message name of `domain.messages`, each grant a known
  kind or `role:KEY` of a configured role; roles carry no legacy `permissions`.
- `no-workflow-type-in-force`: a topic in force in the coming year always has a workflow type
  version in force.
- `targets-not-synchronised`: no task of a path can fall due after the case target (below).
- `size-limit`: the definition a case of a topic pins stays under
  `models.bounds.PINNED_DEFINITION_MAX_BYTES` of JSON (users, roles and rules are pinned
  whole), so Temporal never refuses it (its payload limit is 2 MB). The loader reports the
  other size limits (file sizes, items per section) under the same rule.

Synchronised targets (docs/domain.md): for every workflow type version in force at some point in
the 366 days from `today`, every start date in that window on which it is in force, and three
start instants that day (the case calendar's opening, one minute before its closing, and its
closing, local time), each path task's latest due is computed with every predecessor running
to its own target: a task starts at the case start when it has no predecessors, else at the
latest predecessor due; a lag is counted from there on the task's calendar (the case
calendar when the task has no SLA), as the planner does; a task without an SLA completes at
its start. A task whose due passes the case target is reported once per workflow type
version (the first failing start), unless its SLA says `may_exceed_case_target`.

Pure apart from resolving bank holidays (through `domain.case_definition`).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from domain import alert_templates
from domain.case_definition import pinned_definition_sizes, sla_calendars, too_large_message
from domain.config_errors import ConfigIssue, item_label, section_file
from domain.sla_calendar import SlaCalendar
from domain.task_paths import (
    added_task,
    find_cycles,
    reachable_tasks,
    resolve_predecessors,
    topological_order,
)
from models.bounds import PINNED_DEFINITION_MAX_BYTES
from models.case import CASE_TARGET
from models.config import (
    REASON_KINDS,
    ROLE_GRANT_PREFIX,
    STATUTORY_EXTENSION,
    CalendarConfig,
    Configuration,
    Key,
    SlaConfig,
    TaskDefinitionConfig,
    WorkflowTypeConfig,
)
from models.period import Period

_K = TypeVar("_K", bound=object)

# How far ahead the synchronised-targets check looks, in start dates (today included).
WINDOW_DAYS = 366

# For comparing an amber with its target whatever their calendars: a day is 1440 minutes, a
# week 7 days, a month 28 days (its shortest length, so "1 month amber, 4 weeks target" is
# refused as not shorter).
_MINUTES_PER: dict[str, int] = {
    "minutes": 1,
    "hours": 60,
    "days": 1440,
    "weeks": 7 * 1440,
    "months": 28 * 1440,
}

_NOUN: dict[str, str] = {
    "calendars": "calendar",
    "users": "user",
    "roles": "role",
    "escalation_rules": "escalation rule",
    "allocation_rules": "allocation rule",
    "task_definitions": "task definition",
    "workflow_types": "workflow type",
    "topics": "topic",
    "reasons": "reason",
    "alert_templates": "alert template",
    "permissions": "permission rule",
}

# Sections whose items, or some of them, could not be read: None means the whole section is
# unknown (its file did not parse), a set holds the keys of items that failed the schema.
# References into them are not reported, because the item may well exist.
Unparsed = Mapping[str, frozenset[str] | None]


def period_minutes(period: Period) -> int:
    """A calendar-independent length of `period` in minutes, for comparing periods."""
    return period.amount * _MINUTES_PER[period.unit]


def shorter(a: Period, b: Period) -> bool:
    """Whether `a` is shorter than `b`: amounts when the units match, else minutes."""
    if a.unit == b.unit:
        return a.amount < b.amount
    return period_minutes(a) < period_minutes(b)


def validate_configuration(
    config: Configuration, today: date, *, unparsed: Unparsed | None = None
) -> list[ConfigIssue]:
    """Every semantic problem of `config`, in file order (empty when it is valid).

    `today` starts the year over which synchronised targets and topic coverage are checked.
    `unparsed` lists items the loader could not read (see `Unparsed`), so that their absence
    does not cause a cascade of unknown-reference errors.
    """
    v = _Validator(config, today, unparsed or {})
    v.run()
    order = {section: i for i, section in enumerate(_NOUN)}
    # Stable: within a file, issues stay in the order items were checked.
    return sorted(v.issues, key=lambda i: order.get(v.section_of.get(i.file, ""), len(order)))


@dataclass
class _Validator:
    config: Configuration
    today: date
    unparsed: Unparsed
    issues: list[ConfigIssue] = field(default_factory=list)
    section_of: dict[str, str] = field(default_factory=dict)
    keys: dict[str, set[Key]] = field(default_factory=dict)
    bad_calendars: set[Key] = field(default_factory=set)
    # Workflow types (by id) whose path is too broken to compute targets on.
    broken_paths: set[int] = field(default_factory=set)

    def run(self) -> None:
        c = self.config
        self.section_of = {section_file(s): s for s in _NOUN}
        self.keys = {
            "calendars": {x.key for x in c.calendars},
            "users": {x.key for x in c.users},
            "roles": {x.key for x in c.roles},
            "escalation_rules": {x.key for x in c.escalation_rules},
            "allocation_rules": {x.key for x in c.allocation_rules},
            "task_definitions": {x.key for x in c.task_definitions},
            "workflow_types": {x.key for x in c.workflow_types},
            "topics": {x.key for x in c.topics},
            "reasons": {x.key for x in c.reasons},
            "alert_templates": {x.key for x in c.alert_templates},
            "permissions": {x.message for x in c.permissions},
        }
        for section in _NOUN:
            if section not in ("workflow_types", "reasons", "permissions"):
                self.unique_keys(section, [x.key for x in getattr(c, section)])
        self.workflow_type_versions()
        self.calendars()
        self.users()
        self.roles()
        self.escalation_rules()
        self.allocation_rules()
        self.task_definitions()
        for wt in c.workflow_types:
            self.workflow_type(wt)
        self.topics()
        self.reasons()
        self.alert_templates()
        self.permissions()
        self.synchronised_targets()
        self.pinned_sizes()

    # ------------------------------------------------------------------ helpers

    def add(self, section: str, item: str, rule: str, message: str) -> None:
        self.issues.append(ConfigIssue(section_file(section), item, rule, message))

    def known(self, section: str, key: Key) -> bool:
        if key in self.keys[section]:
            return True
        if section not in self.unparsed:
            return False
        failed = self.unparsed[section]
        return failed is None or key in failed

    def readable(self, section: str, key: Key) -> bool:
        """Whether the item `key` of `section` was read (so its content can be relied on)."""
        return key in self.keys[section]

    def ref(self, section: str, item: str, where: str, target: str, key: Key | None) -> bool:
        """Check that `key` names an item of `target`; report it if not. True if it does."""
        if key is None or self.known(target, key):
            return True
        hint = difflib.get_close_matches(key, sorted(self.keys[target]), n=1)
        did_you_mean = f" (did you mean {hint[0]!r}?)" if hint else ""
        self.add(
            section,
            item,
            "unknown-reference",
            f"{where}: {_NOUN[target]} {key!r} is not defined in "
            f"{section_file(target)}{did_you_mean}",
        )
        return False

    def unique_keys(self, section: str, keys: Sequence[Key]) -> None:
        for key, where in _duplicates(keys).items():
            positions = ", ".join(f"#{i + 1}" for i in where)
            self.add(
                section,
                item_label(section, key, None, where[0]),
                "unique-key",
                f"key {key!r} is used by {len(where)} items ({positions}); keys must be unique",
            )

    def effective(self, section: str, item: str, start: date, end: date | None) -> None:
        if end is not None and end < start:
            self.add(
                section,
                item,
                "effective-dates",
                f"effective_to {end.isoformat()} is before effective_from {start.isoformat()}",
            )

    # ------------------------------------------------------------------ sections

    def reasons(self) -> None:
        """Reason keys are unique within their kind; a statutory SLA that may be revised needs
        the revision reason `extension_agreed_in_writing` (the only one it accepts); a task
        definition's outcomes have unique keys."""
        c = self.config
        for (kind, key), where in _duplicates([(r.kind, r.key) for r in c.reasons]).items():
            positions = ", ".join(f"#{i + 1}" for i in where)
            self.add(
                "reasons",
                key,
                "unique-key",
                f"{kind} reason {key!r} is defined {len(where)} times ({positions}); keys "
                "must be unique within a kind",
            )
        lists = c.reason_lists()
        for kind, keys in lists.items():
            if c.reasons and not keys:
                self.add(
                    "reasons",
                    "-",
                    "missing-reasons",
                    f"no {kind} reasons: each kind ({', '.join(REASON_KINDS)}) needs at least "
                    "one, or leave reasons.yaml out for the built-in lists",
                )
        needs_extension = [
            td.key
            for td in c.task_definitions
            if td.sla is not None and td.sla.statutory and td.sla.target_may_be_revised
        ] + [
            _wt_label(wt)
            for wt in c.workflow_types
            if wt.case_sla.statutory and wt.case_sla.target_may_be_revised
        ]
        if needs_extension and STATUTORY_EXTENSION not in lists["revision"]:
            self.add(
                "reasons",
                "-",
                "statutory-extension",
                f"statutory targets that may be revised ({', '.join(needs_extension)}) are "
                f"revised only with the revision reason {STATUTORY_EXTENSION!r}, which is "
                "not defined",
            )
        for td in c.task_definitions:
            for key, where in _duplicates([o.key for o in td.outcomes]).items():
                self.add(
                    "task_definitions",
                    td.key,
                    "unique-key",
                    f"outcome {key!r} is listed {len(where)} times; outcome keys must be unique",
                )

    def workflow_type_versions(self) -> None:
        wts = self.config.workflow_types
        for (key, version), where in _duplicates([(w.key, w.version) for w in wts]).items():
            positions = ", ".join(f"#{i + 1}" for i in where)
            self.add(
                "workflow_types",
                _wt_label(wts[where[0]]),
                "unique-key",
                f"version {version} of workflow type {key!r} is defined {len(where)} times "
                f"({positions}); (key, version) must be unique",
            )
        by_key: dict[Key, list[WorkflowTypeConfig]] = {}
        for w in wts:
            by_key.setdefault(w.key, []).append(w)
        for versions in by_key.values():
            for i, a in enumerate(versions):
                for b in versions[i + 1 :]:
                    if a.version == b.version or not _overlap(a, b):
                        continue
                    self.add(
                        "workflow_types",
                        _wt_label(b),
                        "overlapping-versions",
                        f"in force {_span(b)}, which overlaps version {a.version} "
                        f"({_span(a)}); versions of one workflow type must be in force on "
                        "different dates",
                    )

    def calendars(self) -> None:
        for cal in self.config.calendars:
            before = len(self.issues)
            self.calendar(cal)
            if len(self.issues) > before:
                self.bad_calendars.add(cal.key)

    def calendar(self, cal: CalendarConfig) -> None:
        s, item = "calendars", cal.key
        try:
            ZoneInfo(cal.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            self.add(
                s,
                item,
                "time-zone",
                f"time_zone: {cal.time_zone!r} is not a known IANA time zone "
                "(e.g. 'Europe/London')",
            )
        if cal.opening.tzinfo is not None or cal.closing.tzinfo is not None:
            self.add(
                s,
                item,
                "opening-hours",
                "opening and closing are local wall-clock times like '09:00' (no offset)",
            )
        elif not cal.opening < cal.closing:
            self.add(
                s,
                item,
                "opening-hours",
                f"opening {cal.opening:%H:%M} must be before closing {cal.closing:%H:%M}",
            )
        bad = sorted({d for d in cal.working_weekdays if not 0 <= d <= 6})
        if bad:
            self.add(
                s,
                item,
                "weekday",
                f"working_weekdays: {bad} are not weekdays (0 = Monday .. 6 = Sunday)",
            )
        elif cal.kind == "working_days" and not cal.working_weekdays:
            self.add(s, item, "weekday", "working_weekdays: a working calendar needs a day")

    def users(self) -> None:
        # Staff are the live directory's (DOMAIN.md "Staff directory"), not the rules'.
        if self.config.users:
            self.add(
                "users",
                "-",
                "staff-in-directory",
                f"{len(self.config.users)} users listed: staff live in the staff directory, "
                "not the configuration; remove users.yaml and feed the directory with "
                "`python -m starter staff import FILE.csv` (see README)",
            )

    def roles(self) -> None:
        for role in self.config.roles:
            if role.members:
                self.add(
                    "roles",
                    role.key,
                    "staff-in-directory",
                    "members: role members live in the staff directory; remove them and use "
                    "`python -m starter staff role add-member` or the import's roles column",
                )
            if role.permissions:
                self.add(
                    "roles",
                    role.key,
                    "permission-table",
                    "permissions: who may send each message is the permission table "
                    f"(permissions.yaml); grant `role:{role.key}` there instead",
                )

    def permissions(self) -> None:
        # Imported here: the message table imports the rules, which import much of the core.
        from domain.messages import MESSAGE_NAMES

        seen: set[str] = set()
        for row in self.config.permissions:
            if row.message in seen:
                self.add(
                    "permissions",
                    row.message,
                    "unique-key",
                    f"message {row.message!r} has more than one row; one row per message",
                )
            seen.add(row.message)
            if row.message not in MESSAGE_NAMES:
                hint = difflib.get_close_matches(row.message, MESSAGE_NAMES, n=1)
                did_you_mean = f" (did you mean {hint[0]!r}?)" if hint else ""
                self.add(
                    "permissions",
                    row.message,
                    "permission-table",
                    f"message: {row.message!r} is not a message{did_you_mean}; messages: "
                    + ", ".join(MESSAGE_NAMES),
                )
            for grant in row.grants:
                if grant.startswith(ROLE_GRANT_PREFIX):
                    self.ref(
                        "permissions",
                        row.message,
                        "grants",
                        "roles",
                        grant[len(ROLE_GRANT_PREFIX) :],
                    )

    def escalation_rules(self) -> None:
        for rule in self.config.escalation_rules:
            for role in rule.roles:
                self.ref("escalation_rules", rule.key, "roles", "roles", role)
            if not (rule.roles or rule.users or rule.task_owner or rule.case_owner):
                self.add(
                    "escalation_rules",
                    rule.key,
                    "empty-escalation-rule",
                    "alerts nobody: name roles or users, or set task_owner or case_owner",
                )

    def alert_templates(self) -> None:
        """Each template parses and names only the variables an alert has; one default and
        at most one override per (indicator, escalation rule)."""
        seen: dict[tuple[str, Key | None], Key] = {}
        for t in self.config.alert_templates:
            self.ref(
                "alert_templates", t.key, "escalation_rule", "escalation_rules", t.escalation_rule
            )
            slot = (t.indicator, t.escalation_rule)
            if slot in seen:
                scope = f"rule {t.escalation_rule!r}" if t.escalation_rule else "the default"
                self.add(
                    "alert_templates",
                    t.key,
                    "duplicate-template",
                    f"{t.indicator} already has a template for {scope}: {seen[slot]!r}",
                )
            else:
                seen[slot] = t.key
            for part in ("subject", "body"):
                problem = alert_templates.template_problem(getattr(t, part))
                if problem is not None:
                    self.add("alert_templates", t.key, "template", f"{part}: {problem}")

    def allocation_rules(self) -> None:
        for rule in self.config.allocation_rules:
            self.ref("allocation_rules", rule.key, "role", "roles", rule.role)
            self.effective("allocation_rules", rule.key, rule.effective_from, rule.effective_to)

    def task_definitions(self) -> None:
        for task in self.config.task_definitions:
            if task.key == CASE_TARGET:
                self.add(
                    "task_definitions",
                    task.key,
                    "reserved-key",
                    f"the key {CASE_TARGET!r} stands for the case itself (its owner, its "
                    "target); name the task definition otherwise",
                )
            if task.sla is not None:
                self.sla("task_definitions", task.key, "sla", task.sla)

    def sla(self, section: str, item: str, where: str, sla: SlaConfig) -> None:
        self.ref(section, item, f"{where}.calendar", "calendars", sla.calendar)
        self.ref(
            section, item, f"{where}.amber_escalation", "escalation_rules", sla.amber_escalation
        )
        self.ref(
            section,
            item,
            f"{where}.target_exceeded_escalation",
            "escalation_rules",
            sla.target_exceeded_escalation,
        )
        if sla.follow_on is not None:
            f = sla.follow_on
            w = f"{where}.follow_on"
            self.ref(section, item, f"{w}.escalation_rule", "escalation_rules", f.escalation_rule)
            self.ref(section, item, f"{w}.reassign_rule", "allocation_rules", f.reassign_rule)
            self.ref(section, item, f"{w}.add_task", "task_definitions", f.add_task)
        if sla.amber is not None and not shorter(sla.amber, sla.target):
            self.add(
                section,
                item,
                "amber-not-shorter",
                f"{where}.amber: the amber warning ({sla.amber}) must be shorter than the "
                f"target ({sla.target})",
            )
        calendar = next((c for c in self.config.calendars if c.key == sla.calendar), None)
        if sla.statutory and calendar is not None and calendar.kind != "24x7":
            self.add(
                section,
                item,
                "statutory-on-working-days",
                f"{where}: a statutory period runs in calendar days, so it is measured on a "
                f"24x7 calendar, not on {calendar.key!r} ({calendar.kind})",
            )

    def workflow_type(self, wt: WorkflowTypeConfig) -> None:
        s, item = "workflow_types", _wt_label(wt)
        self.effective(s, item, wt.effective_from, wt.effective_to)
        path_tasks = [step.task for step in wt.path]
        broken = False

        # The tasks: known, and each at most once.
        positions: dict[Key, list[int]] = {}
        for i, step in enumerate(wt.path):
            positions.setdefault(step.task, []).append(i)
            if not self.ref(s, item, f"path[{i}].task", "task_definitions", step.task):
                broken = True
            elif not self.readable("task_definitions", step.task):
                broken = True  # it exists but failed the schema: its SLA is unknown
        for key, places in positions.items():
            if len(places) > 1:
                broken = True
                steps = ", ".join(f"path[{i}]" for i in places)
                self.add(
                    s,
                    item,
                    "task-twice-in-path",
                    f"task {key!r} is in the path {len(places)} times ({steps}); a task "
                    "definition appears at most once on a case (use two task definitions "
                    "for two pieces of work)",
                )

        # Predecessors name tasks of the same path, earlier or later.
        in_path = set(path_tasks)
        for i, step in enumerate(wt.path):
            if isinstance(step.predecessors, list):
                for p in step.predecessors:
                    if p not in in_path:
                        broken = True
                        hint = difflib.get_close_matches(p, path_tasks, n=1)
                        did_you_mean = f" (did you mean {hint[0]!r}?)" if hint else ""
                        self.add(
                            s,
                            item,
                            "unknown-reference",
                            f"path[{i}].predecessors: {p!r} is not a task of this path"
                            f"{did_you_mean}",
                        )
        preds = resolve_predecessors(wt.path)
        for cycle in find_cycles(path_tasks, preds):
            broken = True
            self.add(
                s,
                item,
                "cycle",
                f"the predecessors form a cycle: {' -> '.join(cycle)} (each task must finish "
                "before the next may start, so none of them can ever start)",
            )

        # Optional tasks: known, not in the path, listed once.
        seen: set[Key] = set()
        for i, key in enumerate(wt.optional_tasks):
            self.ref(s, item, f"optional_tasks[{i}]", "task_definitions", key)
            if key in in_path:
                self.add(
                    s,
                    item,
                    "optional-task-in-path",
                    f"optional_tasks[{i}]: {key!r} is already in the path; a task definition "
                    "appears at most once on a case",
                )
            elif key in seen:
                self.add(
                    s,
                    item,
                    "task-twice-in-path",
                    f"optional_tasks[{i}]: {key!r} is listed more than once",
                )
            seen.add(key)

        # The case SLA, and follow-ons that would add a task the path already holds.
        self.sla(s, item, "case_sla", wt.case_sla)
        tasks = {t.key: t for t in self.config.task_definitions}
        adders: list[tuple[str, Key]] = []
        case_added = added_task(wt.case_sla)
        if case_added is not None:
            adders.append(("case_sla.follow_on.add_task", case_added))
        for key in path_tasks:
            t = tasks.get(key)
            added = added_task(t.sla) if t is not None else None
            if added is not None:
                adders.append((f"task {key!r} sla.follow_on.add_task", added))
        for where, added in adders:
            if added in in_path:
                self.add(
                    s,
                    item,
                    "add-task-in-path",
                    f"{where}: {added!r} is already in the path, so the follow-on can never "
                    "add it (a task definition appears at most once on a case)",
                )

        # Allocation: rules known; per-task overrides name tasks this case can hold.
        a = wt.allocation
        self.ref(s, item, "allocation.case_owner", "allocation_rules", a.case_owner)
        self.ref(s, item, "allocation.default_task", "allocation_rules", a.default_task)
        reachable = set(reachable_tasks(wt, tasks))
        for key, rule in a.tasks.items():
            self.ref(s, item, f"allocation.tasks.{key}", "allocation_rules", rule)
            if key not in reachable and self.ref(
                s, item, f"allocation.tasks.{key}", "task_definitions", key
            ):
                self.add(
                    s,
                    item,
                    "unknown-reference",
                    f"allocation.tasks.{key}: {key!r} is not in the path or the optional "
                    "tasks, nor added by a follow-on, so it never needs an owner here",
                )
        if broken:
            self.broken_paths.add(id(wt))

    def topics(self) -> None:
        wts = self.config.workflow_types
        window = [self.today + timedelta(days=n) for n in range(WINDOW_DAYS)]
        for topic in self.config.topics:
            self.effective("topics", topic.key, topic.effective_from, topic.effective_to)
            if not self.ref(
                "topics", topic.key, "workflow_type", "workflow_types", topic.workflow_type
            ):
                continue
            versions = [w for w in wts if w.key == topic.workflow_type]
            if not versions or "workflow_types" in self.unparsed:
                continue  # unreadable versions may cover the gap
            for day in window:
                if topic.in_force_on(day) and not any(w.in_force_on(day) for w in versions):
                    self.add(
                        "topics",
                        topic.key,
                        "no-workflow-type-in-force",
                        f"in force on {day.isoformat()}, when no version of workflow type "
                        f"{topic.workflow_type!r} is: a case of this topic could not be raised",
                    )
                    break

    def pinned_sizes(self) -> None:
        for topic, size in pinned_definition_sizes(self.config, self.today).items():
            if size > PINNED_DEFINITION_MAX_BYTES:
                self.add("topics", topic, "size-limit", too_large_message(size))

    # ------------------------------------------------------------------ synchronised targets

    def synchronised_targets(self) -> None:
        window = [self.today + timedelta(days=n) for n in range(WINDOW_DAYS)]
        candidates = [
            wt
            for wt in self.config.workflow_types
            if id(wt) not in self.broken_paths and any(wt.in_force_on(d) for d in window)
        ]
        if not candidates:
            return
        good = {
            c.key
            for c in self.config.calendars
            if c.key not in self.bad_calendars
            and sum(1 for o in self.config.calendars if o.key == c.key) == 1
        }
        calendars = sla_calendars(self.config, self.today.year - 1, self.today.year + 3, only=good)
        memo = _Memo()
        tasks = {t.key: t for t in self.config.task_definitions}
        for wt in candidates:
            days = [d for d in window if wt.in_force_on(d)]
            self.check_targets(wt, days, calendars, tasks, memo)

    def check_targets(
        self,
        wt: WorkflowTypeConfig,
        days: Sequence[date],
        calendars: Mapping[Key, SlaCalendar],
        tasks: Mapping[Key, TaskDefinitionConfig],
        memo: _Memo,
    ) -> None:
        case_sla = wt.case_sla
        case_cal = calendars.get(case_sla.calendar)
        if case_cal is None:
            return
        preds = resolve_predecessors(wt.path)
        order = topological_order([s.task for s in wt.path], preds)
        steps: list[tuple[Key, list[Key], Period | None, SlaCalendar, SlaConfig | None]] = []
        for key in order:
            task = tasks[key]
            step = next(s for s in wt.path if s.task == key)
            sla = task.sla
            if sla is not None:
                cal = calendars.get(sla.calendar)
                if cal is None:
                    return  # the calendar is reported already
            else:
                cal = case_cal
            lag = step.lag if step.lag is not None and step.lag.amount > 0 else None
            steps.append((key, preds[key], lag, cal, sla))
        watched = {
            k for k, _, _, _, sla in steps if sla is not None and not sla.may_exceed_case_target
        }
        if not watched:
            return
        zone = ZoneInfo(case_cal.time_zone)
        failed: dict[Key, str] = {}
        item = _wt_label(wt)
        try:
            for day in days:
                for start in _start_instants(day, case_cal, zone):
                    case_due = memo.due(case_cal, start, case_sla.target)
                    dues: dict[Key, datetime] = {}
                    for key, ps, lag, cal, sla in steps:
                        anchor = max((dues[p] for p in ps), default=start)
                        begin = memo.lag_start(cal, anchor, lag) if lag is not None else anchor
                        due = memo.due(cal, begin, sla.target) if sla is not None else begin
                        dues[key] = due
                        if due > case_due and key in watched and key not in failed:
                            failed[key] = (
                                f"task {key!r} can fall due {_local(due, cal)} for a case "
                                f"started {_local(start, case_cal)}, after the case target "
                                f"{_local(case_due, case_cal)}; shorten the targets or lags "
                                "on its path, or set may_exceed_case_target on its SLA"
                            )
                if len(failed) == len(watched):
                    break
        except ValueError as error:  # e.g. a period beyond the years the calendar knows
            self.add(
                "workflow_types",
                item,
                "targets-not-synchronised",
                f"the task targets cannot be checked against the case target: {error}",
            )
        for key, _, _, _, _ in steps:
            if key in failed:
                self.add("workflow_types", item, "targets-not-synchronised", failed[key])


# ---------------------------------------------------------------------- helpers


def _duplicates(keys: Sequence[_K]) -> dict[_K, list[int]]:
    """The keys used more than once, with their positions."""
    seen: dict[_K, list[int]] = {}
    for i, key in enumerate(keys):
        seen.setdefault(key, []).append(i)
    return {key: where for key, where in seen.items() if len(where) > 1}


# ---------------------------------------------------------------------- arithmetic helpers


class _Memo:
    """Due and lag instants, memoised for one validation run. Task dues land on a few
    instants (the close of a day) whatever the start time, so the chains of different start
    dates share most of their work."""

    def __init__(self) -> None:
        self._due: dict[tuple[str, datetime, str, int], datetime] = {}
        self._lag: dict[tuple[str, datetime, str, int], datetime] = {}

    def due(self, cal: SlaCalendar, start: datetime, period: Period) -> datetime:
        return self._get(self._due, cal.due, cal, start, period)

    def lag_start(self, cal: SlaCalendar, at: datetime, period: Period) -> datetime:
        return self._get(self._lag, cal.lag_start, cal, at, period)

    @staticmethod
    def _get(
        cache: dict[tuple[str, datetime, str, int], datetime],
        compute: Callable[[datetime, Period], datetime],
        cal: SlaCalendar,
        at: datetime,
        period: Period,
    ) -> datetime:
        key = (cal.key, at, period.unit, period.amount)
        hit = cache.get(key)
        if hit is None:
            hit = cache[key] = compute(at, period)
        return hit


def _start_instants(day: date, cal: SlaCalendar, zone: ZoneInfo) -> Iterable[datetime]:
    """The case starts the check tries on `day`: opening, a minute before closing, closing."""
    before_close = datetime.combine(day, cal.closing) - timedelta(minutes=1)
    for wall in (
        datetime.combine(day, cal.opening),
        before_close,
        datetime.combine(day, cal.closing),
    ):
        yield wall.replace(tzinfo=zone)


def _local(instant: datetime, cal: SlaCalendar) -> str:
    return instant.astimezone(ZoneInfo(cal.time_zone)).strftime("%a %d %b %Y %H:%M")


def _wt_label(wt: WorkflowTypeConfig) -> str:
    return item_label("workflow_types", wt.key, wt.version, 0)


def _overlap(a: WorkflowTypeConfig, b: WorkflowTypeConfig) -> bool:
    a_end = a.effective_to or date.max
    b_end = b.effective_to or date.max
    return a.effective_from <= b_end and b.effective_from <= a_end


def _span(wt: WorkflowTypeConfig) -> str:
    end = wt.effective_to.isoformat() if wt.effective_to else "open-ended"
    return f"{wt.effective_from.isoformat()} to {end}"
