"""Reading and writing the store: plain functions over an Engine (or, for the steps of one
allocation transaction, a Session).

Every write is idempotent, because activities are retried: configuration by content hash,
alerts by their unique key (insert-if-absent), case records by revision, allocations by
(case, target, purpose). The insert-if-absent statements use each dialect's
`INSERT ... ON CONFLICT`, which SQLite and PostgreSQL both support.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, cast

from pydantic import BaseModel, ConfigDict
from sqlalchemy import (
    Connection,
    Engine,
    Table,
    and_,
    bindparam,
    delete,
    exists,
    func,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from models.activities import Alert, AlertKey, CaseRecord, TaskRecord
from models.case import CASE_TARGET, SYSTEM, AuditEntry, Hold, Owner, TaskStatus
from models.config import Configuration, Indicator, Key
from store.config_format import CONFIG_FORMAT, decode_configuration
from store.schema import (
    Allocation,
    Base,
    CaseAuditRow,
    CaseReference,
    ConfigVersion,
    InboxAlert,
    RoundRobin,
    StoredCase,
    StoredTask,
)

# The task statuses that count as a user's open work.
OPEN_WORK_STATUSES: tuple[TaskStatus, ...] = ("open", "waiting", "lagging")
# The inbox's task key column for the case itself (None everywhere else: see models.case). The
# column is part of the inbox's unique key, so it cannot be NULL; existing rows keep "".
CASE_TASK_KEY = ""

NO_CONFIGURATION = "no configuration loaded: run `python -m starter config load config/sample`"


class NoConfigurationError(LookupError):
    """No configuration is stored, or not the version asked for."""


def _now() -> datetime:
    return datetime.now(UTC)


def _insert(session: Session, model: type[Base]) -> sqlite.Insert | postgresql.Insert:
    """The dialect's INSERT into `model`'s table, which has `on_conflict_do_nothing` /
    `on_conflict_do_update`: a Core statement, so the session runs it as SQL rather than
    through the ORM's bulk persistence (several times the CPU for the same statement)."""
    return _dialect_insert(session.get_bind().dialect.name, model.__table__)


# ------------------------------------------------------------------ row mappers
# One function per table and direction: facts -> the row's column values, and row -> facts.
# Every reader and writer below goes through these, so a column is named in one place each way.


