"""The state of one case as the workflow holds it: the truth for a running case.

It is carried whole across continue-as-new and returned by the `state` query, so every field
is plain data. Instants are timezone-aware UTC datetimes.
"""

from __future__ import annotations

import zlib
from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field, model_validator

from models.config import Indicator, Key
from models.period import Period

TaskStatus = Literal["waiting", "lagging", "open", "on_hold", "completed", "cancelled"]
# What a held task was before its hold, and returns to on release.
HeldStatus = Literal["waiting", "lagging", "open"]
# Tasks not yet finished: they block the case from finishing and can be held or cancelled.
UNFINISHED: frozenset[str] = frozenset({"waiting", "lagging", "open", "on_hold"})
TaskOrigin = Literal["path", "manual", "follow_on"]
# Worst first is the last: a case's SLA status is the worst of its open tasks and itself.
SlaStatus = Literal["on_track", "amber", "breached", "escalated"]
SLA_SEVERITY: dict[SlaStatus, int] = {"on_track": 0, "amber": 1, "breached": 2, "escalated": 3}
CaseStatus = Literal["open", "completed", "closed"]
AuditOutcome = Literal["accepted", "refused", "duplicate", "system"]

# The actor recorded for what the case does by itself (starts, indicators, follow-on actions).
SYSTEM: Key = "system"
# Everywhere a task key or "the case itself" can stand (an alert, an audit entry, an
# allocation), the case itself is None. Where a string is required (the allocation activity's
# answers are keyed by target), it is spelt CASE_TARGET; configuration validation refuses a task
# definition with that key, so the two can never be confused.
CASE_TARGET: Key = "case"


def target_task(target: Key) -> Key | None:
    """The task an allocation target stands for (None: the case itself)."""
    return None if target == CASE_TARGET else target


class _EveryField(set[str]):
    """The fields set of every instance of one state model: all of its fields, shared and never
    changed (adding to it does nothing; copying it gives it back)."""

    def add(self, element: str) -> None:
        pass

    def update(self, *others: Any) -> None:
        pass

    def __copy__(self) -> _EveryField:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> _EveryField:
        return self


class StateModel(BaseModel):
    """A part of a case's state. pydantic keeps, on every instance, the set of fields that were
    given or assigned (`model_fields_set`), for `exclude_unset`, which the case never uses: a
    task's set alone is 0.7-2.2 KiB, as much as its values, on every case a worker caches. A
    state model's instances share one set of all their fields instead: `model_fields_set` is
    every field, and `model_dump(exclude_unset=True)` is the whole model. Values, validation,
    equality and the JSON are pydantic's as before."""

    _every_field: ClassVar[_EveryField] = _EveryField()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls._every_field = _EveryField(cls.model_fields)

    def model_post_init(self, context: Any, /) -> None:
        object.__setattr__(self, "__pydantic_fields_set__", type(self)._every_field)


class Owner(StateModel):
    """A task or case owner: one user, or a role (group ownership: any member may act)."""

    model_config = {"frozen": True, "extra": "forbid"}

    kind: Literal["user", "role"]
    key: Key

    def __str__(self) -> str:
        return f"{self.kind}:{self.key}"


class OwnerChange(StateModel):
    """One change of a task's owner. Frozen: a record of what happened, and the tasks a case
    was raised with share one for each owner they were allocated to."""

    model_config = {"frozen": True}

    at: datetime
    owner: Owner
    reason: str
    by: Key


class FiredIndicator(StateModel):
    """One occurrence of an indicator. `due_at` is the instant it was scheduled for; `fired_at`
    when the case acted on it; `recipients` the staff alerted."""

    indicator: Indicator
    # Counted over the holder's whole life (a revision's new round goes on counting), so
    # (indicator, occurrence) names one alert for ever; `round` is the target it was for.
    occurrence: int = 1
    round: int = 1
    due_at: datetime
    fired_at: datetime
    recipients: list[Key] = Field(default_factory=list)


class Hold(StateModel):
    """One hold of a task or of the case (DOMAIN "Hold"): begun at `begun_at` by `by`, to be
    released at `planned_release` unless released sooner; `released_at` once it ended
    (`released_by` is "system" for a planned release). `case_hold`: the task was held by a
    case hold. `resume`: what the task returns to. `counts_from`: when its lag began to
    count, for a task whose predecessors completed while it was held."""

    begun_at: datetime
    planned_release: datetime
    released_at: datetime | None = None
    released_by: str | None = None
    reason: str
    notes: str = ""
    by: str
    case_hold: bool = False
    resume: HeldStatus = "open"
    counts_from: datetime | None = None


class TargetRevision(StateModel):
    """One revision of a target: from `old_target` to `new_target`, starting `round`."""

    at: datetime
    by: str
    old_target: datetime | None
    new_target: datetime
    reason: str
    notes: str = ""
    round: int


