"""The pinned definition a case runs on: one version of a workflow type with everything the
pure core needs to plan it, resolved from a stored configuration version.

A case receives this once (from the `pin_definition` activity) and keeps it for its whole
life, across continue-as-new, so a later configuration change never rewrites its rules.
"""

from __future__ import annotations

from datetime import date, time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from models.config import (
    DEFAULT_REASONS,
    AllocationRuleConfig,
    EscalationRuleConfig,
    Key,
    ReasonKind,
    RoleConfig,
    TaskDefinitionConfig,
    TopicConfig,
    UserConfig,
    WorkflowTypeConfig,
    reason_lists,
)


class CalendarSnapshot(BaseModel):
    """A calendar with its closed days resolved (bank holidays of its nation plus extra
    closures) for the years `first_year`..`last_year`, so workflow code never imports the
    `holidays` package and a case keeps the calendar it started with."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: Key
    kind: Literal["24x7", "working_days"]
    time_zone: str
    opening: time
    closing: time
    working_weekdays: list[int]
    closed_dates: list[date] = Field(default_factory=list)
    first_year: int
    last_year: int
    # Count from the start of the minute (DOMAIN "Precision"). Calendars pinned before this
    # rule keep counting from the exact instant: a running case keeps the arithmetic it was
    # planned with (its recorded history replays).
    minute_precision: bool = False


class CaseDefinition(BaseModel):
    """Everything a case needs from configuration, pinned at the case's start."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    config_version: int
    topic: TopicConfig
    workflow_type: WorkflowTypeConfig
    # The task definitions this case can hold (its path, optional tasks and follow-on
    # additions) and the calendars they use: the pin is part of every case's history.
    task_definitions: dict[Key, TaskDefinitionConfig]
    calendars: dict[Key, CalendarSnapshot]
    # Keys of the organisation's other task definitions, so a request for one is refused as
    # "not allowed for this workflow type" rather than "unknown".
    other_task_keys: list[Key] = Field(default_factory=list)
    escalation_rules: dict[Key, EscalationRuleConfig]
    allocation_rules: dict[Key, AllocationRuleConfig]
    # Definitions pinned before the staff directory was live carry the directory as of the
    # pin here (their recorded histories replay against it). New pins carry no users, and
    # roles as rule targets only (key and name): who the people are is looked up when it
    # matters (`models.directory`).
    users: dict[Key, UserConfig] = Field(default_factory=dict)
    roles: dict[Key, RoleConfig] = Field(default_factory=dict)
    # The permission table (message name -> grants, `domain.permissions`); None on
    # definitions pinned before it existed: derived from the roles' legacy permissions.
    permissions: dict[str, list[str]] | None = None
    # The rules this case was raised under: 1 before "Working a case"; 2 adds the late
    # completion reason (a case raised before keeps accepting late completions without one).
    rules_version: int = 1
    # The reason keys officers choose from, by kind (cases pinned before reasons were
    # configured have the built-in lists).
    reasons: dict[ReasonKind, list[Key]] = Field(
        default_factory=lambda: reason_lists(DEFAULT_REASONS)
    )
