"""The staff directory in the store (store.directory), on SQLite and PostgreSQL: users, roles
with effective dates, absences, the history of every change, the CSV import (dry run,
idempotent, refusals that change nothing), the worker's cache; and the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from models.config import Configuration
from store.directory import (
    DirectoryCache,
    DirectoryError,
    StaffDirectory,
    directory_version,
    load_directory,
    parse_import,
    today_london,
)
from store.repository import save_configuration
from store.schema import StaffChange, StaffUser
from tests.helpers import REPO

SAMPLE_CSV = REPO / "config" / "sample" / "staff.csv"
D1 = date(2026, 12, 1)
D2 = date(2026, 12, 8)


@pytest.fixture
def directory(engine: Engine, sample_config: Configuration) -> StaffDirectory:
    save_configuration(engine, sample_config, "sample")
    return StaffDirectory(engine)


def test_add_disable_enable_with_history(directory: StaffDirectory, engine: Engine) -> None:
    made = directory.add_user(
        "nina1",
        "Nina Shah",
        email="nina.shah@example.gov.uk",
        roles=["housing-advisers"],
        by="hr-sync",
        on=D1,
    )
    assert [c.action for c in made] == ["add_user", "add_member"]
    assert directory.add_user("nina1", "Nina Shah", email="nina.shah@example.gov.uk", by="x") == []
    nina = directory.user("nina1")
    assert (nina.display_name, nina.email, nina.disabled) == (
        "Nina Shah",
        "nina.shah@example.gov.uk",
        False,
    )
    assert nina.roles_on(D1) == ["housing-advisers"] and nina.roles_on(D1 - timedelta(1)) == []

    assert [c.action for c in directory.disable("nina1", by="tl1")] == ["disable"]
    assert directory.disable("nina1", by="tl1") == []  # idempotent
    assert directory.user("nina1").disabled
    assert [c.action for c in directory.enable("nina1", by="tl1")] == ["enable"]
    renamed = directory.add_user("nina1", "Nina Shah-Evans", by="hr-sync")
    assert [c.describe() for c in renamed] == [
        "update user nina1: display_name 'Nina Shah' -> 'Nina Shah-Evans', email "
        "'nina.shah@example.gov.uk' -> None"
    ]

    history = directory.history("nina1")
    assert [(h.action, h.changed_by) for h in history] == [
        ("add_user", "hr-sync"),
        ("add_member", "hr-sync"),
        ("disable", "tl1"),
        ("enable", "tl1"),
        ("update_user", "hr-sync"),
    ]
    assert history[1].detail == {"role": "housing-advisers", "effective_from": "2026-12-01"}
    assert all(h.at.tzinfo is not None for h in history)
    assert directory_version(engine) == history[-1].id


def test_memberships_have_effective_dates(directory: StaffDirectory) -> None:
    directory.add_user("nina1", "Nina", by="t")
    directory.add_member("team-leaders", "nina1", by="t", on=D1)
    directory.remove_member("team-leaders", "nina1", by="t", on=D2)
    nina = directory.user("nina1")
    assert nina.roles_on(D1) == nina.roles_on(D2 - timedelta(1)) == ["team-leaders"]
    assert nina.roles_on(D2) == []
    snapshot = directory.snapshot()
    assert snapshot.members_of("team-leaders", D1) == ["nina1"]
    assert snapshot.members_of("team-leaders", D2) == []
    with pytest.raises(DirectoryError, match="is not a member of role 'team-leaders'"):
        directory.remove_member("team-leaders", "nina1", by="t", on=D2)
    # Joining again starts a new membership; the old one is kept.
    directory.add_member("team-leaders", "nina1", by="t", on=D2 + timedelta(7))
    assert len(directory.user("nina1").memberships) == 2


def test_absences_make_a_user_unavailable_on_those_days(directory: StaffDirectory) -> None:
    directory.add_user("nina1", "Nina", by="t")
    made = directory.record_absence("nina1", D1, D2, reason="sickness", by="tl1")
    assert [c.describe() for c in made] == [
        "record absence of nina1: sickness 2026-12-01 to 2026-12-08"
    ]
    assert directory.record_absence("nina1", D1, D2, reason="sickness", by="tl1") == []
    facts = directory.snapshot().facts(["nina1", "ghost"], D2)
    assert set(facts.staff) == {"nina1"}
    assert facts.staff["nina1"].absence is not None and not facts.staff["nina1"].available
    assert directory.snapshot().facts(["nina1"], D2 + timedelta(1)).staff["nina1"].available
    users = directory.snapshot().users()
    assert not users["nina1"].available_on(D1) and users["nina1"].available_on(D2 + timedelta(1))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda d: d.add_user("bad key", "X", by="t"), "staff key: "),
        (lambda d: d.add_user("ok1", "", by="t"), "display name: must not be blank"),
        (lambda d: d.add_user("ok1", "Ok", email="not-an-email", by="t"), "email: not an email"),
        (lambda d: d.add_user("ok1", "Ok", roles=["wizards"], by="t"), "role 'wizards' is not"),
        (lambda d: d.disable("ghost", by="t"), "user 'ghost' is not in the staff directory"),
        (
            lambda d: d.record_absence("ghost", D1, D2, by="t"),
            "user 'ghost' is not in the staff directory",
        ),
        (lambda d: d.add_member("team-leaders", "ghost", by="t"), "'ghost' is not in the staff"),
    ],
)
def test_bad_requests_are_refused_and_change_nothing(
    directory: StaffDirectory, engine: Engine, call: object, message: str
) -> None:
    with pytest.raises(DirectoryError, match=message):
        call(directory)  # type: ignore[operator]
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(StaffUser)) == 0
        assert session.scalar(select(func.count()).select_from(StaffChange)) == 0


def test_an_absence_that_ends_before_it_starts_is_refused(directory: StaffDirectory) -> None:
    directory.add_user("nina1", "Nina", by="t")
    with pytest.raises(DirectoryError, match="--to 2026-12-01 is before --from 2026-12-08"):
        directory.record_absence("nina1", D2, D1, by="t")


def test_import_dry_run_then_import_then_nothing(directory: StaffDirectory, engine: Engine) -> None:
    rows = parse_import(SAMPLE_CSV.read_text(), "staff.csv")
    planned = directory.import_rows(rows, by="import.staff", dry_run=True, on=D1)
    assert load_directory(engine).staff == {}  # a dry run writes nothing
    made = directory.import_rows(rows, by="import.staff", on=D1)
    assert [c.describe() for c in made] == [c.describe() for c in planned]
    assert len([c for c in made if c.action == "add_user"]) == 10
    assert directory.import_rows(rows, by="import.staff", on=D1) == []  # idempotent
    snapshot = load_directory(engine)
    assert snapshot.members_of("review-officers", D1) == ["manager1", "tl2"]
    assert snapshot.staff["adviser5"].disabled
    assert snapshot.staff["adviser2"].absence_on(date(2026, 12, 24)) is not None

    # The next export: tl2 left the review officers, adviser5 came back, a new starter.
    changed = (
        SAMPLE_CSV.read_text()
        .replace("team-leaders;review-officers", "team-leaders")
        .replace("adviser5@council.example.org,true", "adviser5@council.example.org,false")
        + "adviser6,Owen Pryce,owen.pryce@example.gov.uk,false,housing-advisers,\n"
    )
    made = directory.import_rows(parse_import(changed), by="import.staff", on=D2)
    assert sorted(c.describe() for c in made) == [
        "add adviser6 to role housing-advisers from 2026-12-08",
        "add user adviser6 (Owen Pryce <owen.pryce@example.gov.uk>)",
        "enable user adviser5",
        "remove tl2 from role review-officers (last day 2026-12-07)",
    ]
    assert load_directory(engine).members_of("review-officers", D2) == ["manager1"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name,email\nx,y\n", "missing column(s) key, display_name"),
        ("key,display_name,salary\na1,A,1\n", "1 unknown column(s)"),
        ("key,display_name\na1,A\na1,B\n", "line 3: key: repeats the key of line 2"),
        ("key,display_name,disabled\na1,A,perhaps\n", "line 2: disabled: true or false"),
        ("key,display_name,roles\na1,A,wizards\n", "line 2: role 'wizards' is not a role"),
        ("key,display_name,absences\na1,A,2026-12-09..2026-12-01\n", "line 2: absences: "),
        ("key,display_name\nbad key,A\n", "line 2: key: "),
    ],
)
def test_a_bad_import_names_the_line_and_rule_and_changes_nothing(
    directory: StaffDirectory, engine: Engine, text: str, message: str
) -> None:
    with pytest.raises(DirectoryError) as info:
        directory.import_rows(parse_import(text, "hr.csv"), by="t")
    assert message in str(info.value)
    assert "perhaps" not in str(info.value) and "salary" not in str(info.value)
    assert load_directory(engine).staff == {}


def test_the_cache_reloads_when_the_directory_changes(
    directory: StaffDirectory, engine: Engine
) -> None:
    cache = DirectoryCache(engine, ttl=0.0)
    assert cache.snapshot().staff == {}
    directory.add_user("nina1", "Nina", by="t")
    assert set(cache.snapshot().staff) == {"nina1"}
    same = cache.snapshot()
    assert cache.snapshot() is same  # nothing changed: the snapshot is kept
    slow = DirectoryCache(engine, ttl=3600.0)
    first = slow.snapshot()
    directory.disable("nina1", by="t")
    assert slow.snapshot() is first  # within its ttl, the old copy
    assert cache.snapshot().staff["nina1"].disabled


def test_roles_need_a_configuration(engine: Engine) -> None:
    bare = StaffDirectory(engine)
    bare.add_user("nina1", "Nina", by="t")  # no role: fine
    with pytest.raises(DirectoryError, match="no configuration loaded"):
        bare.add_member("team-leaders", "nina1", by="t")


# ------------------------------------------------------------------ the command line


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "starter", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_command_line(tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}"}
    for var in ("TEMPORAL_ADDRESS",):
        env.pop(var, None)
    assert _cli(env, "db", "upgrade").returncode == 0
    assert _cli(env, "config", "load", "config/sample").returncode == 0
    dry = _cli(env, "staff", "import", str(SAMPLE_CSV), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "changes would make" not in dry.stdout and "would make" in dry.stdout
    assert "add user adviser1 (Amira Bennett" in dry.stdout
    assert _cli(env, "--json", "staff", "list").stdout.strip() == "[]"
    done = _cli(env, "--json", "staff", "import", str(SAMPLE_CSV))
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)["changes"]) > 10
    again = _cli(env, "staff", "import", str(SAMPLE_CSV))
    assert "no change" in again.stdout

    added = _cli(
        env,
        "staff",
        "add",
        "nina1",
        "--name",
        "Nina Shah",
        "--email",
        "nina@example.gov.uk",
        "--role",
        "housing-advisers",
        "--by",
        "tl1",
    )
    assert added.returncode == 0, added.stderr
    assert "add user nina1" in added.stdout and "add nina1 to role housing-advisers" in added.stdout
    today = today_london()
    absent = _cli(
        env,
        "staff",
        "absent",
        "nina1",
        "--from",
        today.isoformat(),
        "--to",
        (today + timedelta(days=2)).isoformat(),
        "--reason",
        "training",
    )
    assert absent.returncode == 0, absent.stderr
    assert _cli(env, "staff", "role", "add-member", "team-leaders", "nina1").returncode == 0
    assert _cli(env, "staff", "role", "remove-member", "team-leaders", "nina1").returncode == 0
    assert _cli(env, "staff", "disable", "nina1", "--by", "tl1").returncode == 0
    shown = json.loads(_cli(env, "--json", "staff", "show", "nina1").stdout)
    assert shown["disabled"] is True
    assert [h["action"] for h in shown["history"]] == [
        "add_user",
        "add_member",
        "add_absence",
        "add_member",
        "end_member",
        "disable",
    ]
    assert shown["history"][0]["by"] == "tl1"
    listed = {r["key"]: r for r in json.loads(_cli(env, "--json", "staff", "list").stdout)}
    assert listed["nina1"]["absent_today"] and listed["nina1"]["roles"] == ["housing-advisers"]
    assert listed["tl2"]["roles"] == ["review-officers", "team-leaders"]

    bad = _cli(env, "--json", "staff", "role", "add-member", "wizards", "nina1")
    assert bad.returncode == 1
    error = json.loads(bad.stderr)["error"]
    assert error["code"] == "invalid_staff_change" and "role 'wizards' is not" in error["message"]
    missing = _cli(env, "staff", "enable", "ghost")
    assert missing.returncode == 1 and "not in the staff directory" in missing.stderr
    bad_date = _cli(env, "staff", "absent", "nina1", "--from", "soon", "--to", "2026-12-01")
    assert bad_date.returncode == 2
