"""Inputs and results of the activities: the only place a case does I/O."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, Field, field_validator

from models.case import (
    AuditEntry,
    CaseStatus,
    Hold,
    Owner,
    SlaStatus,
    TargetRevision,
    TaskStatus,
)
from models.config import AllocationRuleConfig, EscalationRuleConfig, Indicator, Key
from models.directory import DirectoryFacts


class _Shape(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PinDefinitionInput(_Shape):
    """Resolve `topic` to the workflow type version in force on `on`, from the latest stored
    configuration version."""

    topic: Key
    on: date


class AllocationRequest(_Shape):
    """Who should own `target` ("case" or a task key) by `rule`."""

    target: str
    rule: AllocationRuleConfig


class AllocateInput(_Shape):
    case_reference: str
    raised_by: Key
    on: date
    # Distinguishes allocations of one target over the case's life (a follow-on reassign
    # happens after the first allocation): the pair (case, target, purpose) is idempotent.
    purpose: str = "raise"
    requests: list[AllocationRequest]
    # With the raise's allocation: the case's first run, which claims the reference for
    # ever (a reference is one case; a later run under the same reference is refused).
    first_run_id: str | None = None
    # With the raise's allocation (0.2.0): look up who raised the case in the live directory
    # first, answer with their facts (`AllocateResult.raiser`), and allocate nothing when
    # they are not an active member of staff (the case refuses the raise from those facts).
    # Saves opening a `directory_facts` local activity of its own.
    check_raiser: bool = False


class AllocateResult(_Shape):
    owners: dict[str, Owner]
    # Targets whose rule found nobody available, with the reason (the caller falls back).
    unallocated: dict[str, str] = Field(default_factory=dict)
    # With `AllocateInput.check_raiser`: the raiser's directory facts on `AllocateInput.on`.
    raiser: DirectoryFacts | None = None


class OpenCaseInput(_Shape):
    """The opening of a case as one local activity (runs started on 0.2.0): pin the
    definition of `topic` in force at `at` (as `pin_definition`), then allocate the raise's
    owners by that definition's rules, the raiser looked up first (as `allocate` with
    `check_raiser`). The rules travel in the pin, not in the input."""

    case_reference: str
    topic: Key
    raised_by: Key
    extra_tasks: list[Key] = Field(default_factory=list)
    # The case's opening instant (`workflow.now()`): the pin's day is its local date, the
    # allocation's day the case's calendar day.
    at: datetime
    # The case's first run: it claims the reference for ever (see `AllocateInput`).
    first_run_id: str


class OpenCaseResult(_Shape):
    """The pinned definition as `pin_definition` returns it (`encode_pin`: compressed; in the
    recorded JSON as base64), and the raise's allocation. No allocation when the definition
    refuses the raise's extra tasks: nothing is allocated for a raise the case refuses."""

    model_config = ConfigDict(extra="forbid", ser_json_bytes="base64", val_json_bytes="base64")

    pin: bytes
    allocation: AllocateResult | None


class AlertFacts(_Shape):
    """What an alert says: which case or task, which indicator, when, and whose it is."""

    case_reference: str
    case_topic: Key
    task: Key | None  # None: the case-level SLA
    task_name: str
    indicator: Indicator
    occurrence: int
    indicator_at: datetime
    task_due_at: datetime | None
    task_owner: Owner | None


class AlertInput(AlertFacts):
    """The send_alert activity's input: the facts, and the rule that decides who hears."""

    case_owner: Owner
    rule: EscalationRuleConfig
    # The case calendar's local date when the alert fires: role memberships are read as of
    # it (None from cases raised before: the London date of `indicator_at`).
    on: date | None = None
    # The case's reporting copy as it stands once this alert has fired, written by the same
    # local activity after the alert (cases alerting by local activity, `LOCAL_ALERTS`): one
    # local activity per alert rather than two. None: the case records it separately.
    record: CaseRecord | None = None


class AlertResult(_Shape):
    recipients: list[Key]
    created: int  # inbox rows newly written (0 on a retry that found them all)


class AlertKey(NamedTuple):
    """One alert to one recipient: the inbox's unique key, and so the idempotency key of the
    alert's delivery on every channel (a retried send_alert finds it and sends nothing)."""

    case_reference: str
    task: Key | None  # None: the case-level SLA
    indicator: Indicator
    occurrence: int
    recipient: Key


class Alert(AlertFacts):
    """An alert as the notifiers receive it: what happened, to which case or task, and who is
    to hear of it. Built once per send_alert (`Alert.of`) and handed to every notifier, so
    each channel sees the same recipients. Not an activity input: never in a history."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rule: Key  # the escalation rule that chose the recipients
    recipients: tuple[Key, ...]  # deduplicated, in key order

    @field_validator("recipients")
    @classmethod
    def _unique_and_sorted(cls, recipients: tuple[Key, ...]) -> tuple[Key, ...]:
        return tuple(sorted(set(recipients)))

    @classmethod
    def of(cls, input: AlertInput, recipients: Iterable[Key]) -> Alert:
        """The alert `input` describes, for `recipients` (the resolution of its rule)."""
        facts = {name: getattr(input, name) for name in AlertFacts.model_fields}
        return cls(**facts, rule=input.rule.key, recipients=tuple(recipients))

    def keys(self) -> list[AlertKey]:
        """The idempotency key of this alert for each recipient, in recipient order."""
        return [
            AlertKey(self.case_reference, self.task, self.indicator, self.occurrence, r)
            for r in self.recipients
        ]


class TaskRecord(_Shape):
    key: Key
    name: str
    status: TaskStatus
    mandatory: bool
    owner: Owner | None
    started_at: datetime | None
    due_at: datetime | None
    completed_at: datetime | None
    sla_status: SlaStatus | None
    # Working the task: planned start (a lagging task), holds, revisions, how it ended.
    starts_at: datetime | None = None
    holds: tuple[Hold, ...] = ()
    revisions: tuple[TargetRevision, ...] = ()
    round: int = 1
    outcome: str | None = None
    late_reason: str | None = None
    cancelled_at: datetime | None = None
    cancel_reason: str | None = None


class CaseFacts(_Shape):
    """What the store keeps of a case, including the timestamps the H-CLIC statutory return
    needs (application, decision and end dates come from these and the task records)."""

    reference: str
    topic: Key
    workflow_type: Key
    workflow_version: int
    config_version: int
    status: CaseStatus
    owner: Owner
    created_by: Key
    created_at: datetime
    finished_at: datetime | None
    close_reason: str | None
    sla_status: SlaStatus
    case_due_at: datetime | None


class CaseRecord(CaseFacts):
    """The reporting copy of a case (and the workload counts allocation reads)."""

    tasks: list[TaskRecord]
    # Monotonic per case: a late retry of an older record never overwrites a newer one.
    revision: int
    # Audit entries not recorded before, numbered from `audit_from` (the store keeps each
    # number once, so a retried or repeated record adds nothing).
    audit: list[AuditEntry] = Field(default_factory=list)
    audit_from: int = 0
    # The case's holds (the last is current while not released).
    holds: tuple[Hold, ...] = ()
    # True: `tasks` is every task of the case (the store's rows become exactly these). False:
    # only the tasks changed since the case's previous record, which the store has (the
    # others' rows stay as they are). Records from workers before this field list every task.
    tasks_complete: bool = True


AlertInput.model_rebuild()
