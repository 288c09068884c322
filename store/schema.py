"""The store's tables (SQLAlchemy 2 typed declarative models).

The workflow's own state is the truth for a running case; these tables hold what lives
outside it: the versioned configuration, the alert inbox, a reporting copy of cases and tasks
(which workload-based allocation reads), and the allocation answers that make the allocate
activity idempotent.

Instants are stored timezone-aware and always come back as aware UTC datetimes, on SQLite
too (which has no time zone type: `UtcDateTime` stores naive UTC there).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

KEY = 200  # length of configuration keys, staff keys and case references


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware instant, returned as aware UTC on every backend. Naive datetimes are
    refused: an instant without a zone is a bug waiting for the October clock change."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: store timezone-aware instants")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            # SQLite stores text; keep one format (naive UTC) so comparisons stay correct.
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# An autoincrementing 64-bit key on PostgreSQL; SQLite autoincrements only INTEGER keys.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    pass


class ConfigVersion(Base):
    """One stored configuration; its id is the configuration version a case pins. The same
    content (by hash) is stored once; loading it again makes it the latest again."""

    __tablename__ = "config_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # When this content was last loaded: the most recently loaded one is in force.
    loaded_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    # Where it came from (the folder name): no personal data.
    source: Mapped[str] = mapped_column(String(KEY))
    # The Configuration as JSON.
    document: Mapped[str] = mapped_column(Text)
    # The format `document` was written in (`store.config_format`): a document of an older
    # format is upcast when read, so configurations stored by earlier releases still load.
    format_version: Mapped[int] = mapped_column(Integer, server_default="1")


class InboxAlert(Base):
    """One alert for one recipient. The unique key makes alerting idempotent: a retried
    activity finds its rows and writes nothing."""

    __tablename__ = "inbox"
    __table_args__ = (
        UniqueConstraint(
            "case_reference",
            "task_key",
            "indicator",
            "occurrence",
            "recipient",
            name="uq_inbox_alert",
        ),
        Index("ix_inbox_recipient_read", "recipient", "read_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    recipient: Mapped[str] = mapped_column(String(KEY))
    case_reference: Mapped[str] = mapped_column(String(KEY))
    case_topic: Mapped[str] = mapped_column(String(KEY))
    task_key: Mapped[str] = mapped_column(String(KEY))  # "" for the case-level SLA
    task_name: Mapped[str] = mapped_column(String(500))
    indicator: Mapped[str] = mapped_column(String(32))
    occurrence: Mapped[int] = mapped_column(Integer)
    indicator_at: Mapped[datetime] = mapped_column(UtcDateTime)
    task_due_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    task_owner: Mapped[str | None] = mapped_column(String(KEY + 10))  # "user:key" / "role:key"
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    read_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class StoredCase(Base):
    """The reporting copy of a case, written by the record_case activity."""

    __tablename__ = "cases"
    __table_args__ = (
        Index("ix_cases_status", "status"),
        Index("ix_cases_owner", "owner_kind", "owner_key"),
    )

    reference: Mapped[str] = mapped_column(String(KEY), primary_key=True)
    topic: Mapped[str] = mapped_column(String(KEY))
    workflow_type: Mapped[str] = mapped_column(String(KEY))
    workflow_version: Mapped[int] = mapped_column(Integer)
    config_version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(32))
    owner_kind: Mapped[str] = mapped_column(String(8))
    owner_key: Mapped[str] = mapped_column(String(KEY))
    created_by: Mapped[str] = mapped_column(String(KEY))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    close_reason: Mapped[str | None] = mapped_column(Text)
    sla_status: Mapped[str] = mapped_column(String(32))
    case_due_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Whether the case is on hold, and its holds (JSON list).
    on_hold: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    holds: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list, server_default="[]")
    # The workflow's revision of this copy: an older revision never overwrites a newer one.
    revision: Mapped[int] = mapped_column(Integer)


class StoredTask(Base):
    """A task of a recorded case; the workload counts read these."""

    __tablename__ = "case_tasks"
    __table_args__ = (Index("ix_case_tasks_owner_status", "owner_kind", "owner_key", "status"),)

    case_reference: Mapped[str] = mapped_column(
        String(KEY), ForeignKey("cases.reference", ondelete="CASCADE"), primary_key=True
    )
    task_key: Mapped[str] = mapped_column(String(KEY), primary_key=True)
    name: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(32))
    mandatory: Mapped[bool] = mapped_column(Boolean)
    owner_kind: Mapped[str | None] = mapped_column(String(8))
    owner_key: Mapped[str | None] = mapped_column(String(KEY))
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    due_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    sla_status: Mapped[str | None] = mapped_column(String(32))
    # Working the task (DOMAIN "Working a case"): for reports and the statutory return.
    starts_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    round: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    held_minutes: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    outcome: Mapped[str | None] = mapped_column(String(KEY), nullable=True)
    late_reason: Mapped[str | None] = mapped_column(String(KEY), nullable=True)
    cancelled_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    cancel_reason: Mapped[str | None] = mapped_column(String(KEY), nullable=True)
    # Each hold (begun, planned release, released, reason, notes, by) and each revision (old
    # and new target, reason, notes, by, when), as JSON lists.
    holds: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list, server_default="[]")
    revisions: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list, server_default="[]")


class CaseReference(Base):
    """A case reference and the first workflow run that claimed it when its case opened: a
    reference names one case for ever, whatever ID reuse policy a starter asked Temporal for,
    so a second case can never write alerts or records under the first one's keys."""

    __tablename__ = "case_references"

    reference: Mapped[str] = mapped_column(String(KEY), primary_key=True)
    first_run_id: Mapped[str] = mapped_column(String(64))
    claimed_at: Mapped[datetime] = mapped_column(UtcDateTime)


