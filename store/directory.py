"""The staff directory: who the people are, their roles and absences, live in the store.

DOMAIN.md "Staff directory": staff change every week, independently of the casework rules,
and usually come from an HR or identity system; so the directory is not part of what a case
pins. This module is the one way in and out:

- `StaffDirectory(engine)`, the facade services and the command line use: add a user,
  disable, enable, record an absence, add or remove a role member, import a CSV export
  (`plan_import` / `import_rows`, with a dry run), list, show, history. Every change is
  planned first as `Change`s against a snapshot read in the same transaction, then written
  with one `staff_changes` row each (who, when, what, before and after): a change that would
  change nothing is not planned, so every operation is idempotent.
- `DirectorySnapshot`, the whole directory read at once, with the answers the rest of the
  system needs: `facts(keys, on)` for the checks a case runs (`models.directory`), `users()`
  and `roles(config_roles, on)` for allocation, `members_of(role, on)` and `disabled()` for
  alert recipients.
- `DirectoryCache`, the worker's copy: it asks the store for the directory's version (the
  largest `staff_changes` id: one indexed read) at most every `ttl` seconds and reloads the
  snapshot only when it moved. A message's check asks for the version every time
  (`fresh=True`: a change committed before the message was sent is always seen); alerts and
  allocation take the copy at most `ttl` old (a herd of alerts costs no reads).

Roles named here must be roles of the configuration in force (their keys and names are
rules' targets, in `roles.yaml`); their members are the directory's. Bad input raises
`DirectoryError` naming the field and the rule, and changes nothing.
"""

from __future__ import annotations

import csv
import io
import json
import threading
import time as clock
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from domain.planner import local_date
from models.bounds import Key, Name, describe_error
from models.config import CHANNELS, Absence, RoleConfig, UserConfig
from models.directory import DirectoryFacts, StaffFacts
from store.repository import NoConfigurationError, latest_configuration
from store.schema import StaffAbsence, StaffChange, StaffRoleMember, StaffUser

AbsenceReason = Literal["leave", "sickness", "training", "other"]
ABSENCE_REASONS: tuple[str, ...] = get_args(AbsenceReason)
EMAIL_MAX_LENGTH = 254
# The columns of an import file (`key` and `display_name` are required).
IMPORT_COLUMNS: tuple[str, ...] = (
    "key",
    "display_name",
    "email",
    "disabled",
    "roles",
    "absences",
    "channels",
    "digest_at",
)
IMPORT_MAX_ROWS = 10_000
IMPORT_MAX_BYTES = 5 * 1024 * 1024
# Who made a change when nobody says (a service should always say).
UNKNOWN_CHANGER = "unknown"

_KEY = TypeAdapter(Key)
_NAME = TypeAdapter(Name)
_TRUE = {"true", "yes", "y", "1", "disabled"}
_FALSE = {"false", "no", "n", "0", "", "active", "enabled"}


class DirectoryError(ValueError):
    """A directory request that was refused: the message names what is wrong."""


def today_london() -> date:
    """The default "today" of the command line: the local date in Europe/London (a case
    uses its own calendar's date, `domain.planner.case_today`)."""
    return local_date(datetime.now(UTC))


# ------------------------------------------------------------------ validation


def valid_key(value: str, what: str = "key") -> str:
    try:
        return _KEY.validate_python(value)
    except ValidationError as e:
        raise DirectoryError(f"{what}: {describe_error(e.errors()[0])}") from None


def valid_name(value: str) -> str:
    try:
        name = _NAME.validate_python(value)
    except ValidationError as e:
        raise DirectoryError(f"display name: {describe_error(e.errors()[0])}") from None
    if not name.strip():
        raise DirectoryError("display name: must not be blank")
    return name


