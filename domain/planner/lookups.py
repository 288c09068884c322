"""Look-ups in a case's pinned definition: the SLA and calendar of a task or of the case, and
the one definition of "today" for a case.

Pure: the workflow sandbox imports it.
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from domain.calendars import sla_calendar
from domain.sla_calendar import SlaCalendar
from models.case import CaseState, CaseTask
from models.config import Key, SlaConfig
from models.definition import CaseDefinition

# The zone of a council in England, Wales, Scotland or Northern Ireland: "today" before a case
# has a definition (pinning it), and how instants are shown to UK officers.
UK = ZoneInfo("Europe/London")


def task_sla(defn: CaseDefinition, key: Key) -> SlaConfig | None:
    """The SLA of task definition `key` (None: the task has no SLA or is unknown)."""
    task_def = defn.task_definitions.get(key)
    return task_def.sla if task_def is not None else None


def sla_for(defn: CaseDefinition, task: Key | None) -> SlaConfig | None:
    """The SLA of a task, or of the case itself (`task` None)."""
    return defn.workflow_type.case_sla if task is None else task_sla(defn, task)


def case_calendar(defn: CaseDefinition) -> SlaCalendar:
    """The calendar of the case SLA."""
    return sla_calendar(defn.calendars[defn.workflow_type.case_sla.calendar])


def task_calendar(defn: CaseDefinition, key: Key) -> SlaCalendar:
    """The calendar a task is measured on: its SLA's, or the case SLA's when it has none."""
    sla = task_sla(defn, key)
    if sla is None:
        return case_calendar(defn)
    return sla_calendar(defn.calendars[sla.calendar])


def sla_calendar_of(defn: CaseDefinition, sla: SlaConfig) -> SlaCalendar:
    """The calendar an SLA is measured on."""
    return sla_calendar(defn.calendars[sla.calendar])


def task_due_if_started(defn: CaseDefinition, key: Key, start: datetime) -> datetime | None:
    """When task `key` would fall due if it started at `start` (None: it has no SLA)."""
    sla = task_sla(defn, key)
    if sla is None:
        return None
    return sla_calendar_of(defn, sla).due(start, sla.target)


def case_zone(defn: CaseDefinition) -> ZoneInfo:
    """The case calendar's time zone: "today" for availability, and how instants are shown."""
    return ZoneInfo(defn.calendars[defn.workflow_type.case_sla.calendar].time_zone)


def local_date(instant: datetime, zone: ZoneInfo = UK) -> date:
    """The local date of `instant` in `zone`: the only way this product turns an instant into
    "today" (a UTC date is a day behind in the first hour of every summer night)."""
    return instant.astimezone(zone).date()


def case_today(defn: CaseDefinition, now: datetime) -> date:
    """Today for a case: the local date of its calendar (availability, allocation)."""
    return local_date(now, case_zone(defn))


def show_instant(at: datetime, zone: ZoneInfo) -> str:
    """An instant as local wall-clock time with its zone abbreviation and UTC ISO form."""
    return f"{at.astimezone(zone):%a %d %b %Y %H:%M %Z} ({at.isoformat()})"


def require_task(state: CaseState, key: Key) -> CaseTask:
    """Task `key` of the case (raises ValueError when it is not on the case)."""
    task = state.task(key)
    if task is None:
        raise ValueError(f"task {key!r} is not on case {state.reference}")
    return task
