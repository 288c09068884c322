"""Resolve a configuration into what one case pins: its `CaseDefinition`.

Not imported by workflow code: it reads bank holidays through the `holidays` package (via
`domain.bank_holidays`), whose data changes between releases. The pin is made once, in an
activity, and the case keeps it for life.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date
from functools import lru_cache

from domain.bank_holidays import bank_holidays
from domain.calendars import sla_calendar
from domain.sla_calendar import SlaCalendar
from domain.task_paths import reachable_tasks
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
    `on`, or no version of its workflow type is."""
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

    return CaseDefinition(
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
        users={u.key: u for u in config.users},
        roles={r.key: r for r in config.roles},
    )


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