def configuration_hash(config: Configuration) -> tuple[str, str]:
    """The canonical JSON of `config` and its SHA-256: equal content, equal hash."""
    document = json.dumps(config.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return document, hashlib.sha256(document.encode()).hexdigest()


def _config_values(config: Configuration, source: str, loaded_at: datetime) -> dict[str, Any]:
    document, digest = configuration_hash(config)
    return {
        "content_hash": digest,
        "loaded_at": loaded_at,
        "source": source,
        "document": document,
        "format_version": CONFIG_FORMAT,
    }


def _config_from_row(document: str, format_version: int) -> Configuration:
    # Only the document (in its format) is read back: the other columns find the version.
    return decode_configuration(document, format_version)


def _owner_columns(owner: Owner | None) -> tuple[str | None, str | None]:
    return (owner.kind, owner.key) if owner is not None else (None, None)


def _owner_from_columns(kind: str | None, key: str | None) -> Owner | None:
    # Both columns are NULL for "no owner" (tasks waiting, allocations that found nobody).
    return Owner(kind=kind, key=key) if kind is not None and key is not None else None


def _case_values(record: CaseRecord) -> dict[str, Any]:
    return {
        "reference": record.reference,
        "topic": record.topic,
        "workflow_type": record.workflow_type,
        "workflow_version": record.workflow_version,
        "config_version": record.config_version,
        "status": record.status,
        "owner_kind": record.owner.kind,
        "owner_key": record.owner.key,
        "created_by": record.created_by,
        "created_at": record.created_at,
        "finished_at": record.finished_at,
        "close_reason": record.close_reason,
        "sla_status": record.sla_status,
        "case_due_at": record.case_due_at,
        "on_hold": bool(record.holds) and record.holds[-1].released_at is None,
        "holds": [h.model_dump(mode="json") for h in record.holds],
        "revision": record.revision,
    }


def _case_from_row(case: StoredCase, tasks: Iterable[StoredTask]) -> CaseRecord:
    return CaseRecord(
        reference=case.reference,
        topic=case.topic,
        workflow_type=case.workflow_type,
        workflow_version=case.workflow_version,
        config_version=case.config_version,
        status=case.status,
        owner=Owner(kind=case.owner_kind, key=case.owner_key),
        created_by=case.created_by,
        created_at=case.created_at,
        finished_at=case.finished_at,
        close_reason=case.close_reason,
        sla_status=case.sla_status,
        case_due_at=case.case_due_at,
        revision=case.revision,
        tasks=[_task_from_row(t) for t in tasks],
        holds=tuple(case.holds or ()),
    )


def _task_values(reference: str, task: TaskRecord) -> dict[str, Any]:
    owner_kind, owner_key = _owner_columns(task.owner)
    return {
        "case_reference": reference,
        "task_key": task.key,
        "name": task.name,
        "status": task.status,
        "mandatory": task.mandatory,
        "owner_kind": owner_kind,
        "owner_key": owner_key,
        "started_at": task.started_at,
        "due_at": task.due_at,
        "completed_at": task.completed_at,
        "sla_status": task.sla_status,
        "starts_at": task.starts_at,
        "round": task.round,
        "held_minutes": held_minutes(task.holds),
        "outcome": task.outcome,
        "late_reason": task.late_reason,
        "cancelled_at": task.cancelled_at,
        "cancel_reason": task.cancel_reason,
        "holds": [h.model_dump(mode="json") for h in task.holds],
        "revisions": [r.model_dump(mode="json") for r in task.revisions],
    }


def held_minutes(holds: Iterable[Hold]) -> int:
    """The minutes a task spent in holds that ended (a current hold counts once released)."""
    seconds = sum(
        (h.released_at - h.begun_at).total_seconds() for h in holds if h.released_at is not None
    )
    return int(max(seconds, 0) // 60)


def _task_from_row(t: StoredTask) -> TaskRecord:
    return TaskRecord(
        key=t.task_key,
        name=t.name,
        status=t.status,
        mandatory=t.mandatory,
        owner=_owner_from_columns(t.owner_kind, t.owner_key),
        started_at=t.started_at,
        due_at=t.due_at,
        completed_at=t.completed_at,
        sla_status=t.sla_status,
        starts_at=t.starts_at,
        round=t.round,
        outcome=t.outcome,
        late_reason=t.late_reason,
        cancelled_at=t.cancelled_at,
        cancel_reason=t.cancel_reason,
        holds=tuple(t.holds or ()),
        revisions=tuple(t.revisions or ()),
    )


class AllocationAnswer(NamedTuple):
    """The answer recorded for one allocation target: the owner, or None and the reason."""

    owner: Owner | None
    reason: str | None


def _allocation_values(
    case_reference: str, target: str, purpose: str, answer: AllocationAnswer, created_at: datetime
) -> dict[str, Any]:
    owner_kind, owner_key = _owner_columns(answer.owner)
    return {
        "case_reference": case_reference,
        "target": target,
        "purpose": purpose,
        "owner_kind": owner_kind,
        "owner_key": owner_key,
        "reason": answer.reason,
        "created_at": created_at,
    }


class AlertRow(BaseModel):
    """One alert in a user's inbox."""

    model_config = ConfigDict(frozen=True)

    id: int
    recipient: Key
    case_reference: str
    case_topic: Key
    task_key: Key | None  # None: the case-level SLA
    task_name: str
    indicator: Indicator
    occurrence: int
    indicator_at: datetime
    task_due_at: datetime | None
    task_owner: str | None  # "user:<key>" or "role:<key>"
    created_at: datetime
    read_at: datetime | None

    @property
    def key(self) -> AlertKey:
        """The row's unique key: the idempotency key of this alert's delivery on a channel."""
        return AlertKey(
            self.case_reference, self.task_key, self.indicator, self.occurrence, self.recipient
        )


def _inbox_values(alert: Alert, recipient: Key, created_at: datetime) -> dict[str, Any]:
    return {
        "recipient": recipient,
        "case_reference": alert.case_reference,
        "case_topic": alert.case_topic,
        "task_key": alert.task if alert.task is not None else CASE_TASK_KEY,
        "task_name": alert.task_name,
        "indicator": alert.indicator,
        "occurrence": alert.occurrence,
        "indicator_at": alert.indicator_at,
        "task_due_at": alert.task_due_at,
        "task_owner": str(alert.task_owner) if alert.task_owner is not None else None,
        "created_at": created_at,
        "read_at": None,
    }


def _alert_from_row(a: InboxAlert) -> AlertRow:
    return AlertRow(
        id=a.id,
        recipient=a.recipient,
        case_reference=a.case_reference,
        case_topic=a.case_topic,
        task_key=a.task_key or None,
        task_name=a.task_name,
        indicator=a.indicator,
        occurrence=a.occurrence,
        indicator_at=a.indicator_at,
        task_due_at=a.task_due_at,
        task_owner=a.task_owner,
        created_at=a.created_at,
        read_at=a.read_at,
    )


# ------------------------------------------------------------------ configuration


def save_configuration(
    engine: Engine, config: Configuration, source: str, *, now: datetime | None = None
) -> int:
    """Store `config` (already validated) and return its version. Idempotent: content already
    stored returns its existing version, which becomes the latest again (loading an earlier
    configuration again puts it back in force). `source` is the folder name, for operators."""
    with Session(engine) as session, session.begin():
        # "Latest" is the most recent load: keep loaded_at increasing even when the clock
        # is coarse or two loads share an instant.
        previous = session.scalar(select(func.max(ConfigVersion.loaded_at)))
        loaded_at = now or _now()
        if previous is not None and loaded_at <= previous:
            loaded_at = previous + timedelta(microseconds=1)
        stmt = _insert(session, ConfigVersion).values(_config_values(config, source, loaded_at))
        upsert = stmt.on_conflict_do_update(
            index_elements=["content_hash"], set_={"loaded_at": stmt.excluded.loaded_at}
        ).returning(ConfigVersion.id)
        version: int = session.execute(upsert).scalar_one()
    return version


def latest_configuration_version(engine: Engine) -> int | None:
    """The version in force (the most recently loaded), or None when none is stored."""
    with Session(engine) as session:
        version: int | None = session.scalars(
            select(ConfigVersion.id)
            .order_by(ConfigVersion.loaded_at.desc(), ConfigVersion.id.desc())
            .limit(1)
        ).first()
    return version


def latest_configuration(engine: Engine) -> tuple[int, Configuration]:
    """The version in force and its configuration. Raises NoConfigurationError when none is
    stored."""
    with Session(engine) as session:
        row = session.execute(
            select(ConfigVersion.id, ConfigVersion.document, ConfigVersion.format_version)
            .order_by(ConfigVersion.loaded_at.desc(), ConfigVersion.id.desc())
            .limit(1)
        ).first()
    if row is None:
        raise NoConfigurationError(NO_CONFIGURATION)
    return row.id, _config_from_row(row.document, row.format_version)


def configuration(engine: Engine, version: int) -> Configuration:
    """Configuration version `version`. Raises NoConfigurationError when it is not stored."""
    with Session(engine) as session:
        row = session.execute(
            select(ConfigVersion.document, ConfigVersion.format_version).where(
                ConfigVersion.id == version
            )
        ).first()
    if row is None:
        raise NoConfigurationError(f"configuration version {version} is not stored")
    return _config_from_row(row.document, row.format_version)


# ------------------------------------------------------------------ cases


class RecordOutcome(NamedTuple):
    """What one `record_case_outcome` call changed (for the worker's metrics)."""

    written: bool  # the record was newer than the stored copy, and was written
    opened: bool  # it was the case's first record
    finished: bool  # it took the case from open to completed or closed
    new_audit: list[AuditEntry]  # audit entries stored by this call (none on a retry)


def record_case(engine: Engine, record: CaseRecord) -> bool:
    """Upsert the reporting copy of a case and replace its tasks. A record whose revision is
    not newer than the stored one changes nothing (a late retry of an older record, or a retry
    of this one). Returns whether the record was written."""
    return record_case_outcome(engine, record).written


# The statements an alert and a record run, built once per dialect and executed with their rows
# as parameters on a plain connection (no ORM session): SQLAlchemy rebuilds the `excluded`
# columns of an ON CONFLICT statement every time one is made, compiles a multi-row VALUES
# afresh for each number of rows, and routes an ORM insert through its bulk persistence
# machinery. Measured on SQLite (docs/benchmarks.md): an alert's inbox insert 2.2 ms of CPU
# as an ORM statement, 0.5 ms as a prepared Core statement; those costs were most of the
# worker's Python time in an alert herd (bench/profile_report.py).
_PREPARED: dict[tuple[str, str, tuple[str, ...]], Any] = {}

_INBOX_KEY = ["case_reference", "task_key", "indicator", "occurrence", "recipient"]


def _prepared(dialect: str, name: str, columns: tuple[str, ...] = ()) -> Any:
    key = (dialect, name, columns)
    stmt = _PREPARED.get(key)
    if stmt is None:
        stmt = _PREPARED[key] = _prepare(dialect, name, columns)
    return stmt


# What the allocation steps run on: the activity's Connection, or a Session.
Bind = Connection | Session


def _dialect_of(bind: Bind) -> str:
    return bind.get_bind().dialect.name if isinstance(bind, Session) else bind.dialect.name


def _dialect_insert(dialect: str, table: Any) -> sqlite.Insert | postgresql.Insert:
    """The dialect's INSERT into `table`."""
    if dialect == "sqlite":
        return sqlite.insert(table)
    if dialect == "postgresql":
        return postgresql.insert(table)
    raise NotImplementedError(f"the store supports SQLite and PostgreSQL, not {dialect}")


def _prepare(dialect: str, name: str, columns: tuple[str, ...]) -> Any:
    cases, tasks = cast(Table, StoredCase.__table__), cast(Table, StoredTask.__table__)
    audit, inbox_rows = cast(Table, CaseAuditRow.__table__), cast(Table, InboxAlert.__table__)
    if name == "case_upsert":
        stmt = _dialect_insert(dialect, cases)
        return stmt.on_conflict_do_update(
            index_elements=["reference"],
            set_={k: stmt.excluded[k] for k in columns if k != "reference"},
            where=cases.c.revision < stmt.excluded.revision,
        ).returning(cases.c.reference)
    if name == "case_status":
        return select(cases.c.status).where(cases.c.reference == bindparam("reference"))
    if name == "audit_insert":
        return (
            _dialect_insert(dialect, audit)
            .on_conflict_do_nothing(index_elements=["case_reference", "seq"])
            .returning(audit.c.seq)
        )
    if name == "tasks_delete_all":
        return delete(tasks).where(tasks.c.case_reference == bindparam("reference"))
    if name == "tasks_delete_some":
        return delete(tasks).where(
            tasks.c.case_reference == bindparam("reference"),
            tasks.c.task_key.in_(bindparam("keys", expanding=True)),
        )
    if name == "tasks_insert":
        return _dialect_insert(dialect, tasks)
    if name == "inbox_insert":
        return (
            _dialect_insert(dialect, inbox_rows)
            .on_conflict_do_nothing(index_elements=_INBOX_KEY)
            .returning(inbox_rows.c.id)
        )
    return _prepare_allocation(dialect, name)


def _prepare_allocation(dialect: str, name: str) -> Any:
    """The allocation steps' statements (see `_prepared`)."""
    cases, tasks = cast(Table, StoredCase.__table__), cast(Table, StoredTask.__table__)
    refs, allocations = cast(Table, CaseReference.__table__), cast(Table, Allocation.__table__)
    turns = cast(Table, RoundRobin.__table__)
    if name == "reference_owner":
        return select(refs.c.first_run_id).where(refs.c.reference == bindparam("reference"))
    if name == "case_exists":
        return select(cases.c.reference).where(cases.c.reference == bindparam("reference"))
    if name == "reference_claim":
        return _dialect_insert(dialect, refs).on_conflict_do_nothing(index_elements=["reference"])
    if name == "allocations_stored":
        return select(
            allocations.c.target,
            allocations.c.owner_kind,
            allocations.c.owner_key,
            allocations.c.reason,
        ).where(
            allocations.c.case_reference == bindparam("reference"),
            allocations.c.purpose == bindparam("purpose"),
            allocations.c.target.in_(bindparam("targets", expanding=True)),
        )
    if name == "allocation_save":
        return _dialect_insert(dialect, allocations).on_conflict_do_nothing(
            index_elements=["case_reference", "target", "purpose"]
        )
    if name == "round_robin_create":
        return _dialect_insert(dialect, turns).on_conflict_do_nothing(index_elements=["role"])
    if name == "round_robin_lock":
        return select(turns.c.next_index).where(turns.c.role == bindparam("role")).with_for_update()
    if name == "round_robin_set":
        return (
            update(turns)
            .where(turns.c.role == bindparam("the_role"))
            .values(next_index=bindparam("index"))
        )
    if name == "open_work_recorded":
        return (
            select(tasks.c.owner_key, func.count())
            .join(cases, cases.c.reference == tasks.c.case_reference)
            .where(
                tasks.c.owner_kind == "user",
                tasks.c.owner_key.in_(bindparam("keys", expanding=True)),
                tasks.c.status.in_(OPEN_WORK_STATUSES),
                cases.c.status == "open",
            )
            .group_by(tasks.c.owner_key)
        )
    if name == "open_work_pending":
        return (
            select(allocations.c.owner_key, func.count())
            .where(
                allocations.c.owner_kind == "user",
                allocations.c.owner_key.in_(bindparam("keys", expanding=True)),
                allocations.c.target != CASE_TARGET,
                allocations.c.created_at >= bindparam("since"),
                ~exists().where(cases.c.reference == allocations.c.case_reference),
            )
            .group_by(allocations.c.owner_key)
        )
    raise KeyError(name)


def record_case_outcome(engine: Engine, record: CaseRecord) -> RecordOutcome:
    """`record_case`, saying what it changed: a retry of a record already stored reports
    nothing new, so counts built on it count each case, finish and audit entry once."""
    with engine.begin() as conn:
        return _record_on(conn, record)


def _record_on(conn: Connection, record: CaseRecord) -> RecordOutcome:
    """`record_case_outcome` inside the caller's transaction."""
    case_values = _case_values(record)
    new_audit: list[AuditEntry] = []
    dialect = conn.dialect.name
    if record.audit:
        # Entries never change: insert-if-absent by number, whatever the revision.
        inserted = conn.execute(
            _prepared(dialect, "audit_insert"),
            [
                _audit_values(record.reference, record.audit_from + i, entry)
                for i, entry in enumerate(record.audit)
            ],
        ).scalars()
        new_audit = [record.audit[seq - record.audit_from] for seq in sorted(inserted)]
    before = conn.execute(
        _prepared(dialect, "case_status"), {"reference": record.reference}
    ).scalar()
    upsert = _prepared(dialect, "case_upsert", tuple(case_values))
    if conn.execute(upsert, case_values).first() is None:
        return RecordOutcome(False, False, False, new_audit)
    # The upsert holds the case row's lock until commit, so replacing the tasks is safe:
    # all of them for a complete record, only the listed ones for a record of changes.
    if record.tasks_complete:
        conn.execute(_prepared(dialect, "tasks_delete_all"), {"reference": record.reference})
    elif record.tasks:
        conn.execute(
            _prepared(dialect, "tasks_delete_some"),
            {"reference": record.reference, "keys": [t.key for t in record.tasks]},
        )
    if record.tasks:
        conn.execute(
            _prepared(dialect, "tasks_insert"),
            [_task_values(record.reference, t) for t in record.tasks],
        )
    finished = record.status != "open" and before in (None, "open")
    return RecordOutcome(True, before is None, finished, new_audit)


def open_cases_by_sla_status(engine: Engine) -> dict[str, int]:
    """How many recorded cases are open, by SLA status (the worker's gauge)."""
    query = (
        select(StoredCase.sla_status, func.count())
        .where(StoredCase.status == "open")
        .group_by(StoredCase.sla_status)
    )
    with Session(engine) as session:
        return {status: int(n) for status, n in session.execute(query).all()}


def claim_reference(bind: Bind, reference: str, first_run_id: str, now: datetime) -> bool:
    """Claim `reference` for the case whose first run is `first_run_id`, inside the caller's
    transaction. True when it is this case's (newly claimed, or claimed by it before: a
    retry); False when another case has it, or a case recorded before claims were kept."""
    dialect, key = _dialect_of(bind), {"reference": reference}
    owner = bind.execute(_prepared(dialect, "reference_owner"), key).scalar()
    if owner is None:
        if bind.execute(_prepared(dialect, "case_exists"), key).first() is not None:
            return False  # a case recorded before references were claimed
        bind.execute(
            _prepared(dialect, "reference_claim"),
            {"reference": reference, "first_run_id": first_run_id, "claimed_at": now},
        )
        owner = bind.execute(_prepared(dialect, "reference_owner"), key).scalar_one()
    return bool(owner == first_run_id)  # ours, or a concurrent claim's


def _audit_values(reference: str, seq: int, entry: AuditEntry) -> dict[str, Any]:
    return {
        "case_reference": reference,
        "seq": seq,
        "at": entry.at,
        "actor": entry.actor,
        "action": entry.action,
        "outcome": entry.outcome,
        "request_id": entry.request_id,
        "task_key": entry.task,
        "detail": entry.detail,
    }


def _audit_from_row(row: CaseAuditRow) -> AuditEntry:
    return AuditEntry(
        at=row.at,
        actor=row.actor,
        action=row.action,
        outcome=row.outcome,
        request_id=row.request_id,
        task=row.task_key,
        detail=row.detail,
    )


def case_audit(engine: Engine, reference: str, *, limit: int = 10_000) -> list[AuditEntry]:
    """The whole audit trail of case `reference` as recorded, oldest first (the case itself
    keeps only its latest entries)."""
    query = (
        select(CaseAuditRow)
        .where(CaseAuditRow.case_reference == reference)
        .order_by(CaseAuditRow.seq)
        .limit(limit)
    )
    with Session(engine) as session:
        return [_audit_from_row(row) for row in session.scalars(query)]


def load_case(engine: Engine, reference: str) -> CaseRecord | None:
    """The stored reporting copy of case `reference` (tasks in key order), or None. The
    store's reader of case records: the H-CLIC statutory return (still to come) reads the
    application, decision and end timestamps it needs through it."""
    with Session(engine) as session:
        case = session.get(StoredCase, reference)
        if case is None:
            return None
        tasks = session.scalars(
            select(StoredTask)
            .where(StoredTask.case_reference == reference)
            .order_by(StoredTask.task_key)
        ).all()
        return _case_from_row(case, tasks)


# ------------------------------------------------------------------ workload


def open_task_counts(
    bind: Engine | Bind, user_keys: Collection[Key], *, pending_since: datetime | None = None
) -> dict[Key, int]:
    """Per user (every key in `user_keys`, 0 when none), the tasks they own that are open,
    waiting or lagging on an open case.

    With `pending_since`, also counts the tasks allocated to them since that instant for cases
    not recorded yet: a case's first record follows its allocation by a moment, and without
    these a burst of new cases would all go to the same "least busy" person."""
    counts: dict[Key, int] = dict.fromkeys(user_keys, 0)
    if not counts:
        return counts

    def run(conn: Bind) -> None:
        dialect = _dialect_of(conn)
        queries: list[tuple[Any, dict[str, Any]]] = [
            (_prepared(dialect, "open_work_recorded"), {"keys": list(counts)})
        ]
        if pending_since is not None:
            queries.append(
                (
                    _prepared(dialect, "open_work_pending"),
                    {"keys": list(counts), "since": pending_since},
                )
            )
        for query, params in queries:
            for key, n in conn.execute(query, params):
                if key is not None:
                    counts[key] += n

    if isinstance(bind, Engine):
        with bind.connect() as conn:
            run(conn)
    else:
        run(bind)
    return counts


# ------------------------------------------------------------------ allocation steps
# These run inside the allocate activity's one transaction: a Connection (the activity's) or
# a Session (tests and fixtures). Prepared Core statements, as the case record's (see
# `_prepared`): the allocate activity ran most of opening's store time through the ORM.


def stored_allocations(
    bind: Bind, case_reference: str, purpose: str, targets: Collection[str]
) -> dict[str, AllocationAnswer]:
    """The answers already given for these targets of (case, purpose), by target."""
    rows = bind.execute(
        _prepared(_dialect_of(bind), "allocations_stored"),
        {"reference": case_reference, "purpose": purpose, "targets": list(targets)},
    )
    return {
        target: AllocationAnswer(_owner_from_columns(kind, key), reason)
        for target, kind, key, reason in rows
    }


def save_allocation(
    bind: Bind,
    case_reference: str,
    target: str,
    purpose: str,
    owner: Owner | None,
    reason: str | None,
    now: datetime,
) -> None:
    """Record the answer for (case, target, purpose), unless one is already recorded."""
    values = _allocation_values(
        case_reference, target, purpose, AllocationAnswer(owner, reason), now
    )
    bind.execute(_prepared(_dialect_of(bind), "allocation_save"), values)


def lock_role(bind: Bind, role: Key) -> int:
    """Lock the role's round-robin row until the transaction ends (creating it at 0) and
    return its next index. Allocations among one role's members are thereby serialised on
    PostgreSQL; on SQLite every transaction holds the write lock already (see store.db)."""
    dialect = _dialect_of(bind)
    bind.execute(_prepared(dialect, "round_robin_create"), {"role": role, "next_index": 0})
    next_index: int = bind.execute(
        _prepared(dialect, "round_robin_lock"), {"role": role}
    ).scalar_one()
    return next_index


def set_round_robin(bind: Bind, role: Key, next_index: int) -> None:
    """Set the role's next round-robin position (its row is locked by `lock_role`)."""
    bind.execute(
        _prepared(_dialect_of(bind), "round_robin_set"), {"the_role": role, "index": next_index}
    )


# ------------------------------------------------------------------ inbox


def insert_alerts(engine: Engine, alert: Alert, *, now: datetime | None = None) -> int:
    """Write one inbox row per recipient of `alert` unless it is already there (the unique
    key is case, task, indicator, occurrence and recipient: `AlertKey`). Returns the number
    of rows newly written: 0 when a retry finds them all."""
    if not alert.recipients:
        return 0
    with engine.begin() as conn:
        return _insert_alerts_on(conn, alert, now or _now())


def insert_alerts_and_record(
    engine: Engine, alert: Alert, record: CaseRecord, *, now: datetime | None = None
) -> tuple[int, RecordOutcome]:
    """`insert_alerts`, and `record` recorded as `record_case_outcome` does, in one
    transaction: an alert that fired and the case record it changed are written together
    (on SQLite one write lock and one commit rather than two)."""
    with engine.begin() as conn:
        return _insert_alerts_on(conn, alert, now or _now()), _record_on(conn, record)


def _insert_alerts_on(conn: Connection, alert: Alert, created_at: datetime) -> int:
    """`insert_alerts` inside the caller's transaction."""
    rows = [_inbox_values(alert, recipient, created_at) for recipient in alert.recipients]
    if not rows:
        return 0
    return len(conn.execute(_prepared(conn.dialect.name, "inbox_insert"), rows).all())


def inbox(engine: Engine, user: Key, unread_only: bool = False, limit: int = 100) -> list[AlertRow]:
    """The alerts of `user`, newest indicator first."""
    query = select(InboxAlert).where(InboxAlert.recipient == user)
    if unread_only:
        query = query.where(InboxAlert.read_at.is_(None))
    query = query.order_by(InboxAlert.indicator_at.desc(), InboxAlert.id.desc()).limit(limit)
    with Session(engine) as session:
        return [_alert_from_row(a) for a in session.scalars(query)]


def mark_read(
    engine: Engine, user: Key, alert_ids: Sequence[int], *, now: datetime | None = None
) -> int:
    """Mark alerts of `user` read; others' alerts and alerts already read are left alone.
    Returns the number marked."""
    if not alert_ids:
        return 0
    with Session(engine) as session, session.begin():
        result = session.execute(
            update(InboxAlert)
            .where(
                and_(
                    InboxAlert.recipient == user,
                    InboxAlert.id.in_(list(alert_ids)),
                    InboxAlert.read_at.is_(None),
                )
            )
            .values(read_at=now or _now())
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]


def cases_with_work_owned_by(engine: Engine, owner: Owner, limit: int = 10_000) -> list[str]:
    """References of open cases with a task (open, waiting or lagging) owned by `owner`, as
    last recorded. The reporting copy may lag the workflows by a moment: callers confirm with
    each case's own state before acting."""
    query = (
        select(StoredTask.case_reference)
        .join(StoredCase, StoredCase.reference == StoredTask.case_reference)
        .where(
            StoredCase.status == "open",
            StoredTask.status.in_(OPEN_WORK_STATUSES),
            StoredTask.owner_kind == owner.kind,
            StoredTask.owner_key == owner.key,
        )
        .distinct()
        .order_by(StoredTask.case_reference)
        .limit(limit)
    )
    with Session(engine) as session:
        return list(session.scalars(query))


# ------------------------------------------------------------------ reconciliation
# For cases whose workflows ended in a way they could not record (see activities.reconcile).


def open_case_references(
    engine: Engine, *, after: str | None = None, limit: int = 100
) -> list[str]:
    """References of the cases recorded as open, in reference order, after `after` (a page:
    pass the last reference of the previous one)."""
    query = select(StoredCase.reference).where(StoredCase.status == "open")
    if after is not None:
        query = query.where(StoredCase.reference > after)
    with Session(engine) as session:
        return list(session.scalars(query.order_by(StoredCase.reference).limit(limit)))


RECONCILED_ACTION = "case_reconciled"


def mark_case_ended(
    engine: Engine,
    reference: str,
    reason: str,
    finished_at: datetime,
    *,
    now: datetime | None = None,
) -> bool:
    """Close the stored case `reference` whose workflow has ended without recording it: status
    closed, `reason`, `finished_at`, its unfinished tasks cancelled, a system entry at the end
    of its audit trail. Only while the row still says open (a case that recorded its own end
    meanwhile is left as it recorded it); the revision goes up by one, so a record the ended
    workflow had in flight cannot reopen it. Returns whether the case was marked."""
    with Session(engine) as session, session.begin():
        marked = session.execute(
            update(StoredCase)
            .where(StoredCase.reference == reference, StoredCase.status == "open")
            .values(
                status="closed",
                close_reason=reason,
                finished_at=finished_at,
                revision=StoredCase.revision + 1,
            )
            .execution_options(synchronize_session=False)
        )
        if int(marked.rowcount) == 0:  # type: ignore[attr-defined]
            return False
        session.execute(
            update(StoredTask)
            .where(
                StoredTask.case_reference == reference,
                StoredTask.status.in_(OPEN_WORK_STATUSES),
            )
            .values(status="cancelled")
            .execution_options(synchronize_session=False)
        )
        last = session.scalar(
            select(func.max(CaseAuditRow.seq)).where(CaseAuditRow.case_reference == reference)
        )
        entry = AuditEntry(
            at=now or _now(),
            actor=SYSTEM,
            action=RECONCILED_ACTION,
            outcome="system",
            detail=reason,
        )
        session.execute(
            _insert(session, CaseAuditRow)
            .values(_audit_values(reference, (last if last is not None else -1) + 1, entry))
            .on_conflict_do_nothing(index_elements=["case_reference", "seq"])
        )
    return True
