"""The workflow's input, its four messages (each a signal and a validated update), and the
answers. These are the JSON shapes any language can send (see docs/api.md). Every field is
bounded (`models.bounds`): keys by a pattern and a length, free text by a length and plain
characters, lists by a count."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AliasChoices, AwareDatetime, BaseModel, ConfigDict, Field

from models.bounds import (
    MAX_EXTRA_TASKS,
    Key,
    Note,
    Notes,
    Reason,
    RequestId,
)
from models.bounds import REFERENCE_PATTERN as REFERENCE_PATTERN  # the client uses it
from models.case import CaseState, Owner, SlaStatus, TaskStatus
from models.definition import CaseDefinition


class _Message(BaseModel):
    """What every message carries. The field descriptions are the command line's help."""

    model_config = ConfigDict(extra="forbid")

    request_id: RequestId = Field(description="idempotency key: a repeat changes nothing")
    actor: Key = Field(min_length=1, description="staff key of the acting user")


class RaiseCase(BaseModel):
    """Start a case. `reference` is the council's case reference (no personal data: it forms
    the workflow ID `case-<reference>`). `notes` stay in the case history, never in logs."""

    model_config = ConfigDict(extra="forbid")

    reference: str = Field(pattern=REFERENCE_PATTERN)
    topic: Key
    raised_by: Key
    notes: Notes = ""
    extra_tasks: list[Key] = Field(default_factory=list, max_length=MAX_EXTRA_TASKS)


class AddTask(_Message):
    task: Key = Field(description="task definition key")
    owner: Owner | None = Field(
        default=None, description="user:KEY or role:KEY (default: the workflow type's rule)"
    )
    reason: Reason = Field(default="", description="why the task is added")


ReassignReason = Literal["workload", "absence", "specialist_knowledge", "escalation", "other"]


class ReassignTask(_Message):
    task: Key = Field(description="task definition key")
    to: Owner = Field(description="user:KEY or role:KEY")
    reason: ReassignReason = Field(description="why the task moves")
    note: Note = Field(default="", description="free text kept in the case history")


class CompleteTask(_Message):
    task: Key = Field(description="task definition key")
    note: Note = Field(
        default="",
        validation_alias=AliasChoices("note", "notes"),
        description="notes kept on the task (also accepted as `notes`)",
    )
    outcome: Key | None = Field(
        default=None, description="outcome key, from the task definition's outcomes"
    )
    late_reason: Key | None = Field(
        default=None, description="late completion reason key (needed after the target)"
    )


def _notes() -> Any:
    return Field(
        default="",
        validation_alias=AliasChoices("notes", "note"),
        description="free text kept in the case history",
    )


class HoldTask(_Message):
    task: Key = Field(description="task definition key")
    reason: Key = Field(description="hold reason key (the configuration's hold reasons)")
    planned_release: AwareDatetime = Field(
        description="when the hold ends by itself (ISO 8601 with offset, in the future)"
    )
    notes: Note = _notes()


class ReleaseTask(_Message):
    task: Key = Field(description="task definition key")
    planned_release: AwareDatetime | None = Field(
        default=None,
        description="move the planned release to this instant instead of releasing now",
    )
    notes: Note = _notes()


class HoldCase(_Message):
    reason: Key = Field(description="hold reason key (the configuration's hold reasons)")
    planned_release: AwareDatetime = Field(
        description="when the hold ends by itself (ISO 8601 with offset, in the future)"
    )
    notes: Note = _notes()


class ReleaseCase(_Message):
    planned_release: AwareDatetime | None = Field(
        default=None,
        description="move the planned release to this instant instead of releasing now",
    )
    notes: Note = _notes()


class ReviseTarget(_Message):
    task: Key | None = Field(default=None, description="task definition key (omit: the case)")
    target: AwareDatetime = Field(
        description="the new target (ISO 8601 with offset, in the future)"
    )
    reason: Key = Field(description="revision reason key (the configuration's revision reasons)")
    notes: Note = _notes()


class CancelTask(_Message):
    task: Key = Field(description="task definition key")
    reason: Key = Field(description="cancellation reason key")
    cascade: bool = Field(
        default=False, description="also cancel every task that waits on this one"
    )
    notes: Note = _notes()


class CloseCase(_Message):
    reason: Reason = Field(min_length=1, description="why the case closes")


# Every message a case accepts (the rows of `domain.messages`).
MessageRequest = (
    AddTask
    | ReassignTask
    | CompleteTask
    | CloseCase
    | HoldTask
    | ReleaseTask
    | HoldCase
    | ReleaseCase
    | ReviseTarget
    | CancelTask
)


class TaskView(BaseModel):
    """What an update returns: the task's state after the request."""

    key: Key
    name: str
    status: TaskStatus
    owner: Owner | None
    started_at: datetime | None
    due_at: datetime | None
    sla_status: SlaStatus | None
    duplicate: bool = False


class CarriedCase(BaseModel):
    """What a case carries across continue-as-new: its pinned definition and whole state."""

    definition: CaseDefinition
    state: CaseState
    revision: int


class CaseInput(BaseModel):
    """The workflow's input. Services send only `case`; `carried` is set by the workflow
    itself when it continues as new."""

    model_config = ConfigDict(extra="forbid")

    case: RaiseCase
    carried: CarriedCase | None = None
    # Continue as new once history reaches this many events (or when the server suggests it
    # sooner). A case is otherwise unbounded: weekly contact tasks, repeated follow-ons.
    history_event_limit: int = Field(default=10_000, ge=20, le=1_000_000)
