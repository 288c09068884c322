"""Configuration that a council writes as files: the shapes, one model per kind of item.

The files live in a folder (see `config/sample/`), one YAML file per kind.
`domain.config_validation` checks the whole set (references, cycles, synchronised targets)
and `config_files` reads the files. Every model forbids unknown fields, so a
misspelt key is an error that names the field, not a silently ignored setting. Every field is
bounded (`models.bounds`): keys by a pattern and a length, names by a length and plain
characters, lists by a count.
"""

from __future__ import annotations

from datetime import date, time
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from models.bounds import (
    MAX_ABSENCES,
    MAX_ALLOCATION_RULES,
    MAX_CALENDARS,
    MAX_CLOSED_DATES,
    MAX_ESCALATION_RULES,
    MAX_OUTCOMES,
    MAX_PATH_STEPS,
    MAX_PERMISSION_ROWS,
    MAX_REASONS,
    MAX_ROLES,
    MAX_TASK_DEFINITIONS,
    MAX_TOPICS,
    MAX_USERS,
    MAX_VERSION,
    MAX_WORKFLOW_TYPES,
    Description,
    Name,
    TimeZoneName,
)
from models.bounds import Key as Key  # the key type, imported from here by most modules
from models.period import Period

# An alert channel besides the inbox (activities.channels).
Channel = Literal["email", "webhook"]
CHANNELS: tuple[Channel, ...] = ("email", "webhook")
# A staff email address: plain, one line, one @; checked by its bound, not by a lookup.
Email = Annotated[
    str, Field(max_length=254, pattern=r"^[^@\s<>\"',;]+@[^@\s<>\"',;]+\.[^@\s<>\"',;]+$")
]
TEMPLATE_MAX_LENGTH = 20_000
MAX_ALERT_TEMPLATES = 200

Nation = Literal["england_and_wales", "scotland", "northern_ireland"]
Indicator = Literal["amber", "target_exceeded", "follow_on"]
INDICATORS: tuple[Indicator, ...] = ("amber", "target_exceeded", "follow_on")


