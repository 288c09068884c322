"""`python -m starter staff ...`: the staff directory from the command line.

    staff add KEY --name NAME [--email EMAIL] [--role ROLE]...
    staff disable KEY | staff enable KEY
    staff absent KEY --from DATE --to DATE [--reason leave|sickness|training|other]
    staff role add-member ROLE KEY | staff role remove-member ROLE KEY
    staff list | staff show KEY
    staff import FILE.csv [--dry-run]

Every change is recorded with who made it (`--by`, default the operating system account) and
reaches every running case within about a second (`store.directory`). Each command prints the
changes it made, or "no change" (every command is idempotent). Built on
`store.directory.StaffDirectory`, the API services use.
"""

from __future__ import annotations

import argparse
import getpass
from collections.abc import Callable
from datetime import date
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine

from store.directory import (
    ABSENCE_REASONS,
    KEEP,
    Change,
    StaffDirectory,
    import_file,
    today_london,
)


def _changer() -> str:
    """Who a change is by when `--by` is not given: the operating system account, as a key."""
    try:
        name = getpass.getuser()
    except Exception:
        name = "cli"
    cleaned = "".join(c if c.isalnum() or c in "_.-@" else "-" for c in name).lstrip("-_.@")
    return (cleaned or "cli")[:100]


def _report(args: argparse.Namespace, changes: list[Change], out: Console) -> int:
    data = [{"action": c.action, "subject": c.subject, "detail": dict(c.detail)} for c in changes]
    verb = "would make" if getattr(args, "dry_run", False) else "made"
    if args.json:
        import json

        print(json.dumps({"changes": data, "dry_run": bool(getattr(args, "dry_run", False))}))
        return 0
    if not changes:
        out.print("no change: the directory already says so")
        return 0
    out.print(f"{len(changes)} change(s) {verb}:")
    for c in changes:
        out.print(f"  {c.describe()}", markup=False, highlight=False)
    return 0


def _call(
    method: str, *fields: str
) -> Callable[[StaffDirectory, argparse.Namespace], list[Change]]:
    """Call `StaffDirectory.<method>` with the named arguments of the command and `by`."""

    def call(d: StaffDirectory, args: argparse.Namespace) -> list[Change]:
        changes: list[Change] = getattr(d, method)(*(getattr(args, f) for f in fields), by=args.by)
        return changes

    return call


def add_staff_commands(sub: Any, store: Callable[[], Engine], out: Console) -> None:
    """Add `staff` and its subcommands to the top-level subparsers `sub`."""
    staff = sub.add_parser("staff", help="the staff directory: users, roles, absences, import")
    ss = staff.add_subparsers(dest="staff_command", required=True)

    def by(p: argparse.ArgumentParser) -> None:
        p.add_argument("--by", default=None, help="who makes the change (default: your account)")

    def run(fn: Callable[[StaffDirectory, argparse.Namespace], list[Change]]) -> Any:
        def command(args: argparse.Namespace) -> int:
            args.by = args.by or _changer()
            return _report(args, fn(StaffDirectory(store()), args), out)

        return command

    a = ss.add_parser(
        "add", help="add a member of staff (or update their name, email and alert preferences)"
    )
    a.add_argument("key", help="staff key (an identifier, never an applicant's data)")
    a.add_argument("--name", required=True, help="display name")
    a.add_argument("--email")
    a.add_argument("--role", action="append", default=[], help="a role to join (repeatable)")
    a.add_argument(
        "--channels",
        default=KEEP,
        help="alert channels besides the inbox: email;webhook, none (default: as they are; "
        "for a new user every channel)",
    )
    a.add_argument(
        "--digest-at",
        default=KEEP,
        help="HH:MM: ambers by email once a day as one digest (UK time); '' for none",
    )
    by(a)
    a.set_defaults(
        fn=run(
            lambda d, x: d.add_user(
                x.key,
                x.name,
                email=x.email,
                roles=x.role,
                channels=x.channels,
                digest_at=x.digest_at,
                by=x.by,
            )
        )
    )

    for name, text, method in (
        ("disable", "disable an account: refused on every case at once", "disable"),
        ("enable", "enable an account again", "enable"),
    ):
        c = ss.add_parser(name, help=text)
        c.add_argument("key")
        by(c)
        c.set_defaults(fn=run(_call(method, "key")))

    ab = ss.add_parser("absent", help="record an absence (unavailable for new work)")
    ab.add_argument("key")
    ab.add_argument("--from", dest="first", type=date.fromisoformat, required=True)
    ab.add_argument("--to", dest="last", type=date.fromisoformat, required=True)
    ab.add_argument("--reason", choices=ABSENCE_REASONS, default="leave")
    by(ab)
    ab.set_defaults(
        fn=run(lambda d, x: d.record_absence(x.key, x.first, x.last, reason=x.reason, by=x.by))
    )

    role = ss.add_parser("role", help="role membership")
    rs = role.add_subparsers(dest="role_command", required=True)
    for name, text, method in (
        ("add-member", "make a user a member of a role from today", "add_member"),
        ("remove-member", "end a user's membership of a role (from today)", "remove_member"),
    ):
        c = rs.add_parser(name, help=text)
        c.add_argument("role")
        c.add_argument("key")
        by(c)
        c.set_defaults(fn=run(_call(method, "role", "key")))

    im = ss.add_parser("import", help="import a CSV export of an HR or identity system")
    im.add_argument("file")
    im.add_argument("--dry-run", action="store_true", help="print the changes, make none")
    im.add_argument("--by", default=None, help="who makes the change (default: import.<file>)")

    def cmd_import(args: argparse.Namespace) -> int:
        changes = import_file(store(), args.file, by=args.by, dry_run=args.dry_run)
        return _report(args, changes, out)

    im.set_defaults(fn=cmd_import)

    ls = ss.add_parser("list", help="every member of staff, with roles today")
    ls.set_defaults(fn=lambda args: _list(args, store(), out))

    sh = ss.add_parser("show", help="one member of staff: roles, absences, history")
    sh.add_argument("key")
    sh.set_defaults(fn=lambda args: _show(args, store(), out))