class CaseTask(StateModel):
    """One task of the case. Its collections, most of them empty for most of a case's life
    (holds, revisions, indicators fired), are tuples: an empty one is no object at all, where
    each empty list was one more object on every task of every case a worker caches. A change
    replaces the tuple (`holds = (*holds, hold)`)."""

    key: Key
    name: str
    origin: TaskOrigin
    mandatory: bool
    predecessors: tuple[Key, ...] = ()
    lag: Period | None = None
    status: TaskStatus = "waiting"
    owner: Owner | None = None
    owner_history: tuple[OwnerChange, ...] = ()
    # When a lagging task will start (predecessors done, lag running).
    starts_at: datetime | None = None
    started_at: datetime | None = None
    due_at: datetime | None = None
    amber_at: datetime | None = None
    next_follow_on_at: datetime | None = None
    completed_at: datetime | None = None
    completed_by: Key | None = None
    cancelled_at: datetime | None = None
    fired: tuple[FiredIndicator, ...] = ()
    sla_status: SlaStatus | None = None  # None: no SLA, or not started
    # Working the task (DOMAIN "Working a case"): its holds, target revisions (each starts a
    # new round of indicators), and why it was completed or cancelled.
    holds: tuple[Hold, ...] = ()
    revisions: tuple[TargetRevision, ...] = ()
    round: int = 1
    completion_notes: str = ""
    outcome: str | None = None
    late_reason: str | None = None
    cancelled_by: str | None = None
    cancel_reason: str | None = None
    cancel_notes: str = ""

    @property
    def hold(self) -> Hold | None:
        """The task's current hold (None: not on hold)."""
        return self.holds[-1] if self.status == "on_hold" and self.holds else None


class CaseSla(StateModel):
    """The case-level SLA: the overall target from the case's start."""

    started_at: datetime
    due_at: datetime
    amber_at: datetime | None = None
    next_follow_on_at: datetime | None = None
    fired: tuple[FiredIndicator, ...] = ()
    sla_status: SlaStatus = "on_track"
    revisions: tuple[TargetRevision, ...] = ()
    round: int = 1
    # Whether the case SLA is held by the case's current hold (a statutory one never is).
    held: bool = False


class AuditEntry(StateModel):
    """One entry of the audit trail. Its text is written by the case itself (a refusal's
    actor is "(invalid)" when the message's own was not a key), so the fields are plain
    strings: building an entry must never fail, or a refused message would fail the case."""

    at: datetime
    actor: str
    action: str
    outcome: AuditOutcome
    request_id: str | None = None
    task: str | None = None
    detail: str = ""


class CaseState(StateModel):
    reference: str
    topic: Key
    workflow_type: Key
    workflow_version: int
    config_version: int
    created_by: Key
    created_at: datetime
    owner: Owner
    status: CaseStatus = "open"
    finished_at: datetime | None = None
    closed_by: Key | None = None
    close_reason: str | None = None
    tasks: list[CaseTask] = Field(default_factory=list)
    case_sla: CaseSla | None = None
    # Case holds (the last is current while its `released_at` is None).
    holds: tuple[Hold, ...] = ()
    # The latest entries of the audit trail (the whole trail is in the store, written with
    # each record of the case): a case's own state stays within Temporal's payload limits
    # however many messages it receives. `audit_total` counts every entry ever written, so
    # the entry audit[i] is number audit_total - len(audit) + i of the trail.
    audit: list[AuditEntry] = Field(default_factory=list)
    audit_total: int = 0
    # Request ids already handled (the latest REQUESTS_KEPT): a repeated id with the same
    # content changes nothing; with other content it is refused. `request_digests` holds the
    # content digest of each id handled since digests were kept.
    request_ids: list[str] = Field(default_factory=list)
    request_digests: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _count_earlier_audit(self) -> CaseState:
        # A state carried from before `audit_total` was kept counts the entries it holds.
        self.audit_total = max(self.audit_total, len(self.audit))
        return self

    def task(self, key: Key) -> CaseTask | None:
        return next((t for t in self.tasks if t.key == key), None)

    @property
    def hold(self) -> Hold | None:
        """The case's current hold (None: not on hold)."""
        return self.holds[-1] if self.holds and self.holds[-1].released_at is None else None


def pack_state(state: CaseState) -> bytes:
    """A case's state at rest, as a waiting case keeps it: its JSON, compressed (1-2 KB for
    ten tasks, in one object the garbage collector never visits, where the live models take
    14-21 KiB in 60-80 objects)."""
    return zlib.compress(state.model_dump_json().encode(), 1)


def unpack_state(packed: bytes) -> CaseState:
    """The state `pack_state` packed, equal to it field for field: the same JSON that
    continue-as-new carries and the `state` query returns."""
    return CaseState.model_validate_json(zlib.decompress(packed))