class _Item(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Effective(_Item):
    """A date range in which an item is in force: from `effective_from`, up to and including
    `effective_to` (open-ended when missing)."""

    effective_from: date = date(2000, 1, 1)
    effective_to: date | None = None

    def in_force_on(self, day: date) -> bool:
        return self.effective_from <= day and (
            self.effective_to is None or day <= self.effective_to
        )


class CalendarConfig(_Item):
    """A calendar SLAs are measured on. Bank holidays come from `nation`; `extra_closed_dates`
    adds local closures (e.g. the office's training day)."""

    key: Key
    name: Name
    kind: Literal["24x7", "working_days"]
    time_zone: TimeZoneName = "Europe/London"
    nation: Nation | None = "england_and_wales"
    opening: time = time(9, 0)
    closing: time = time(17, 0)
    working_weekdays: list[int] = Field(default_factory=lambda: [0, 1, 2, 3, 4], max_length=7)
    extra_closed_dates: list[date] = Field(default_factory=list, max_length=MAX_CLOSED_DATES)


class Absence(_Item):
    """A user is unavailable from `first_day` to `last_day` inclusive."""

    first_day: date
    last_day: date
    reason: Literal["leave", "sickness", "training", "other"] = "leave"


class UserConfig(_Item):
    """A member of staff. `key` is a staff identifier (it appears in logs and search
    attributes, so never the applicant's data).

    Staff now live in the store's staff directory (`store.directory`), not in the
    configuration: validation refuses a configuration that lists users. The model stays so
    that configurations stored earlier and definitions pinned by running cases still decode,
    and the directory snapshot hands allocation the same shape."""

    key: Key
    display_name: Name
    disabled: bool = False
    absences: list[Absence] = Field(default_factory=list, max_length=MAX_ABSENCES)
    # Alert delivery preferences (issue 11). Read only through activities.recipients, so
    # the staff directory can move to the store without touching the channels.
    email: Email | None = None
    # The channels this user's alerts go out on besides the inbox (a channel the worker
    # has not configured, or email without an address, is skipped).
    channels: list[Channel] = Field(default_factory=lambda: list(CHANNELS), max_length=4)
    # Ambers by email at most once a day, as one digest at this UK local time.
    digest_at: time | None = None

    def available_on(self, day: date) -> bool:
        if self.disabled:
            return False
        return not any(a.first_day <= day <= a.last_day for a in self.absences)


Permission = Literal[
    "close_any_case",
    "reassign_any_task",
    "complete_any_task",
    "add_task_any_case",
    "hold_any_task",
    "hold_any_case",
    "revise_any_target",
    "cancel_any_task",
]

# The lists of reasons an officer chooses from (DOMAIN "Working a case").
ReasonKind = Literal["hold", "revision", "cancellation", "late_completion"]
REASON_KINDS: tuple[ReasonKind, ...] = ("hold", "revision", "cancellation", "late_completion")
# The one revision reason that may extend a statutory target.
STATUTORY_EXTENSION: Key = "extension_agreed_in_writing"


class ReasonConfig(_Item):
    """One reason of one list: why a task is held, a target revised, a task cancelled or
    completed late. Requests name the `key`; reports and pages show the `name`."""

    kind: ReasonKind
    key: Key
    name: Name


class OutcomeConfig(_Item):
    """One outcome a task of a definition may be completed with."""

    key: Key
    name: Name


def _reasons(kind: ReasonKind, *pairs: tuple[str, str]) -> list[ReasonConfig]:
    return [ReasonConfig(kind=kind, key=key, name=name) for key, name in pairs]


# The reasons of a configuration without a reasons file, and of cases pinned before reasons
# were configured.
DEFAULT_REASONS: tuple[ReasonConfig, ...] = (
    *_reasons(
        "hold",
        ("awaiting_documents", "Awaiting applicant documents"),
        ("applicant_unavailable", "Applicant unavailable (hospital, custody, away)"),
        ("awaiting_third_party", "Awaiting a third party (landlord, agency, solicitor)"),
        ("safeguarding", "Safeguarding review in progress"),
        ("other", "Other (see notes)"),
    ),
    *_reasons(
        "revision",
        ("applicant_request", "Applicant asked for more time"),
        ("awaiting_evidence", "Awaiting evidence"),
        (STATUTORY_EXTENSION, "Extension agreed in writing"),
        ("other", "Other (see notes)"),
    ),
    *_reasons(
        "cancellation",
        ("no_longer_required", "No longer required"),
        ("duplicate", "Raised in error or duplicate"),
        ("applicant_withdrew", "Applicant withdrew"),
        ("other", "Other (see notes)"),
    ),
    *_reasons(
        "late_completion",
        ("applicant_delay", "Applicant delay"),
        ("third_party_delay", "Third-party delay"),
        ("workload", "Officer workload"),
        ("system_issue", "System issue"),
        ("other", "Other (see notes)"),
    ),
)


class RoleConfig(_Item):
    """A team or function: a key and a name, which rules name (allocation, escalation, the
    permission table). Its members are in the staff directory (`store.directory`); `members`
    and `permissions` are read only from configurations stored, and definitions pinned,
    before the directory and the permission table existed (validation refuses them now)."""

    key: Key
    name: Name
    members: list[Key] = Field(default_factory=list, max_length=MAX_USERS)
    permissions: list[Permission] = Field(default_factory=list, max_length=8)


# --- who may act: the permission table ---------------------------------------------------------

# A grant names who may send a message: the case owner (the user, or any member of the role that
# owns the case), the task owner (the user who owns the task the message names), any member of
# the role that owns that task, or any member of a named role (`role:team-leaders`).
GRANT_KINDS: tuple[str, ...] = ("case_owner", "task_owner", "owning_role_member")
ROLE_GRANT_PREFIX = "role:"
GRANT_PATTERN = r"^(case_owner|task_owner|owning_role_member|role:[A-Za-z0-9][A-Za-z0-9_.@-]*)$"
Grant = Annotated[str, Field(min_length=1, max_length=120, pattern=GRANT_PATTERN)]


class PermissionConfig(_Item):
    """One row of the permission table (`permissions.yaml`): who may send the message named
    `message` (a row name of `domain.messages`). A message without a row gets
    `domain.permissions.DEFAULT_GRANTS` (its owners: case owner, task owner, owning role)."""

    message: Key
    grants: list[Grant] = Field(max_length=MAX_ROLES)


class EscalationRuleConfig(_Item):
    """Who is alerted when an indicator fires: every current member of each role, the named
    users, and optionally the task owner and the case owner. Each person is alerted once."""

    key: Key
    name: Name
    roles: list[Key] = Field(default_factory=list, max_length=MAX_ROLES)
    users: list[Key] = Field(default_factory=list, max_length=MAX_USERS)
    task_owner: bool = False
    case_owner: bool = False


class AllocationRuleConfig(Effective):
    """Who owns a case or a task when it is raised or reassigned by a follow-on rule."""

    key: Key
    name: Name
    kind: Literal["named_user", "case_creator", "role", "role_member"]
    user: Key | None = None
    role: Key | None = None
    strategy: Literal["least_open_work", "round_robin"] | None = None

    @model_validator(mode="after")
    def _fields_match_kind(self) -> AllocationRuleConfig:
        needs = {
            "named_user": ("user",),
            "case_creator": (),
            "role": ("role",),
            "role_member": ("role", "strategy"),
        }[self.kind]
        missing = [f for f in needs if getattr(self, f) is None]
        if missing:
            raise ValueError(f"kind {self.kind!r} needs {', '.join(missing)}")
        return self


class FollowOnConfig(_Item):
    """Follow-on escalation: `period` after the target (and again every `period`, up to
    `repeat_limit` occurrences in all) while the task is still outstanding."""

    period: Period
    repeat_limit: int = Field(default=1, ge=1, le=52)
    escalation_rule: Key | None = None
    reassign_rule: Key | None = None
    add_task: Key | None = None

    @model_validator(mode="after")
    def _has_an_action(self) -> FollowOnConfig:
        if self.escalation_rule is None and self.reassign_rule is None and self.add_task is None:
            raise ValueError(
                "a follow-on needs at least one action: escalation_rule, reassign_rule or add_task"
            )
        return self


class SlaConfig(_Item):
    """A service level: target completion measured on `calendar`, an optional amber warning
    before it, the target-exceeded indicator, and optional follow-on escalation."""

    calendar: Key
    target: Period
    amber: Period | None = None
    amber_escalation: Key | None = None
    target_exceeded_escalation: Key
    follow_on: FollowOnConfig | None = None
    statutory: bool = False
    target_may_be_revised: bool = False
    may_exceed_case_target: bool = False

    @model_validator(mode="after")
    def _amber_has_rule(self) -> SlaConfig:
        if self.amber is not None and self.amber_escalation is None:
            raise ValueError("amber is set but amber_escalation is missing")
        return self


class TaskDefinitionConfig(_Item):
    """A reusable, named kind of work. On one case it appears at most once."""

    key: Key
    name: Name
    description: Description = ""
    sla: SlaConfig | None = None
    # The outcomes a task of this kind may be completed with (none: completion carries none).
    outcomes: list[OutcomeConfig] = Field(default_factory=list, max_length=MAX_OUTCOMES)


class PathStepConfig(_Item):
    """One task of a workflow type's path. `predecessors` lists task keys, or is the string
    "all_earlier" (every task before this one in the path)."""

    task: Key
    predecessors: list[Key] | Literal["all_earlier"] = Field(
        default_factory=list, max_length=MAX_PATH_STEPS
    )
    lag: Period | None = None
    mandatory: bool = True


class AllocationConfig(_Item):
    """Which allocation rule owns the case, and each task (`tasks` overrides `default_task`)."""

    case_owner: Key
    default_task: Key
    tasks: dict[Key, Key] = Field(default_factory=dict, max_length=MAX_TASK_DEFINITIONS)


class WorkflowTypeConfig(Effective):
    """The definition of a kind of case. Several versions of one key may exist with
    non-overlapping effective dates; a case keeps the version it started with."""

    key: Key
    name: Name
    version: int = Field(ge=1, le=MAX_VERSION)
    path: list[PathStepConfig] = Field(max_length=MAX_PATH_STEPS)
    optional_tasks: list[Key] = Field(default_factory=list, max_length=MAX_TASK_DEFINITIONS)
    case_sla: SlaConfig
    allocation: AllocationConfig


class TopicConfig(Effective):
    """An enquiry topic; each maps to one workflow type."""

    key: Key
    name: Name
    workflow_type: Key


class AlertTemplateConfig(_Item):
    """The text of an alert for one indicator (issue 11): Jinja2, checked on load (a template
    that does not parse, or names a variable alerts do not have, is refused). Without
    `escalation_rule` it is the default for its indicator; with one, it overrides that
    default for alerts chosen by that rule. The variables are listed in
    `domain.alert_templates.VARIABLES`; none is personal data of the applicant."""

    key: Key
    indicator: Indicator
    escalation_rule: Key | None = None
    subject: Annotated[str, Field(min_length=1, max_length=500)]
    body: Annotated[str, Field(min_length=1, max_length=TEMPLATE_MAX_LENGTH)]


class Configuration(_Item):
    """A whole configuration set, as loaded from one folder."""

    calendars: list[CalendarConfig] = Field(default_factory=list, max_length=MAX_CALENDARS)
    users: list[UserConfig] = Field(default_factory=list, max_length=MAX_USERS)
    roles: list[RoleConfig] = Field(default_factory=list, max_length=MAX_ROLES)
    escalation_rules: list[EscalationRuleConfig] = Field(
        default_factory=list, max_length=MAX_ESCALATION_RULES
    )
    allocation_rules: list[AllocationRuleConfig] = Field(
        default_factory=list, max_length=MAX_ALLOCATION_RULES
    )
    task_definitions: list[TaskDefinitionConfig] = Field(
        default_factory=list, max_length=MAX_TASK_DEFINITIONS
    )
    workflow_types: list[WorkflowTypeConfig] = Field(
        default_factory=list, max_length=MAX_WORKFLOW_TYPES
    )
    topics: list[TopicConfig] = Field(default_factory=list, max_length=MAX_TOPICS)
    # Reasons for holds, revisions, cancellations and late completions (none configured:
    # `DEFAULT_REASONS`).
    reasons: list[ReasonConfig] = Field(default_factory=list, max_length=MAX_REASONS)
    alert_templates: list[AlertTemplateConfig] = Field(
        default_factory=list, max_length=MAX_ALERT_TEMPLATES
    )
    # Who may send each message (see `PermissionConfig`); empty: every message gets the
    # default grants plus the legacy role `permissions` (configurations stored before the
    # permission table existed).
    permissions: list[PermissionConfig] = Field(
        default_factory=list, max_length=MAX_PERMISSION_ROWS
    )

    def reason_lists(self) -> dict[ReasonKind, list[Key]]:
        """The reason keys of each kind, as a case pins them."""
        return reason_lists(self.reasons or DEFAULT_REASONS)


def reason_lists(
    reasons: tuple[ReasonConfig, ...] | list[ReasonConfig],
) -> dict[ReasonKind, list[Key]]:
    """The keys of `reasons`, by kind (every kind present, perhaps empty)."""
    lists: dict[ReasonKind, list[Key]] = {kind: [] for kind in REASON_KINDS}
    for reason in reasons:
        lists[reason.kind].append(reason.key)
    return lists


# The file that holds each section of a configuration folder.
CONFIG_FILES: dict[str, str] = {
    "calendars": "calendars.yaml",
    "users": "users.yaml",
    "roles": "roles.yaml",
    "escalation_rules": "escalation_rules.yaml",
    "allocation_rules": "allocation_rules.yaml",
    "task_definitions": "task_definitions.yaml",
    "workflow_types": "workflow_types.yaml",
    "topics": "topics.yaml",
    "reasons": "reasons.yaml",
    "alert_templates": "alert_templates.yaml",
    "permissions": "permissions.yaml",
}

# The most items each section may hold (a larger file is refused before its items are read).
MAX_ITEMS: dict[str, int] = {
    "calendars": MAX_CALENDARS,
    "users": MAX_USERS,
    "roles": MAX_ROLES,
    "escalation_rules": MAX_ESCALATION_RULES,
    "allocation_rules": MAX_ALLOCATION_RULES,
    "task_definitions": MAX_TASK_DEFINITIONS,
    "workflow_types": MAX_WORKFLOW_TYPES,
    "topics": MAX_TOPICS,
    "reasons": MAX_REASONS,
    "alert_templates": MAX_ALERT_TEMPLATES,
    "permissions": MAX_PERMISSION_ROWS,
}