def _list(args: argparse.Namespace, engine: Engine, out: Console) -> int:
    snapshot = StaffDirectory(engine).snapshot()
    today = today_london()
    rows: list[dict[str, Any]] = [
        {
            "key": m.key,
            "display_name": m.display_name,
            "email": m.email,
            "disabled": m.disabled,
            "roles": m.roles_on(today),
            "absent_today": m.absence_on(today) is not None,
        }
        for m in snapshot.staff.values()
    ]
    if args.json:
        import json

        print(json.dumps(rows, indent=2))
        return 0
    table = Table(title=f"Staff directory: {len(rows)} member(s) (version {snapshot.version})")
    for col in ("Key", "Name", "Email", "Status", "Roles today"):
        table.add_column(col)
    for r in rows:
        status = "disabled" if r["disabled"] else ("absent" if r["absent_today"] else "active")
        table.add_row(
            r["key"], r["display_name"], r["email"] or "-", status, ", ".join(r["roles"]) or "-"
        )
    out.print(table)
    return 0


def _show(args: argparse.Namespace, engine: Engine, out: Console) -> int:
    directory = StaffDirectory(engine)
    m = directory.user(args.key)
    history = directory.history(m.key)
    data = {
        "key": m.key,
        "display_name": m.display_name,
        "email": m.email,
        "disabled": m.disabled,
        "channels": sorted(m.alert_channels()),
        "digest_at": m.digest_at,
        "memberships": [
            {
                "role": ms.role,
                "effective_from": ms.effective_from.isoformat(),
                "effective_to": ms.effective_to.isoformat() if ms.effective_to else None,
            }
            for ms in m.memberships
        ],
        "absences": [a.model_dump(mode="json") for a in m.absences],
        "history": [
            {
                "at": h.at.isoformat(),
                "by": h.changed_by,
                "action": h.action,
                "detail": h.detail,
            }
            for h in history
        ],
    }
    if args.json:
        import json

        print(json.dumps(data, indent=2))
        return 0
    status = "disabled" if m.disabled else "active"
    out.print(f"[bold]{m.key}[/] {m.display_name} <{m.email or '-'}> · {status}", highlight=False)
    digest = f"; ambers by email as a digest at {m.digest_at}" if m.digest_at else ""
    out.print(
        f"alerts: inbox, {', '.join(sorted(m.alert_channels())) or 'nothing else'}{digest}",
        highlight=False,
    )
    t = Table(title="Roles")
    for col in ("Role", "From", "To"):
        t.add_column(col)
    for ms in m.memberships:
        t.add_row(
            ms.role,
            ms.effective_from.isoformat(),
            ms.effective_to.isoformat() if ms.effective_to else "-",
        )
    out.print(t)
    t = Table(title="Absences")
    for col in ("From", "To", "Reason"):
        t.add_column(col)
    for ab in m.absences:
        t.add_row(ab.first_day.isoformat(), ab.last_day.isoformat(), ab.reason)
    out.print(t)
    t = Table(title="History")
    for col in ("At", "By", "Change"):
        t.add_column(col)
    for h in history:
        t.add_row(
            h.at.isoformat(timespec="seconds"),
            h.changed_by,
            Change(h.action, h.subject, h.detail).describe(),
        )
    out.print(t)
    return 0