def valid_email(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    value = value.strip()
    if len(value) > EMAIL_MAX_LENGTH:
        raise DirectoryError(f"email: at most {EMAIL_MAX_LENGTH} characters")
    local, at, domain = value.partition("@")
    if not at or not local or "." not in domain or any(c.isspace() for c in value):
        raise DirectoryError("email: not an email address (name@domain)")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise DirectoryError("email: no control characters")
    return value


def valid_channels(value: str | None) -> str | None:
    """The channels a person's alerts go out on besides the inbox, as stored: `email;webhook`
    in a fixed order, `none` for the inbox only, None (blank) for every channel."""
    if value is None or not value.strip():
        return None
    wanted = {c.strip().lower() for c in value.replace(",", ";").split(";") if c.strip()}
    if wanted == {"none"}:
        return "none"
    unknown = wanted - set(CHANNELS)
    if unknown:
        raise DirectoryError(
            f"channels: {len(unknown)} unknown channel(s); channels: {', '.join(CHANNELS)} "
            "(separated by ';'), or none for the inbox only"
        )
    return ";".join(c for c in CHANNELS if c in wanted)


def valid_digest_at(value: str | None) -> str | None:
    """The UK local time ambers are sent as one daily email digest (HH:MM), or None."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        at = time.fromisoformat(text)
    except ValueError:
        raise DirectoryError("digest_at: a time of day HH:MM (24-hour)") from None
    if len(text) != 5 or at.second or at.microsecond:
        raise DirectoryError("digest_at: a time of day HH:MM (24-hour)")
    return text


# Alert preferences a change leaves as they are (an import without their columns, `staff add`
# without their options).
KEEP = "<keep>"


def valid_reason(value: str) -> AbsenceReason:
    if value not in ABSENCE_REASONS:
        raise DirectoryError(f"reason: one of {', '.join(ABSENCE_REASONS)}")
    reason: AbsenceReason = value  # type: ignore[assignment]
    return reason


# ------------------------------------------------------------------ the snapshot


@dataclass(frozen=True)
class Membership:
    role: str
    effective_from: date
    effective_to: date | None

    def in_force_on(self, day: date) -> bool:
        return self.effective_from <= day and (
            self.effective_to is None or day <= self.effective_to
        )


@dataclass(frozen=True)
class StaffMember:
    """One member of staff as the directory holds them."""

    key: str
    display_name: str
    email: str | None
    disabled: bool
    memberships: tuple[Membership, ...] = ()
    absences: tuple[Absence, ...] = ()
    # Alert preferences (`valid_channels`, `valid_digest_at`): None is the default.
    channels: str | None = None
    digest_at: str | None = None

    def alert_channels(self) -> frozenset[str]:
        """The channels besides the inbox this person's alerts go out on."""
        if self.channels is None:
            return frozenset(CHANNELS)
        return frozenset(c for c in self.channels.split(";") if c in CHANNELS)

    def digest_time(self) -> time | None:
        return time.fromisoformat(self.digest_at) if self.digest_at else None

    def roles_on(self, day: date) -> list[str]:
        return sorted({m.role for m in self.memberships if m.in_force_on(day)})

    def absence_on(self, day: date) -> Absence | None:
        return next((a for a in self.absences if a.first_day <= day <= a.last_day), None)


@dataclass(frozen=True)
class DirectorySnapshot:
    """The whole directory at `version` (the largest change id; 0 when empty)."""

    version: int
    staff: Mapping[str, StaffMember] = field(default_factory=dict)

    def facts(self, keys: Iterable[str], on: date) -> DirectoryFacts:
        """The facts a case's check needs about `keys` on `on` (unknown keys left out)."""
        out: dict[str, StaffFacts] = {}
        for key in keys:
            member = self.staff.get(key)
            if member is None:
                continue
            out[key] = StaffFacts(
                key=key,
                disabled=member.disabled,
                roles=member.roles_on(on),
                absence=member.absence_on(on),
            )
        return DirectoryFacts(on=on, staff=out)

    def users(self) -> dict[str, UserConfig]:
        """Every member of staff in the shape allocation reads (disabled, absences)."""
        return {
            m.key: UserConfig(
                key=m.key,
                display_name=m.display_name,
                disabled=m.disabled,
                absences=list(m.absences),
            )
            for m in self.staff.values()
        }

    def members_of(self, role: str, on: date) -> list[str]:
        return sorted(
            m.key
            for m in self.staff.values()
            if any(ms.role == role and ms.in_force_on(on) for ms in m.memberships)
        )

    def roles(self, config_roles: Iterable[RoleConfig], on: date) -> dict[str, RoleConfig]:
        """The configuration's roles with their members on `on` (allocation's shape)."""
        members: dict[str, list[str]] = {}
        for m in self.staff.values():
            for role in m.roles_on(on):
                members.setdefault(role, []).append(m.key)
        return {
            r.key: RoleConfig(key=r.key, name=r.name, members=sorted(members.get(r.key, [])))
            for r in config_roles
        }

    def disabled(self) -> set[str]:
        return {m.key for m in self.staff.values() if m.disabled}


def directory_version(engine: Engine) -> int:
    """The directory's version: the largest change id (0 before any change). Read on a raw
    driver connection with no explicit transaction: on SQLite every SQLAlchemy transaction
    begins IMMEDIATE (store.db), and this read, made for every message a case checks, must
    not queue for the write lock behind the cases' recordings."""
    conn = engine.raw_connection()
    try:
        cursor = conn.cursor()
        try:
            cursor.execute(f"SELECT max(id) FROM {StaffChange.__tablename__}")
            row = cursor.fetchone()
        finally:
            cursor.close()
    finally:
        conn.close()
    return int(row[0] or 0) if row is not None else 0


def _read_snapshot(session: Session) -> DirectorySnapshot:
    version = session.execute(select(func.max(StaffChange.id))).scalar() or 0
    memberships: dict[str, list[Membership]] = {}
    for row in session.scalars(select(StaffRoleMember).order_by(StaffRoleMember.id)):
        memberships.setdefault(row.user_key, []).append(
            Membership(row.role, row.effective_from, row.effective_to)
        )
    absences: dict[str, list[Absence]] = {}
    for a in session.scalars(select(StaffAbsence).order_by(StaffAbsence.id)):
        absences.setdefault(a.user_key, []).append(
            Absence(first_day=a.first_day, last_day=a.last_day, reason=valid_reason(a.reason))
        )
    staff = {
        u.key: StaffMember(
            key=u.key,
            display_name=u.display_name,
            email=u.email,
            disabled=u.disabled,
            memberships=tuple(memberships.get(u.key, ())),
            absences=tuple(absences.get(u.key, ())),
            channels=u.channels,
            digest_at=u.digest_at,
        )
        for u in session.scalars(select(StaffUser).order_by(StaffUser.key))
    }
    return DirectorySnapshot(version=int(version), staff=staff)


def load_directory(engine: Engine) -> DirectorySnapshot:
    """The whole directory, read in one transaction."""
    with Session(engine) as session, session.begin():
        return _read_snapshot(session)


class DirectoryCache:
    """A worker's copy of the directory, fresh to within about `ttl` seconds (see the module
    docstring). Thread-safe: activities run on a thread pool."""

    def __init__(self, engine: Engine, ttl: float = 1.0) -> None:
        self._engine = engine
        self._ttl = ttl
        self._lock = threading.Lock()
        self._snapshot: DirectorySnapshot | None = None
        self._checked = 0.0

    def snapshot(self, *, fresh: bool = False) -> DirectorySnapshot:
        """The directory: the cached copy when it was checked less than `ttl` seconds ago,
        else after one read of the version (reloaded only when that moved). `fresh`: check
        the version now whatever the ttl (a message's check: a change committed before the
        message was sent is always seen)."""
        now = clock.monotonic()
        with self._lock:
            cached, checked = self._snapshot, self._checked
        if cached is not None and not fresh and now - checked < self._ttl:
            return cached
        version = directory_version(self._engine)
        if cached is None or version != cached.version:
            cached = load_directory(self._engine)
        with self._lock:
            self._snapshot, self._checked = cached, now
        return cached


# ------------------------------------------------------------------ changes


@dataclass(frozen=True)
class Change:
    """One planned change. `action` is one of: add_user, update_user, disable, enable,
    add_absence, add_member, end_member. `subject` is the staff key."""

    action: str
    subject: str
    detail: Mapping[str, Any]

    def describe(self) -> str:
        d = self.detail
        match self.action:
            case "add_user":
                email = f" <{d['email']}>" if d.get("email") else ""
                return f"add user {self.subject} ({d['display_name']}{email})"
            case "update_user":
                parts = [f"{k} {d['before'][k]!r} -> {d['after'][k]!r}" for k in d["after"]]
                return f"update user {self.subject}: " + ", ".join(parts)
            case "disable":
                return f"disable user {self.subject}"
            case "enable":
                return f"enable user {self.subject}"
            case "add_absence":
                return (
                    f"record absence of {self.subject}: {d['reason']} {d['first_day']} to "
                    f"{d['last_day']}"
                )
            case "add_member":
                return f"add {self.subject} to role {d['role']} from {d['effective_from']}"
            case "end_member":
                return f"remove {self.subject} from role {d['role']} (last day {d['effective_to']})"
        return f"{self.action} {self.subject}"


@dataclass(frozen=True)
class ChangeRecord:
    """A change as the history keeps it."""

    id: int
    at: datetime
    changed_by: str
    subject: str
    action: str
    detail: dict[str, Any]


@dataclass
class _Planner:
    """Plans changes against a snapshot, keeping its own view up to date as it goes, so a
    plan of several steps (an import) sees its own earlier steps."""

    snapshot: DirectorySnapshot
    on: date
    known_roles: Collection[str] | None
    changes: list[Change] = field(default_factory=list)
    staff: dict[str, StaffMember] = field(init=False)

    def __post_init__(self) -> None:
        self.staff = dict(self.snapshot.staff)

    def _member(self, key: str) -> StaffMember:
        member = self.staff.get(key)
        if member is None:
            raise DirectoryError(f"user {key!r} is not in the staff directory")
        return member

    def _role(self, role: str) -> str:
        role = valid_key(role, "role")
        if self.known_roles is None:
            raise DirectoryError(
                "roles: no configuration loaded, so no roles are known: run "
                "`python -m starter config load <folder>` first"
            )
        if role not in self.known_roles:
            known = ", ".join(sorted(self.known_roles)) or "none"
            raise DirectoryError(
                f"role {role!r} is not a role of the configuration in force (roles: {known})"
            )
        return role

    def _add(self, change: Change, member: StaffMember) -> None:
        self.changes.append(change)
        self.staff[member.key] = member

    def add_or_update_user(
        self,
        key: str,
        display_name: str,
        email: str | None,
        *,
        channels: str | None = KEEP,
        digest_at: str | None = KEEP,
    ) -> None:
        """Add the user, or change what differs (`KEEP`: leave that preference as it is)."""
        key = valid_key(key, "staff key")
        display_name = valid_name(display_name)
        email = valid_email(email)
        if channels != KEEP:
            channels = valid_channels(channels)
        if digest_at != KEEP:
            digest_at = valid_digest_at(digest_at)
        existing = self.staff.get(key)
        if existing is None:
            detail: dict[str, Any] = {"display_name": display_name, "email": email}
            prefs = {"channels": channels, "digest_at": digest_at}
            detail.update({k: v for k, v in prefs.items() if v not in (KEEP, None)})
            self._add(
                Change("add_user", key, detail),
                StaffMember(
                    key,
                    display_name,
                    email,
                    False,
                    channels=detail.get("channels"),
                    digest_at=detail.get("digest_at"),
                ),
            )
            return
        wanted = {"display_name": display_name, "email": email}
        if channels != KEEP:
            wanted["channels"] = channels
        if digest_at != KEEP:
            wanted["digest_at"] = digest_at
        before: dict[str, Any] = {}
        after: dict[str, Any] = {}
        for name, value in wanted.items():
            if getattr(existing, name) != value:
                before[name], after[name] = getattr(existing, name), value
        if after:
            self._add(
                Change("update_user", key, {"before": before, "after": after}),
                replace(existing, **after),
            )

    def set_disabled(self, key: str, disabled: bool) -> None:
        member = self._member(valid_key(key, "staff key"))
        if member.disabled == disabled:
            return
        self._add(
            Change("disable" if disabled else "enable", member.key, {}),
            replace(member, disabled=disabled),
        )

    def add_absence(self, key: str, first_day: date, last_day: date, reason: str) -> None:
        member = self._member(valid_key(key, "staff key"))
        if last_day < first_day:
            raise DirectoryError(
                f"absence: --to {last_day.isoformat()} is before --from {first_day.isoformat()}"
            )
        absence = Absence(first_day=first_day, last_day=last_day, reason=valid_reason(reason))
        if absence in member.absences:
            return
        self._add(
            Change(
                "add_absence",
                member.key,
                {
                    "first_day": first_day.isoformat(),
                    "last_day": last_day.isoformat(),
                    "reason": absence.reason,
                },
            ),
            StaffMember(
                member.key,
                member.display_name,
                member.email,
                member.disabled,
                member.memberships,
                (*member.absences, absence),
            ),
        )

    def add_member(self, role: str, key: str) -> None:
        role = self._role(role)
        member = self._member(valid_key(key, "staff key"))
        if role in member.roles_on(self.on):
            return
        ms = Membership(role, self.on, None)
        self._add(
            Change("add_member", member.key, {"role": role, "effective_from": self.on.isoformat()}),
            StaffMember(
                member.key,
                member.display_name,
                member.email,
                member.disabled,
                (*member.memberships, ms),
                member.absences,
            ),
        )

    def end_member(self, role: str, key: str, *, must_be_member: bool = True) -> None:
        role = valid_key(role, "role")
        member = self._member(valid_key(key, "staff key"))
        # Memberships in force today or starting later end yesterday.
        ending = [
            m
            for m in member.memberships
            if m.role == role and (m.effective_to is None or m.effective_to >= self.on)
        ]
        if not ending:
            if must_be_member:
                raise DirectoryError(f"user {member.key!r} is not a member of role {role!r}")
            return
        last = self.on - timedelta(days=1)
        kept = tuple(m for m in member.memberships if m not in ending)
        ended = tuple(Membership(m.role, m.effective_from, last) for m in ending)
        self._add(
            Change("end_member", member.key, {"role": role, "effective_to": last.isoformat()}),
            StaffMember(
                member.key,
                member.display_name,
                member.email,
                member.disabled,
                kept + ended,
                member.absences,
            ),
        )

    def set_roles(self, key: str, roles: Sequence[str]) -> None:
        """Make `key` a member of exactly `roles` from today."""
        wanted = {self._role(r) for r in roles}
        member = self._member(key)
        current = set(member.roles_on(self.on))
        for role in sorted(wanted - current):
            self.add_member(role, key)
        for role in sorted(current - wanted):
            self.end_member(role, key)


def _write(session: Session, changes: Sequence[Change], by: str, now: datetime, on: date) -> None:
    for c in changes:
        d = c.detail
        if c.action == "add_user":
            session.add(
                StaffUser(
                    key=c.subject,
                    display_name=d["display_name"],
                    email=d["email"],
                    disabled=False,
                    channels=d.get("channels"),
                    digest_at=d.get("digest_at"),
                    created_at=now,
                    updated_at=now,
                )
            )
            session.flush()
        elif c.action in ("update_user", "disable", "enable"):
            user = session.get(StaffUser, c.subject)
            assert user is not None  # planned against this transaction's snapshot
            if c.action == "update_user":
                for name, value in d["after"].items():
                    setattr(user, name, value)
            else:
                user.disabled = c.action == "disable"
            user.updated_at = now
        elif c.action == "add_absence":
            session.add(
                StaffAbsence(
                    user_key=c.subject,
                    first_day=date.fromisoformat(d["first_day"]),
                    last_day=date.fromisoformat(d["last_day"]),
                    reason=d["reason"],
                    created_at=now,
                )
            )
        elif c.action == "add_member":
            session.add(
                StaffRoleMember(
                    role=d["role"],
                    user_key=c.subject,
                    effective_from=date.fromisoformat(d["effective_from"]),
                    effective_to=None,
                )
            )
        elif c.action == "end_member":
            rows = session.scalars(
                select(StaffRoleMember).where(
                    StaffRoleMember.user_key == c.subject, StaffRoleMember.role == d["role"]
                )
            ).all()
            for row in rows:
                if row.effective_to is None or row.effective_to >= on:
                    row.effective_to = date.fromisoformat(d["effective_to"])
        else:  # pragma: no cover - every planned action is handled above
            raise AssertionError(c.action)
        session.add(
            StaffChange(
                at=now,
                changed_by=by,
                subject=c.subject,
                action=c.action,
                detail=json.dumps(dict(d), sort_keys=True),
            )
        )
        session.flush()


# ------------------------------------------------------------------ import


@dataclass(frozen=True)
class ImportRow:
    """One row of an HR or identity export."""

    key: str
    display_name: str
    email: str | None
    disabled: bool
    roles: tuple[str, ...]
    absences: tuple[Absence, ...] = ()
    line: int = 0  # in the file it came from (0: not from a file)
    # Alert preferences: `KEEP` when the file has no such column.
    channels: str | None = KEEP
    digest_at: str | None = KEEP


def _parse_absences(text: str) -> tuple[Absence, ...]:
    """`FIRST..LAST[:reason]` items separated by `;` (ISO dates; reason leave by default)."""
    out: list[Absence] = []
    for item in (part.strip() for part in text.split(";")):
        if not item:
            continue
        span, _, reason = item.partition(":")
        first, sep, last = span.partition("..")
        try:
            first_day, last_day = (
                date.fromisoformat(first.strip()),
                date.fromisoformat(last.strip()),
            )
        except ValueError:
            raise DirectoryError("absences: FIRST..LAST[:reason] with ISO dates") from None
        if not sep or last_day < first_day:
            raise DirectoryError("absences: FIRST..LAST with LAST not before FIRST")
        out.append(
            Absence(
                first_day=first_day,
                last_day=last_day,
                reason=valid_reason(reason.strip() or "leave"),
            )
        )
    return tuple(out)


def parse_import(text: str, source: str = "the file") -> list[ImportRow]:
    """The rows of a CSV export (header `key,display_name[,email][,disabled][,roles]
    [,absences][,channels][,digest_at]`; roles separated by `;`, absences
    `2026-12-21..2027-01-08:leave;...`, channels `email;webhook` or `none`, digest_at `08:30`).
    Every problem is reported at once, by line, naming the column and the
    rule, never the value; nothing is imported from a file with a problem."""
    if len(text.encode()) > IMPORT_MAX_BYTES:
        raise DirectoryError(f"{source}: over the limit of {IMPORT_MAX_BYTES // 1024 // 1024} MB")
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    problems: list[str] = []
    missing = [c for c in ("key", "display_name") if c not in header]
    unknown = [h for h in header if h not in IMPORT_COLUMNS]
    if missing or unknown:
        parts = []
        if missing:
            parts.append("missing column(s) " + ", ".join(missing))
        if unknown:
            parts.append(f"{len(unknown)} unknown column(s)")
        raise DirectoryError(
            f"{source}: header: " + "; ".join(parts) + f"; columns: {', '.join(IMPORT_COLUMNS)}"
        )
    reader.fieldnames = header
    rows: list[ImportRow] = []
    seen: dict[str, int] = {}
    for raw in reader:
        line = reader.line_num
        if len(rows) >= IMPORT_MAX_ROWS:
            raise DirectoryError(f"{source}: over the limit of {IMPORT_MAX_ROWS} rows")
        if None in raw:
            problems.append(f"line {line}: more fields than the header has columns")
            continue
        try:
            key = valid_key((raw.get("key") or "").strip(), "key")
            name = valid_name((raw.get("display_name") or "").strip())
            email = valid_email(raw.get("email"))
            flag = (raw.get("disabled") or "").strip().lower()
            if flag not in _TRUE | _FALSE:
                raise DirectoryError("disabled: true or false (yes/no, 1/0)")
            roles = tuple(
                valid_key(r.strip(), "roles")
                for r in (raw.get("roles") or "").split(";")
                if r.strip()
            )
            absences = _parse_absences(raw.get("absences") or "")
            channels = valid_channels(raw.get("channels")) if "channels" in header else KEEP
            digest_at = valid_digest_at(raw.get("digest_at")) if "digest_at" in header else KEEP
        except DirectoryError as e:
            problems.append(f"line {line}: {e}")
            continue
        if key in seen:
            problems.append(f"line {line}: key: repeats the key of line {seen[key]}")
            continue
        seen[key] = line
        rows.append(
            ImportRow(key, name, email, flag in _TRUE, roles, absences, line, channels, digest_at)
        )
    if problems:
        shown = problems[:20]
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise DirectoryError(f"{source}: nothing imported:\n  " + "\n  ".join(shown) + more)
    return rows


# ------------------------------------------------------------------ the facade


class StaffDirectory:
    """The staff directory for services and the command line. Each method is one transaction:
    it plans its changes against the directory as it is, writes them with their history, and
    returns them (empty: nothing to change). `by` names who made the change (a staff key, a
    service name, `import:hr-export.csv`); `on` is the day memberships start or end (default:
    today in Europe/London)."""

    def __init__(self, engine: Engine, *, roles: Collection[str] | None = None) -> None:
        self._engine = engine
        # The roles memberships may name; default: those of the configuration in force.
        self._roles = roles

    def _known_roles(self) -> Collection[str] | None:
        if self._roles is not None:
            return self._roles
        try:
            _, config = latest_configuration(self._engine)
        except NoConfigurationError:
            return None
        return {r.key for r in config.roles}

    def _run(
        self,
        plan: Callable[[_Planner], None],
        *,
        by: str,
        on: date | None,
        dry_run: bool = False,
    ) -> list[Change]:
        by = valid_key(by, "by")
        day = on or today_london()
        roles = self._known_roles()
        with Session(self._engine) as session, session.begin():
            planner = _Planner(_read_snapshot(session), day, roles)
            plan(planner)
            if not dry_run:
                _write(session, planner.changes, by, datetime.now(UTC), day)
        return planner.changes

    def add_user(
        self,
        key: str,
        display_name: str,
        *,
        email: str | None = None,
        roles: Sequence[str] = (),
        channels: str | None = KEEP,
        digest_at: str | None = KEEP,
        by: str = UNKNOWN_CHANGER,
        on: date | None = None,
    ) -> list[Change]:
        """Add a member of staff (or update the name, email and alert preferences of one
        already there), and make them a member of `roles` from today. `channels`: the alert
        channels besides the inbox (`email;webhook`, `none`; None: every channel);
        `digest_at`: HH:MM for a daily digest of ambers by email (None: each at once)."""

        def plan(p: _Planner) -> None:
            p.add_or_update_user(key, display_name, email, channels=channels, digest_at=digest_at)
            for role in roles:
                p.add_member(role, key)

        return self._run(plan, by=by, on=on)

    def disable(self, key: str, *, by: str = UNKNOWN_CHANGER) -> list[Change]:
        """Disable an account (a leaver, a suspension): refused on every case at once."""
        return self._run(lambda p: p.set_disabled(key, True), by=by, on=None)

    def enable(self, key: str, *, by: str = UNKNOWN_CHANGER) -> list[Change]:
        return self._run(lambda p: p.set_disabled(key, False), by=by, on=None)

    def record_absence(
        self,
        key: str,
        first_day: date,
        last_day: date,
        *,
        reason: str = "leave",
        by: str = UNKNOWN_CHANGER,
    ) -> list[Change]:
        return self._run(lambda p: p.add_absence(key, first_day, last_day, reason), by=by, on=None)

    def add_member(
        self, role: str, key: str, *, by: str = UNKNOWN_CHANGER, on: date | None = None
    ) -> list[Change]:
        return self._run(lambda p: p.add_member(role, key), by=by, on=on)

    def remove_member(
        self, role: str, key: str, *, by: str = UNKNOWN_CHANGER, on: date | None = None
    ) -> list[Change]:
        """End the membership: `key` is no longer a member from `on` (default today)."""
        return self._run(lambda p: p.end_member(role, key), by=by, on=on)

    def import_rows(
        self,
        rows: Sequence[ImportRow],
        *,
        by: str = UNKNOWN_CHANGER,
        dry_run: bool = False,
        on: date | None = None,
    ) -> list[Change]:
        """Make the directory agree with an export: each row's user added or updated, enabled
        or disabled as it says, a member of exactly the roles it lists, with the absences it
        lists recorded (absences recorded otherwise are kept). Users the file does not list are
        left as they are. Idempotent: a second import of the same file changes
        nothing. `dry_run`: plan and return the changes, write nothing."""

        def plan(p: _Planner) -> None:
            problems: list[str] = []
            for row in rows:
                try:
                    p.add_or_update_user(
                        row.key,
                        row.display_name,
                        row.email,
                        channels=row.channels,
                        digest_at=row.digest_at,
                    )
                    p.set_disabled(row.key, row.disabled)
                    p.set_roles(row.key, row.roles)
                    for a in row.absences:
                        p.add_absence(row.key, a.first_day, a.last_day, a.reason)
                except DirectoryError as e:
                    problems.append(f"line {row.line}: {e}" if row.line else str(e))
            if problems:
                more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
                raise DirectoryError("nothing imported:\n  " + "\n  ".join(problems[:20]) + more)

        return self._run(plan, by=by, on=on, dry_run=dry_run)

    def snapshot(self) -> DirectorySnapshot:
        return load_directory(self._engine)

    def user(self, key: str) -> StaffMember:
        member = self.snapshot().staff.get(key)
        if member is None:
            raise DirectoryError(f"user {key!r} is not in the staff directory")
        return member

    def history(self, subject: str | None = None, limit: int = 1000) -> list[ChangeRecord]:
        """The changes, oldest first (of one staff key when `subject` is given)."""
        query = select(StaffChange).order_by(StaffChange.id.desc()).limit(limit)
        if subject is not None:
            query = query.where(StaffChange.subject == subject)
        with Session(self._engine) as session:
            rows = session.scalars(query).all()
            records = [
                ChangeRecord(r.id, r.at, r.changed_by, r.subject, r.action, json.loads(r.detail))
                for r in rows
            ]
        return list(reversed(records))


def import_file(
    engine: Engine,
    path: str | Path,
    *,
    by: str | None = None,
    dry_run: bool = False,
    on: date | None = None,
) -> list[Change]:
    """Import a CSV export (`parse_import`) into the directory of `engine` (by default the
    change is made by `import:<file name>`)."""
    file = Path(path)
    try:
        size = file.stat().st_size
        if size > IMPORT_MAX_BYTES:
            raise DirectoryError(
                f"{file.name}: over the limit of {IMPORT_MAX_BYTES // 1024 // 1024} MB"
            )
        text = file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise DirectoryError(f"{file.name}: cannot read the file: {e}") from None
    rows = parse_import(text, file.name)
    if by is None:
        stem = "".join(c if c.isalnum() or c in "_.-" else "-" for c in file.stem)
        by = f"import.{stem}"[:100]
    return StaffDirectory(engine).import_rows(rows, by=by, dry_run=dry_run, on=on)
