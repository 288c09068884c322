"""Resolve a configuration into what one case pins: its `CaseDefinition`.

Not imported by workflow code: it reads bank holidays through the `holidays` package (via
`domain.bank_holidays`), whose data changes between releases. The pin is made once, in an
activity, and the case keeps it for life.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, TypeAdapter

from domain.bank_holidays import bank_holidays
from domain.calendars import sla_calendar
from domain.sla_calendar import SlaCalendar
from domain.task_paths import reachable_tasks
from models.bounds import PINNED_DEFINITION_MAX_BYTES
from models.config import (
    CalendarConfig,
    Configuration,
    Key,
    Nation,
    SlaConfig,
    TaskDefinitionConfig,
    TopicConfig,
    WorkflowTypeConfig,
)
from models.definition import CalendarSnapshot, CaseDefinition

# A case pins its calendars for the year before it starts (a start late on 31 December in
# another time zone) to three years after (long statutory periods, lags and follow-ons).
# The rules a case raised now runs under (models.definition.CaseDefinition.rules_version).
RULES_VERSION = 2
YEARS_BEFORE = 1
YEARS_AFTER = 3


class DefinitionError(ValueError):
    """No case definition can be built: unknown or retired topic, no workflow type version in
    force, or a reference the configuration does not resolve."""


@lru_cache(maxsize=64)
def _bank_holidays(nation: Nation, first_year: int, last_year: int) -> frozenset[date]:
    # The holidays package takes milliseconds per call; validation asks for the same few.
    return bank_holidays(nation, first_year, last_year)


def resolve_calendar(cfg: CalendarConfig, first_year: int, last_year: int) -> CalendarSnapshot:
    """The calendar with its closed days for `first_year`..`last_year`: the bank holidays of
    its nation (none when `nation` is None) plus its extra closed dates in those years."""
    closed: set[date] = set()
    if cfg.nation is not None:
        closed |= _bank_holidays(cfg.nation, first_year, last_year)
    closed |= {d for d in cfg.extra_closed_dates if first_year <= d.year <= last_year}
    return CalendarSnapshot(
        key=cfg.key,
        kind=cfg.kind,
        time_zone=cfg.time_zone,
        opening=cfg.opening,
        closing=cfg.closing,
        working_weekdays=sorted(set(cfg.working_weekdays)),
        closed_dates=sorted(closed),
        first_year=first_year,
        last_year=last_year,
        minute_precision=True,
    )


def sla_calendars(
    config: Configuration,
    first_year: int,
    last_year: int,
    *,
    only: Collection[Key] | None = None,
) -> dict[Key, SlaCalendar]:
    """The arithmetic calendar of every calendar in `config` (or of those keyed in `only`),
    with closed days for `first_year`..`last_year`. Raises ValueError for an invalid calendar
    (unknown time zone, opening not before closing, ...)."""
    return {
        cfg.key: sla_calendar(resolve_calendar(cfg, first_year, last_year))
        for cfg in config.calendars
        if only is None or cfg.key in only
    }


def build_case_definition(
    config: Configuration, config_version: int, topic_key: str, on: date
) -> CaseDefinition:
    """The definition a case of topic `topic_key` raised on `on` runs on: the topic, the
    workflow type version in force that day, the task definitions the case can hold (path,
    optional tasks and follow-on additions, transitively) and the calendars they use (closed days
    resolved for `on.year - 1` .. `on.year + 3`), and all escalation rules, allocation
    rules, users and roles. Raises DefinitionError when the topic is unknown or not in force on
    `on`, or no version of its workflow type is, or when the definition would be larger than
    `PINNED_DEFINITION_MAX_BYTES` of JSON (Temporal refuses a payload over 2 MB: the case
    would fail to open, or later to continue as new)."""
    topic = _topic(config, topic_key, on)
    workflow_type = _workflow_type(config, topic, on)
    task_definitions = _task_definitions(config, workflow_type)

    slas: list[SlaConfig] = [workflow_type.case_sla]
    slas += [t.sla for t in task_definitions.values() if t.sla is not None]
    by_key = {c.key: c for c in config.calendars}
    calendars: dict[Key, CalendarSnapshot] = {}
    for sla in slas:
        if sla.calendar in calendars:
            continue
        cfg = by_key.get(sla.calendar)
        if cfg is None:
            raise DefinitionError(
                f"workflow type {workflow_type.key!r} v{workflow_type.version} uses calendar "
                f"{sla.calendar!r}, which is not configured"
            )
        calendars[cfg.key] = resolve_calendar(cfg, on.year - YEARS_BEFORE, on.year + YEARS_AFTER)

    definition = CaseDefinition(
        config_version=config_version,
        topic=topic,
        workflow_type=workflow_type,
        task_definitions=task_definitions,
        calendars=calendars,
        other_task_keys=sorted(
            t.key for t in config.task_definitions if t.key not in task_definitions
        ),
        # All of them: a handful of small items, and a follow-on or a reassignment can never
        # find its rule missing from the pin.
        escalation_rules={r.key: r for r in config.escalation_rules},
        allocation_rules={r.key: r for r in config.allocation_rules},
        # Staff are in the live directory (`models.directory`); a configuration stored before
        # it may still list them, and they are pinned as before (unused by the live checks).
        users={u.key: u for u in config.users},
        roles={r.key: r for r in config.roles},
        reasons=config.reason_lists(),
        rules_version=RULES_VERSION,
        permissions=(
            {row.message: list(row.grants) for row in config.permissions}
            if config.permissions
            else None
        ),
    )
    size = len(definition.model_dump_json())
    if size > PINNED_DEFINITION_MAX_BYTES:
        raise DefinitionError(too_large_message(size))
    return definition


def too_large_message(size: int) -> str:
    """Why a definition of `size` bytes of JSON cannot be pinned."""
    return (
        f"the definition a case of this topic pins would be {_kilobytes(size)} of JSON, over "
        f"the limit of {_kilobytes(PINNED_DEFINITION_MAX_BYTES)} (every user, role and rule "
        "is pinned, with the workflow type, its task definitions and calendars)"
    )


def pinned_definition_sizes(config: Configuration, on: date) -> dict[Key, int]:
    """For each topic of `config`, a close upper bound of the bytes of JSON of the definition
    a case of it pins (over every version of its workflow type, calendars resolved as for a
    case raised on `on`). Measured in parts, so that the users, roles and rules every topic
    pins are serialised once, not once per topic; references the configuration does not
    resolve count nothing (validation reports them)."""
    shared = sum(
        _json_size(items)
        for items in (
            {u.key: u for u in config.users},
            {r.key: r for r in config.roles},
            {row.message: row.grants for row in config.permissions},
            {r.key: r for r in config.escalation_rules},
            {r.key: r for r in config.allocation_rules},
            # other_task_keys: at most every task key.
            [t.key for t in config.task_definitions],
        )
    )
    tasks_by_key = {t.key: t for t in config.task_definitions}
    calendars_by_key = {c.key: c for c in config.calendars}
    calendar_sizes: dict[Key, int] = {}
    by_type: dict[Key, int] = {}
    for wt in config.workflow_types:
        tasks = {k: tasks_by_key[k] for k in reachable_tasks(wt, tasks_by_key) if k in tasks_by_key}
        size = _json_size(wt) + _json_size(tasks)
        slas = [wt.case_sla] + [t.sla for t in tasks.values() if t.sla is not None]
        for key in {sla.calendar for sla in slas if sla.calendar in calendars_by_key}:
            if key not in calendar_sizes:
                snapshot = resolve_calendar(
                    calendars_by_key[key], on.year - YEARS_BEFORE, on.year + YEARS_AFTER
                )
                calendar_sizes[key] = _json_size(snapshot)
            size += calendar_sizes[key]
        by_type[wt.key] = max(by_type.get(wt.key, 0), size)
    # The field names, braces and the config version: a few hundred bytes.
    framing = 400
    sizes: dict[Key, int] = {}
    for topic in config.topics:
        size = shared + by_type.get(topic.workflow_type, 0) + _json_size(topic) + framing
        sizes[topic.key] = max(sizes.get(topic.key, 0), size)
    return sizes


_ANY: TypeAdapter[Any] = TypeAdapter(Any)


def _json_size(value: BaseModel | dict[Key, Any] | list[Key]) -> int:
    return len(_ANY.dump_json(value))


def _kilobytes(size: int) -> str:
    return f"{size / 1024:,.0f} KB"


def _topic(config: Configuration, topic_key: str, on: date) -> TopicConfig:
    topics = [t for t in config.topics if t.key == topic_key]
    if not topics:
        raise DefinitionError(f"unknown topic {topic_key!r}")
    for topic in topics:
        if topic.in_force_on(on):
            return topic
    spans = ", ".join(_span(t.effective_from, t.effective_to) for t in topics)
    raise DefinitionError(f"topic {topic_key!r} is not in force on {on.isoformat()} ({spans})")


def _workflow_type(config: Configuration, topic: TopicConfig, on: date) -> WorkflowTypeConfig:
    versions = [w for w in config.workflow_types if w.key == topic.workflow_type]
    if not versions:
        raise DefinitionError(
            f"topic {topic.key!r} maps to workflow type {topic.workflow_type!r}, "
            "which is not configured"
        )
    in_force = [w for w in versions if w.in_force_on(on)]
    if not in_force:
        spans = ", ".join(
            f"v{w.version} {_span(w.effective_from, w.effective_to)}"
            for w in sorted(versions, key=lambda w: w.version)
        )
        raise DefinitionError(
            f"topic {topic.key!r}: no version of workflow type {topic.workflow_type!r} is in "
            f"force on {on.isoformat()} ({spans})"
        )
    # Validation refuses overlapping versions; should two overlap anyway, the newest wins.
    return max(in_force, key=lambda w: w.version)


def _task_definitions(
    config: Configuration, workflow_type: WorkflowTypeConfig
) -> dict[Key, TaskDefinitionConfig]:
    by_key = {t.key: t for t in config.task_definitions}
    found: dict[Key, TaskDefinitionConfig] = {}
    for key in reachable_tasks(workflow_type, by_key):
        task = by_key.get(key)
        if task is None:
            raise DefinitionError(
                f"workflow type {workflow_type.key!r} v{workflow_type.version} uses task "
                f"{key!r}, which is not a task definition"
            )
        found[key] = task
    return found


def _span(start: date, end: date | None) -> str:
    if end is None:
        return f"in force from {start.isoformat()}"
    return f"in force {start.isoformat()} to {end.isoformat()}"
