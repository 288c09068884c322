"""The store on SQLite and PostgreSQL: configuration versions, case records, the inbox and
workload counts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, inspect
from sqlalchemy.orm import Session

from models.activities import Alert, AlertInput, CaseRecord, TaskRecord
from models.case import Owner, TaskStatus
from models.config import Configuration, EscalationRuleConfig, UserConfig
from store import db
from store.db import create_schema, database_url, make_engine, normalise_url
from store.repository import (
    NoConfigurationError,
    cases_with_work_owned_by,
    configuration,
    inbox,
    insert_alerts,
    insert_alerts_and_record,
    latest_configuration,
    latest_configuration_version,
    load_case,
    mark_read,
    open_task_counts,
    record_case,
    save_allocation,
    save_configuration,
)

LONDON = ZoneInfo("Europe/London")
T0 = datetime(2026, 11, 25, 9, 30, tzinfo=UTC)


def _user(key: str) -> Owner:
    return Owner(kind="user", key=key)


def _task(key: str, status: TaskStatus = "open", owner: Owner | None = None) -> TaskRecord:
    return TaskRecord(
        key=key,
        name=key.replace("-", " ").capitalize(),
        status=status,
        mandatory=True,
        owner=owner,
        started_at=T0 if status != "waiting" else None,
        due_at=T0 + timedelta(days=2) if status != "waiting" else None,
        completed_at=T0 + timedelta(hours=3) if status == "completed" else None,
        sla_status="on_track" if status == "open" else None,
    )


def _case(
    reference: str,
    revision: int = 1,
    tasks: list[TaskRecord] | None = None,
    owner: Owner | None = None,
    status: str = "open",
    created_at: datetime = T0,
) -> CaseRecord:
    return CaseRecord(
        reference=reference,
        topic="homeless-tonight",
        workflow_type="relief-duty",
        workflow_version=1,
        config_version=1,
        status=status,
        owner=owner or _user("adviser1"),
        created_by="adviser1",
        created_at=created_at,
        finished_at=None,
        close_reason=None,
        sla_status="on_track",
        case_due_at=T0 + timedelta(days=56),
        tasks=tasks or [],
        revision=revision,
    )


def _alert(
    task: str | None = "emergency-interview",
    indicator: str = "target_exceeded",
    occurrence: int = 1,
    case: str = "HO-1",
    at: datetime = T0,
) -> AlertInput:
    return AlertInput(
        case_reference=case,
        case_topic="homeless-tonight",
        task=task,
        task_name="Emergency interview" if task else "Case target (Relief duty)",
        indicator=indicator,
        occurrence=occurrence,
        indicator_at=at,
        task_due_at=at,
        task_owner=_user("adviser1"),
        case_owner=_user("adviser1"),
        rule=EscalationRuleConfig(key="task-owner", name="Task owner", task_owner=True),
    )


def _send(engine: Engine, alert: AlertInput, recipients: list[str]) -> int:
    return insert_alerts(engine, Alert.of(alert, recipients))


# ------------------------------------------------------------------ connection


def test_database_url_default_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert database_url() == f"sqlite:///{db.DEFAULT_SQLITE_PATH}"
    assert db.DEFAULT_SQLITE_PATH.parent.is_dir()
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@h:5432/d")
    assert database_url() == "postgresql://u@h:5432/d"


def test_postgres_urls_use_psycopg3() -> None:
    assert normalise_url("postgresql://u@h/d") == "postgresql+psycopg://u@h/d"
    assert normalise_url("postgres://u@h/d") == "postgresql+psycopg://u@h/d"
    assert normalise_url("postgresql+psycopg://u@h/d") == "postgresql+psycopg://u@h/d"
    assert normalise_url("sqlite:///x.db") == "sqlite:///x.db"
    assert make_engine("postgresql://u@h/d").url.drivername == "postgresql+psycopg"


def test_sqlite_uses_wal(tmp_path: Path) -> None:
    sqlite = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with sqlite.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    sqlite.dispose()


def test_create_schema_is_idempotent(engine: Engine) -> None:
    create_schema(engine)
    tables = set(inspect(engine).get_table_names())
    assert {"config_versions", "inbox", "cases", "case_tasks", "allocations", "round_robin"} <= (
        tables
    )


# ------------------------------------------------------------------ configuration


def test_no_configuration_says_how_to_load_one(engine: Engine) -> None:
    assert latest_configuration_version(engine) is None
    with pytest.raises(NoConfigurationError, match="python -m starter config load config/sample"):
        latest_configuration(engine)
    with pytest.raises(NoConfigurationError, match="version 7"):
        configuration(engine, 7)


def test_save_configuration_is_idempotent(
    engine: Engine,
    sample_config: Configuration,
) -> None:
    v1 = save_configuration(engine, sample_config, "sample")
    assert save_configuration(engine, sample_config, "sample") == v1
    assert latest_configuration(engine) == (v1, sample_config)
    assert configuration(engine, v1) == sample_config

    changed = sample_config.model_copy(
        update={"users": [*sample_config.users, UserConfig(key="new1", display_name="N")]}
    )
    v2 = save_configuration(engine, changed, "sample")
    assert v2 != v1
    assert latest_configuration(engine) == (v2, changed)
    # Loading the earlier content again returns its version and puts it back in force.
    assert save_configuration(engine, sample_config, "sample") == v1
    assert latest_configuration(engine) == (v1, sample_config)
    assert configuration(engine, v2) == changed


def test_latest_is_the_last_loaded_even_at_one_instant(
    engine: Engine,
    sample_config: Configuration,
) -> None:
    other = sample_config.model_copy(update={"users": []})
    v1 = save_configuration(engine, sample_config, "sample", now=T0)
    v2 = save_configuration(engine, other, "other", now=T0)
    assert latest_configuration_version(engine) == v2
    assert save_configuration(engine, sample_config, "sample", now=T0) == v1
    assert latest_configuration_version(engine) == v1


# ------------------------------------------------------------------ cases


def test_record_case_round_trips_aware_utc(engine: Engine) -> None:
    local = datetime(2026, 7, 1, 10, 0, tzinfo=LONDON)  # 09:00 UTC (summer time)
    record = _case("HO-1", created_at=local, tasks=[_task("emergency-interview", owner=None)])
    assert record_case(engine, record)
    stored = load_case(engine, "HO-1")
    assert stored is not None
    assert stored.created_at == local
    assert stored.created_at.tzinfo is UTC
    assert stored.created_at.hour == 9
    assert stored.tasks[0].due_at is not None and stored.tasks[0].due_at.tzinfo is UTC
    assert stored == record.model_copy(update={"created_at": local.astimezone(UTC)})


def test_record_case_refuses_naive_datetimes(engine: Engine) -> None:
    with pytest.raises(Exception, match="naive datetime"):
        record_case(engine, _case("HO-1", created_at=datetime(2026, 7, 1, 10, 0)))


def test_record_case_upserts_and_ignores_stale_revisions(engine: Engine) -> None:
    first = _case("HO-1", revision=1, tasks=[_task("a"), _task("b", "waiting")])
    second = _case(
        "HO-1",
        revision=2,
        owner=Owner(kind="role", key="team-leaders"),
        tasks=[_task("a", "completed"), _task("b"), _task("c", "waiting")],
    )
    assert record_case(engine, first)
    assert record_case(engine, second)
    assert load_case(engine, "HO-1") == second
    # A late retry of revision 1, and a retry of revision 2, change nothing.
    assert not record_case(engine, first)
    assert not record_case(engine, second.model_copy(update={"sla_status": "amber"}))
    assert load_case(engine, "HO-1") == second
    # Tasks are replaced, not merged: a newer record is the whole truth.
    third = _case("HO-1", revision=3, tasks=[_task("a", "completed")])
    assert record_case(engine, third)
    assert load_case(engine, "HO-1") == third


def test_a_record_of_changes_replaces_only_the_tasks_it_lists(engine: Engine) -> None:
    tasks = [_task("a"), _task("b", "waiting"), _task("c", "waiting")]
    assert record_case(engine, _case("HO-1", revision=1, tasks=tasks))
    # Revision 2 lists only b (now open) and a new task d; a and c stay as stored.
    changed = [_task("b"), _task("d", "waiting")]
    delta = _case("HO-1", revision=2, tasks=changed).model_copy(update={"tasks_complete": False})
    assert record_case(engine, delta)
    stored = load_case(engine, "HO-1")
    assert stored is not None
    assert sorted(stored.tasks, key=lambda t: t.key) == [tasks[0], changed[0], tasks[2], changed[1]]
    # A record of no task changes moves the case row only.
    quiet = _case("HO-1", revision=3, tasks=[]).model_copy(
        update={"tasks_complete": False, "sla_status": "amber"}
    )
    assert record_case(engine, quiet)
    stored = load_case(engine, "HO-1")
    assert stored is not None and stored.sla_status == "amber" and len(stored.tasks) == 4
    # A stale record of changes is refused like any other; a complete one replaces them all.
    assert not record_case(engine, delta)
    assert record_case(engine, _case("HO-1", revision=4, tasks=[_task("a", "completed")]))
    stored = load_case(engine, "HO-1")
    assert stored is not None and [t.key for t in stored.tasks] == ["a"]


def test_recorded_cases_through_the_readers(engine: Engine) -> None:
    # What the store keeps of each case, read back by the product's readers: the reporting
    # copy (load_case), workload counts and the work an owner holds.
    a1 = _user("adviser1")
    record_case(engine, _case("HO-1", tasks=[_task("a", owner=a1), _task("b", "completed", a1)]))
    record_case(
        engine,
        _case("HO-2", owner=_user("adviser2"), created_at=T0 + timedelta(hours=1)),
    )
    record_case(engine, _case("HO-3", status="closed", created_at=T0 + timedelta(hours=2)))
    stored = {ref: load_case(engine, ref) for ref in ("HO-1", "HO-2", "HO-3")}
    assert all(c is not None for c in stored.values())
    cases = {ref: c for ref, c in stored.items() if c is not None}
    assert sorted(cases, key=lambda ref: cases[ref].created_at, reverse=True) == [
        "HO-3",
        "HO-2",
        "HO-1",
    ]
    assert [ref for ref, c in cases.items() if c.status == "open"] == ["HO-1", "HO-2"]
    assert [ref for ref, c in cases.items() if c.owner == _user("adviser2")] == ["HO-2"]
    assert all(c.created_at.tzinfo is UTC for c in cases.values())
    # HO-1 holds one open task of adviser1's (the other is completed).
    assert [t.key for t in cases["HO-1"].tasks if t.status == "open"] == ["a"]
    assert open_task_counts(engine, ["adviser1"]) == {"adviser1": 1}
    assert cases_with_work_owned_by(engine, a1) == ["HO-1"]


# ------------------------------------------------------------------ workload


def test_open_task_counts(engine: Engine) -> None:
    a1, a2 = _user("adviser1"), _user("adviser2")
    record_case(
        engine,
        _case(
            "HO-1",
            tasks=[
                _task("open", "open", a1),
                _task("waiting", "waiting", a1),
                _task("lagging", "lagging", a1),
                _task("done", "completed", a1),
                _task("cancelled", "cancelled", a1),
                _task("role", "open", Owner(kind="role", key="adviser1")),
                _task("other", "open", a2),
            ],
        ),
    )
    # Tasks of a closed case are not open work, whatever their last status.
    record_case(engine, _case("HO-2", status="closed", tasks=[_task("open", "open", a2)]))
    counts = open_task_counts(engine, ["adviser1", "adviser2", "adviser3"])
    assert counts == {"adviser1": 3, "adviser2": 1, "adviser3": 0}
    assert open_task_counts(engine, []) == {}


def test_open_task_counts_include_recent_unrecorded_allocations(
    engine: Engine,
) -> None:
    with Session(engine) as session, session.begin():
        for target in ("case", "t1", "t2"):
            save_allocation(session, "HO-9", target, "raise", _user("adviser3"), None, T0)
        # An old allocation whose case was never recorded no longer counts.
        save_allocation(
            session, "HO-8", "t1", "raise", _user("adviser3"), None, T0 - timedelta(days=1)
        )
        # Nor one whose case is recorded: its tasks count instead.
        save_allocation(session, "HO-1", "t1", "raise", _user("adviser3"), None, T0)
        save_allocation(session, "HO-7", "t1", "raise", None, "nobody", T0)
    record_case(engine, _case("HO-1", tasks=[_task("t1", "open", _user("adviser3"))]))
    since = T0 - timedelta(hours=1)
    assert open_task_counts(engine, ["adviser3"]) == {"adviser3": 1}
    assert open_task_counts(engine, ["adviser3"], pending_since=since) == {"adviser3": 3}


# ------------------------------------------------------------------ inbox


def test_insert_alerts_is_insert_if_absent(engine: Engine) -> None:
    alert = _alert()
    assert _send(engine, alert, ["adviser1", "tl1", "tl1"]) == 2
    assert _send(engine, alert, ["tl1", "adviser1"]) == 0
    assert _send(engine, alert, ["adviser1", "tl1", "tl2"]) == 1
    assert _send(engine, alert, []) == 0
    # Another occurrence, indicator, task or case is another alert.
    assert _send(engine, _alert(occurrence=2), ["adviser1"]) == 1
    assert _send(engine, _alert(indicator="amber"), ["adviser1"]) == 1
    assert _send(engine, _alert(task=None), ["adviser1"]) == 1
    assert _send(engine, _alert(task=None), ["adviser1"]) == 0
    assert _send(engine, _alert(case="HO-2"), ["adviser1"]) == 1
    assert len(inbox(engine, "adviser1")) == 5
    assert [a.task_key for a in inbox(engine, "adviser1") if a.task_key is None] == [None]


def test_an_alert_and_its_case_record_are_written_together(engine: Engine) -> None:
    alert = Alert.of(_alert(), ["adviser1", "tl1"])
    record = _case("HO-1", revision=3, tasks=[_task("emergency-interview")])
    created, outcome = insert_alerts_and_record(engine, alert, record)
    assert created == 2 and outcome is not None and outcome.written and outcome.opened
    assert load_case(engine, "HO-1") == record
    # A retry writes neither again, and says so.
    created, outcome = insert_alerts_and_record(engine, alert, record)
    assert created == 0 and outcome is not None and not outcome.written
    # One transaction: a record the store refuses leaves the alert unwritten too (the
    # activity's retry then writes both).
    other = Alert.of(_alert(case="HO-2"), ["adviser1"])
    naive = _case("HO-2", created_at=datetime(2026, 7, 1, 10, 0))
    with pytest.raises(Exception, match="naive datetime"):
        insert_alerts_and_record(engine, other, naive)
    assert [a.case_reference for a in inbox(engine, "adviser1")] == ["HO-1"]
    assert load_case(engine, "HO-2") is None


def test_inbox_and_mark_read(engine: Engine) -> None:
    for n in range(3):
        _send(engine, _alert(occurrence=n + 1, at=T0 + timedelta(days=n)), ["tl1", "tl2"])
    rows = inbox(engine, "tl1")
    assert [r.occurrence for r in rows] == [3, 2, 1]  # newest first
    row = rows[0]
    assert row.recipient == "tl1"
    assert row.case_reference == "HO-1"
    assert row.task_key == "emergency-interview"
    assert row.task_owner == "user:adviser1"
    assert row.indicator == "target_exceeded"
    assert row.indicator_at == T0 + timedelta(days=2)
    assert row.indicator_at.tzinfo is UTC
    assert row.read_at is None
    assert len(inbox(engine, "tl1", limit=2)) == 2

    tl2_ids = [r.id for r in inbox(engine, "tl2")]
    # Only one's own alerts can be marked read.
    assert mark_read(engine, "tl1", tl2_ids) == 0
    assert mark_read(engine, "tl1", [rows[0].id, rows[1].id]) == 2
    assert mark_read(engine, "tl1", [rows[0].id]) == 0  # already read
    assert mark_read(engine, "tl1", []) == 0
    unread = inbox(engine, "tl1", unread_only=True)
    assert [r.id for r in unread] == [rows[2].id]
    read = [r for r in inbox(engine, "tl1") if r.read_at is not None]
    assert len(read) == 2 and all(r.read_at and r.read_at.tzinfo is UTC for r in read)
    assert len(inbox(engine, "tl2", unread_only=True)) == 3