class CaseAuditRow(Base):
    """One entry of a case's audit trail, numbered from 0 in the order the case wrote it.
    The case keeps only its latest entries; this table keeps them all, each number once."""

    __tablename__ = "case_audit"

    case_reference: Mapped[str] = mapped_column(String(KEY), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    actor: Mapped[str] = mapped_column(String(KEY))
    action: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))
    request_id: Mapped[str | None] = mapped_column(String(KEY))
    task_key: Mapped[str | None] = mapped_column(String(KEY))
    detail: Mapped[str] = mapped_column(Text)


class Allocation(Base):
    """The answer the allocate activity gave for (case, target, purpose): a retry returns it
    rather than choosing again. `owner_kind`/`owner_key` are empty when nobody was available,
    and `reason` says why."""

    __tablename__ = "allocations"
    __table_args__ = (Index("ix_allocations_owner_created", "owner_key", "created_at"),)

    case_reference: Mapped[str] = mapped_column(String(KEY), primary_key=True)
    target: Mapped[str] = mapped_column(String(KEY), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(KEY), primary_key=True)
    owner_kind: Mapped[str | None] = mapped_column(String(8))
    owner_key: Mapped[str | None] = mapped_column(String(KEY))
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class RoundRobin(Base):
    """Per role: the position (in key order of its members) to try next. The row is also the
    lock that serialises allocations among the role's members."""

    __tablename__ = "round_robin"

    role: Mapped[str] = mapped_column(String(KEY), primary_key=True)
    next_index: Mapped[int] = mapped_column(Integer, default=0)


# ------------------------------------------------------------------ alert delivery (issue 11)


class AlertDelivery(Base):
    """One alert to one recipient on one channel (email, webhook): the delivery state the
    delivery loop (`activities.delivery`) works from. The inbox row is the record; this row is
    written once per (alert key, channel) by the channel's notifier inside send_alert, and
    moves pending -> sending (claimed under a lease) -> sent, or back to pending with a
    reason and a next attempt, or to failed after the last attempt."""

    __tablename__ = "alert_deliveries"
    __table_args__ = (
        UniqueConstraint(
            "case_reference",
            "task_key",
            "indicator",
            "occurrence",
            "recipient",
            "channel",
            name="uq_alert_delivery",
        ),
        Index("ix_alert_deliveries_due", "state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    case_reference: Mapped[str] = mapped_column(String(KEY))
    task_key: Mapped[str] = mapped_column(String(KEY))  # "" for the case-level SLA
    indicator: Mapped[str] = mapped_column(String(32))
    occurrence: Mapped[int] = mapped_column(Integer)
    recipient: Mapped[str] = mapped_column(String(KEY))
    channel: Mapped[str] = mapped_column(String(32))
    # The escalation rule that chose the recipients: it picks the template.
    rule: Mapped[str] = mapped_column(String(KEY))
    # pending | sending | sent | failed
    state: Mapped[str] = mapped_column(String(16))
    # Held for the recipient's daily digest (ambers by email) rather than sent alone.
    digest: Mapped[bool] = mapped_column(Boolean, default=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


# ------------------------------------------------------------------ the staff directory
# Live, not pinned (DOMAIN.md "Staff directory"): who the people are, their roles and absences,
# with a row in `staff_changes` for every change. `store.directory` reads and writes these.


class StaffUser(Base):
    """A member of staff, by staff key (an identifier: it appears in logs and audit trails,
    so never an applicant's data). A leaver is disabled, never deleted: the history of the
    cases they worked still names them."""

    __tablename__ = "staff_users"

    key: Mapped[str] = mapped_column(String(KEY), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(500))
    email: Mapped[str | None] = mapped_column(String(320))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    # Alert preferences: the channels besides the inbox (`email;webhook`, `none`; NULL: every
    # channel) and the daily digest time of ambers by email (HH:MM; NULL: none).
    channels: Mapped[str | None] = mapped_column(String(64))
    digest_at: Mapped[str | None] = mapped_column(String(5))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class StaffRoleMember(Base):
    """A membership of a role, in force from `effective_from` up to and including
    `effective_to` (open-ended when NULL). Removing a member ends the membership the day
    before; the row stays, so who was a member when is kept."""

    __tablename__ = "staff_role_members"
    __table_args__ = (
        Index("ix_staff_role_members_role", "role"),
        Index("ix_staff_role_members_user", "user_key"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    role: Mapped[str] = mapped_column(String(KEY))
    user_key: Mapped[str] = mapped_column(String(KEY), ForeignKey("staff_users.key"))
    effective_from: Mapped[date] = mapped_column(Date)
    effective_to: Mapped[date | None] = mapped_column(Date)


class StaffAbsence(Base):
    """An absence, `first_day` to `last_day` inclusive (local dates)."""

    __tablename__ = "staff_absences"
    __table_args__ = (Index("ix_staff_absences_user", "user_key", "last_day"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_key: Mapped[str] = mapped_column(String(KEY), ForeignKey("staff_users.key"))
    first_day: Mapped[date] = mapped_column(Date)
    last_day: Mapped[date] = mapped_column(Date)
    reason: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class StaffChange(Base):
    """One change to the directory: when, by whom, to which user or role, what (`action`)
    and the details as JSON (before and after). The largest id is the directory's version:
    the worker's cache reloads when it moves."""

    __tablename__ = "staff_changes"
    __table_args__ = (Index("ix_staff_changes_subject", "subject"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    changed_by: Mapped[str] = mapped_column(String(KEY))
    subject: Mapped[str] = mapped_column(String(KEY))  # a staff key, or "role:<key>"
    action: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(Text)
