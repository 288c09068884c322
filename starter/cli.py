"""The command line for officers and operators: `python -m starter --help`.

Exit codes: 0 done; 1 refused or failed (the message says why); 2 bad usage.
Every command takes `--json` (before or after the command name) for scripts: the result is
JSON on stdout, and a refusal or an error is one JSON object on stderr,
{"error": {"code": ..., "message": ...}}.

A case is named by its reference (HO-2026-000123); its workflow ID (case-HO-2026-000123),
copied from the Web UI, names it too: a leading `case-` is dropped, and `raise` refuses a
reference that starts with `case-`, so the two can never be confused.
While `make demo` runs, and no TEMPORAL_* or DATABASE_URL variable is set, the commands
reach the demo's Temporal server and store (starter.connection.use_running_demo).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy import Engine
from sqlalchemy.exc import InterfaceError, OperationalError
from temporalio.service import RPCError, RPCStatusCode

from domain import planner
from domain.case_definition import DefinitionError
from domain.case_display import local
from domain.config_errors import ConfigurationError
from domain.errors import RequestRefused
from domain.messages import MESSAGES, Message
from domain.planner import local_date
from models.bounds import describe_validation_error
from models.case import CaseState, Owner
from models.messages import (
    RaiseCase,
)
from starter.client import CaseClient, CaseFilter, RequestRefusedError, new_request_id
from starter.codec import PayloadKeyError
from starter.connection import TemporalSettings, connect, use_running_demo
from store.directory import DirectoryError
from store.migrate import SchemaNotCurrentError
from store.repository import NoConfigurationError

# Piped output (scripts, CI logs) gets a wide console rather than 80 columns, and messages
# are never wrapped (soft_wrap): one message, one line, whatever reads it.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 220)
err = Console(stderr=True, soft_wrap=True, width=None if sys.stderr.isatty() else 220)

WORKFLOW_ID_PREFIX = "case-"


class CliError(Exception):
    """A failure to report on stderr with exit code 1; `code` names it under --json."""

    def __init__(self, message: str, code: str = "error") -> None:
        super().__init__(message)
        self.code = code


class _UsageError(Exception):
    """Bad usage (exit 2), raised instead of argparse's own exit so --json can report it."""

    def __init__(self, parser: argparse.ArgumentParser, message: str) -> None:
        super().__init__(message)
        self.parser = parser


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse: must not return
        raise _UsageError(self, message)


class _CommandParser(_Parser):
    """A command's parser: it takes `--json` too, so the flag works after the command name.
    SUPPRESS: when absent here, the top-level parser's value stands."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.add_argument(
            "--json", action="store_true", default=argparse.SUPPRESS, help="print JSON for scripts"
        )


def _owner(text: str) -> Owner:
    kind, sep, key = text.partition(":")
    if not sep or kind not in ("user", "role") or not key:
        raise argparse.ArgumentTypeError(f"owner must be user:KEY or role:KEY, got {text!r}")
    return Owner.model_validate({"kind": kind, "key": key})


def _emit(args: argparse.Namespace, data: Any, table: Table | str | None = None) -> None:
    if args.json:
        if isinstance(data, BaseModel):
            data = data.model_dump(mode="json")
        elif isinstance(data, list):
            data = [d.model_dump(mode="json") if isinstance(d, BaseModel) else d for d in data]
        print(json.dumps(data, indent=2, default=str))
    elif table is not None:
        out.print(table)


# ------------------------------------------------------------------ reconcile


async def cmd_reconcile(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from starter.reconcile import (
        install_schedule,
        interval_from_env,
        reconcile_now,
        schedule_id,
        worker_polling,
    )

    client = await _client()
    queue = client.task_queue
    if args.install_schedule:
        if args.every is not None and not 0 < args.every < float("inf"):
            raise CliError("--every must be a positive number of minutes", "invalid_input")
        try:
            every = timedelta(minutes=args.every) if args.every else interval_from_env()
        except ValueError as e:
            raise CliError(str(e), "invalid_settings") from None
        if every is None:
            raise CliError("RECONCILE_EVERY_MINUTES is 0: give --every", "invalid_settings")
        created = await install_schedule(client.client, queue, every)
        answer = {
            "schedule_id": schedule_id(queue),
            "task_queue": queue,
            "every_minutes": every.total_seconds() / 60,
            "created": created,
        }
        verb = "installed" if created else "updated"
        _emit(
            args,
            answer,
            f"schedule {answer['schedule_id']} {verb}: every {answer['every_minutes']:g} min "
            f"on task queue {queue}",
        )
        return 0
    if not await worker_polling(client.client, queue):
        raise CliError(
            f"no worker is polling task queue {queue}: start one (`python worker.py`), "
            "which runs the reconciliation",
            "no_worker",
        )
    result = await reconcile_now(client.client, queue)
    table = Table(
        title=f"{result.checked} open case(s) checked, {result.running} running, "
        f"{result.reconciled_total} marked closed"
    )
    for col in ("Case", "Ended", "Reason", "At"):
        table.add_column(col)
    for c in result.reconciled:
        table.add_row(c.reference, c.execution_status, c.reason, local(c.finished_at))
    _emit(args, result, table)
    return 0


# ------------------------------------------------------------------ config


def cmd_config_validate(args: argparse.Namespace) -> int:
    from config_files import load_and_validate

    config = load_and_validate(Path(args.path), args.today or local_date(datetime.now(UTC)))
    summary = {
        "path": args.path,
        "workflow_types": len(config.workflow_types),
        "topics": len(config.topics),
        "task_definitions": len(config.task_definitions),
        "roles": len(config.roles),
        "permission_rules": len(config.permissions),
    }
    _emit(args, summary, f"[green]valid[/]: {summary}")
    return 0


def cmd_config_load(args: argparse.Namespace) -> int:
    from config_files import load_and_validate
    from store.repository import save_configuration

    config = load_and_validate(Path(args.path), args.today or local_date(datetime.now(UTC)))
    engine = _store()
    version = save_configuration(engine, config, source=Path(args.path).name)
    _emit(args, {"version": version}, f"configuration loaded as version [bold]{version}[/]")
    return 0


# ------------------------------------------------------------------- cases


def _settings() -> TemporalSettings:
    try:
        return TemporalSettings.from_env()
    except ValueError as e:
        raise CliError(str(e), "invalid_settings") from None


def _connect_reason(e: Exception) -> str:
    """The useful part of the SDK's connection error ("Connection refused", ...)."""
    text = str(e)
    found = re.findall(r'message: "([^"]+)"', text)
    if found:
        return str(found[-1])
    return text.removeprefix("Failed client connect: ").splitlines()[0]


async def _client() -> CaseClient:
    settings = _settings()
    try:
        client = await connect(settings)
    except PayloadKeyError as e:
        raise CliError(str(e), "payload_keys") from None
    except ValueError as e:
        raise CliError(str(e), "invalid_settings") from None
    except RuntimeError as e:  # the SDK's "Failed client connect: ..."
        raise CliError(
            f"cannot reach Temporal at {settings.address}: {_connect_reason(e)}",
            "temporal_unreachable",
        ) from None
    return CaseClient(client, settings.task_queue, settings.search_attributes)


def _store() -> Engine:
    """The store named by DATABASE_URL; refused (SchemaNotCurrentError, naming the command
    to run) unless its schema is the code's: `python -m starter db upgrade` first."""
    from store.db import database_url, make_engine
    from store.migrate import check

    engine = make_engine(database_url())
    try:
        check(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine


# ------------------------------------------------------------------ codec server


def cmd_codec_server(args: argparse.Namespace) -> int:
    from starter.codec import EncryptionCodec, KeyRing, new_key_line
    from starter.codec_server import CodecServer, allowed_origins_from_env

    if args.new_key:
        print(new_key_line(args.new_key))
        return 0
    ring = KeyRing.from_env()
    if ring is None:
        raise CliError(
            "the codec server needs the payload keys: set CASE_PAYLOAD_KEYS or "
            "CASE_PAYLOAD_KEYS_FILE as for the worker",
            "no_payload_keys",
        )
    server = CodecServer(
        EncryptionCodec(ring),
        host=args.host,
        port=args.port,
        allowed_origins=args.allow_origin or allowed_origins_from_env(),
        token=os.environ.get("CODEC_SERVER_TOKEN") or None,
    )
    err.print(
        f"codec server on http://{args.host}:{server.port} (keys {', '.join(ring.keys)}; "
        f"encrypting with {ring.current}); Ctrl-C stops"
    )
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


# ------------------------------------------------------------------ db (schema migrations)


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from store.db import database_url, make_engine
    from store.migrate import current, describe, upgrade

    engine = make_engine(database_url())
    try:
        before = upgrade(engine)
        after = current(engine)
    finally:
        engine.dispose()
    data = {"database": _database_name(), "from": before, "to": after}
    text = (
        f"{_database_name()}: already at {after}"
        if before == after
        else f"{_database_name()}: upgraded from {describe(before)} to [bold]{after}[/]"
    )
    _emit(args, data, text)
    return 0


def cmd_db_current(args: argparse.Namespace) -> int:
    from store.db import database_url, make_engine
    from store.migrate import current, describe, head

    engine = make_engine(database_url())
    try:
        at = current(engine)
    finally:
        engine.dispose()
    wanted = head()
    data = {"database": _database_name(), "current": at, "head": wanted, "up_to_date": at == wanted}
    state = "up to date" if at == wanted else "[red]behind[/]: run `python -m starter db upgrade`"
    _emit(args, data, f"{_database_name()}: at {describe(at)}; the code needs {wanted}: {state}")
    return 0 if at == wanted else 1


def cmd_db_revision(args: argparse.Namespace) -> int:
    from store.migrate import new_revision

    try:
        path = new_revision(args.message)
    except ValueError as e:
        raise CliError(str(e), "nothing_to_migrate") from None
    _emit(args, {"path": str(path)}, f"wrote {path}: review it, then commit it")
    return 0


def check_raise(case: RaiseCase) -> None:
    """Refuse, before connecting to anything else, a raise the case would refuse: the rule
    the case itself applies (`domain.case_rules.check_raise`) against the configuration in
    force in the store, with the valid topics or staff named."""
    from starter.raise_check import store_raise_check

    engine = _store()
    try:
        store_raise_check(engine)(case)
    finally:
        engine.dispose()


async def cmd_raise(args: argparse.Namespace) -> int:
    if args.reference.startswith(WORKFLOW_ID_PREFIX):
        # Every other command reads `case-X` as the workflow ID of case X.
        raise CliError(
            f"a reference may not start with {WORKFLOW_ID_PREFIX!r} (that is how workflow IDs "
            f"start): {args.reference!r}",
            "invalid_reference",
        )
    case = RaiseCase(
        reference=args.reference, topic=args.topic, raised_by=args.by, extra_tasks=args.extra_task
    )
    check_raise(case)
    client = await _client()
    # A repeated raise answers with the case already there; a different one is refused.
    handle = await client.raise_case(case)
    _emit(args, {"workflow_id": handle.id}, f"case {args.reference} is open ({handle.id})")
    return 0


async def cmd_message(args: argparse.Namespace) -> int:
    """Any row of the message table: build its request from the command's arguments (named
    after the request model's fields), send it, print the answer."""
    msg: Message[Any] = args.message
    fields = {name: getattr(args, name) for name in msg.request.model_fields if name in args}
    req = msg.request.model_validate({**fields, "request_id": args.request_id, "actor": args.by})
    client = await _client()
    view = await client.send(args.reference, msg, req, wait=not args.signal)
    if args.signal:
        _emit(
            args, {"signalled": msg.name}, f"signal {msg.name} sent (refusals go to the case audit)"
        )
    elif view is None:
        _emit(args, {"done": msg.name}, f"{msg.name}: done")
    else:
        dup = " (duplicate request: nothing changed)" if view.duplicate else ""
        _emit(
            args,
            view,
            f"{view.name}: {view.status}, owner {view.owner}, due {local(view.due_at)}{dup}",
        )
    return 0


def _optional_of(annotation: Any) -> Any:
    """`X` for an annotation `X | None`, else the annotation itself."""
    if get_origin(annotation) in (Union, UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        if len(members) == 1:
            return members[0]
    return annotation


def add_message_command(sub: Any, msg: Message[Any]) -> None:
    """One command for a row of the message table. Its arguments come from the request
    model: `task` is positional after the reference, `actor` is `--by`, every other field is
    an option named after it (required when the field is), with the field's description as
    help; owners are `user:KEY` or `role:KEY`, fixed choices are listed."""
    m = sub.add_parser(msg.command, help=msg.help, description=msg.description)
    m.add_argument("reference", help="the case reference")
    fields = msg.request.model_fields
    if "task" in fields:
        task = fields["task"]
        if task.is_required():
            m.add_argument("task", help=task.description)
        else:  # revise: a task, or the case itself when left out
            m.add_argument("task", nargs="?", default=None, help=task.description)
    m.add_argument("--by", required=True, help=fields["actor"].description)
    m.add_argument("--request-id", default=None, help="idempotency key (default: random)")
    m.add_argument("--signal", action="store_true", help="send as a signal, do not wait")
    for name, field in fields.items():
        if name in ("request_id", "actor", "task"):
            continue
        options: dict[str, Any] = {"dest": name, "help": field.description}
        kind = _optional_of(field.annotation)
        if kind is bool:
            m.add_argument(
                f"--{name.replace('_', '-')}",
                dest=name,
                action="store_true",
                help=field.description,
            )
            continue
        if kind is Owner:
            options["type"] = _owner
        elif get_origin(kind) is Literal:
            options["choices"] = get_args(kind)
        if field.is_required():
            options["required"] = True
        else:
            options["default"] = field.get_default()
        m.add_argument(f"--{name.replace('_', '-')}", **options)
    m.set_defaults(fn=cmd_message, message=msg)


def _held(minutes: int) -> str:
    days, rest = divmod(minutes, 24 * 60)
    return (f"{days}d " if days else "") + f"{rest // 60}h{rest % 60:02d}"


def case_table(state: CaseState) -> Table:
    sla = state.case_sla
    title = (
        f"Case {state.reference} · {state.workflow_type} v{state.workflow_version} · "
        f"{state.status} · owner {state.owner} · case target {local(sla.due_at if sla else None)}"
    )
    if state.hold is not None:
        title += f" · ON HOLD until {local(state.hold.planned_release)} ({state.hold.reason})"
    table = Table(title=title)
    columns = ("Task", "State", "Owner", "Started", "Amber", "Due", "Done", "SLA", "Held", "Fired")
    for col in columns:
        table.add_column(col)
    now = datetime.now(UTC)
    for t in state.tasks:
        fired = ", ".join(f"{f.indicator}#{f.occurrence}" for f in t.fired)
        hold = t.hold
        shown = t.status.replace("_", " ")
        if hold is not None:
            shown += f" until {local(hold.planned_release)} ({hold.reason})"
        elif t.status == "lagging":
            shown += f" (starts {local(t.starts_at)})"
        table.add_row(
            t.name,
            shown,
            str(t.owner or "-"),
            local(t.started_at),
            local(t.amber_at),
            local(t.due_at),
            local(t.completed_at or t.cancelled_at),
            t.sla_status or "-",
            _held(planner.working.held_minutes(t.holds, now)) if t.holds else "-",
            fired or "-",
        )
    return table


async def cmd_show(args: argparse.Namespace) -> int:
    client = await _client()
    state = await client.state(args.reference)
    _emit(args, state, case_table(state))
    if not args.json and args.audit:
        audit = Table(title="Audit trail")
        for col in ("When", "Actor", "Action", "Outcome", "Task", "Detail"):
            audit.add_column(col)
        for a in state.audit:
            audit.add_row(local(a.at), a.actor, a.action, a.outcome, a.task or "-", a.detail)
        out.print(audit)
    return 0


_LIST_FLAGS = {
    "sla_status": "--sla",
    "owner": "--owner",
    "topic": "--topic",
    "workflow_type": "--type",
    "status": "--status",
}


def case_filter(args: argparse.Namespace) -> CaseFilter:
    """The `list` command's filter; a value that cannot be a key is refused here, naming
    the option, before anything is asked of Temporal."""
    values = {
        "sla_status": args.sla,
        "owner": args.owner,
        "topic": args.topic,
        "workflow_type": args.type,
        "status": args.status,
    }
    try:
        return CaseFilter.model_validate(values)
    except ValidationError as e:
        # The option and the rule, not the value (it may be long, or not the user's to show).
        bad = [_LIST_FLAGS.get(str(x["loc"][0]), str(x["loc"][0])) for x in e.errors()]
        raise CliError(
            f"not a valid key: {', '.join(bad)} "
            "(keys are letters, digits and - _ . @, at most 100 characters)",
            "invalid_filter",
        ) from None


async def cmd_list(args: argparse.Namespace) -> int:
    wanted = case_filter(args)
    client = await _client()
    rows = [row async for row in client.list_cases(wanted, limit=args.limit)]
    table = Table(title=f"{len(rows)} case(s)")
    for col in (
        "Reference",
        "Run",
        "Topic",
        "Type",
        "SLA",
        "Open tasks",
        "Owners",
        "Next deadline",
    ):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r.reference,
            r.status,
            r.topic or "-",
            r.workflow_type or "-",
            r.sla_status or "-",
            str(r.open_tasks if r.open_tasks is not None else "-"),
            ", ".join(r.owners) or "-",
            local(r.next_deadline),
        )
    _emit(args, rows, table)
    return 0


async def cmd_reassign_all(args: argparse.Namespace) -> int:
    from rich.progress import Progress

    from store.repository import cases_with_work_owned_by

    absent = Owner(kind="user", key=args.user)
    engine = _store()
    refs = cases_with_work_owned_by(engine, absent)
    engine.dispose()
    client = await _client()
    with Progress(console=err, disable=args.json or not refs) as bar:
        job = bar.add_task(f"reassigning {args.user}'s tasks", total=len(refs))
        results = await client.reassign_all(
            refs,
            absent,
            args.to,
            actor=args.by,
            reason=args.reason,
            note=args.note,
            progress=lambda: bar.advance(job),
        )
    moved = [r for r in results if r.outcome == "moved"]
    table = Table(title=f"{len(moved)} task(s) moved from {args.user} to {args.to}")
    for col in ("Case", "Task", "Outcome", "Why"):
        table.add_column(col)
    for r in results:
        table.add_row(r.reference, r.task, r.outcome, r.detail or "-")
    _emit(args, results, table)
    return 0 if all(r.outcome == "moved" for r in results) else 1


def cmd_inbox(args: argparse.Namespace) -> int:
    from store.repository import inbox, mark_read

    engine = _store()
    rows = inbox(engine, args.user, unread_only=not args.all, limit=args.limit)
    table = Table(title=f"Inbox of {args.user}: {len(rows)} alert(s)")
    for col in ("Id", "Case", "Task", "Indicator", "At", "Task due", "Owner", "Read"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            str(r.id),
            r.case_reference,
            r.task_name,
            f"{r.indicator}#{r.occurrence}",
            local(r.indicator_at),
            local(r.task_due_at),
            r.task_owner or "-",
            "yes" if r.read_at else "no",
        )
    _emit(args, rows, table)
    if args.mark_read and rows:
        mark_read(engine, args.user, [r.id for r in rows])
    return 0


# ------------------------------------------------------------------ api (issue 11)


async def cmd_api(args: argparse.Namespace) -> int:
    """Serve the HTTP API and the officer page until interrupted."""
    from starter.api import serve
    from starter.api_auth import TokenError, Tokens

    try:
        tokens = Tokens.from_env()
    except TokenError as e:
        raise CliError(str(e), "invalid_settings") from None
    if not len(tokens):
        err.print("[yellow]warning[/]: no API tokens configured (API_TOKENS_FILE, API_TOKENS)")
    engine = _store()
    print(
        f"casework API on http://{args.host}:{args.port} (OpenAPI: /openapi.json, page: /officer)"
    )
    await serve(args.host, args.port, engine, tokens)
    return 0


def cmd_api_token(args: argparse.Namespace) -> int:
    """Print a new token and the entry that configures it (only the hash is stored)."""
    from starter.api_auth import entry_line, new_token

    token = new_token()
    _emit(
        args,
        {"token": token, "entry": json.loads(entry_line(args.service, token, args.officer))},
        f"token (give it to the service; it is not stored): {token}\n"
        f"entry for API_TOKENS_FILE: {entry_line(args.service, token, args.officer)}",
    )
    return 0


def cmd_deliveries(args: argparse.Namespace) -> int:
    """The email and webhook deliveries of alerts, with their state (for operators)."""
    from store.deliveries import deliveries, idempotency_key

    rows = deliveries(
        _store(),
        case_reference=args.case,
        recipient=args.recipient,
        state=args.state,
        limit=args.limit,
    )
    table = Table(title=f"{len(rows)} alert deliveries")
    for col in ("Alert", "Channel", "State", "Attempts", "Next attempt", "Sent", "Last error"):
        table.add_column(col)
    for d in rows:
        table.add_row(
            idempotency_key(d.key),
            d.channel,
            d.state,
            str(d.attempts),
            local(d.next_attempt_at) if d.state == "pending" else "-",
            local(d.sent_at),
            d.last_error or "-",
        )
    data = [
        {
            "key": idempotency_key(d.key),
            "channel": d.channel,
            "state": d.state,
            "digest": d.digest,
            "attempts": d.attempts,
            "next_attempt_at": d.next_attempt_at.isoformat(),
            "sent_at": d.sent_at.isoformat() if d.sent_at else None,
            "last_error": d.last_error,
        }
        for d in rows
    ]
    _emit(args, data, table)
    return 0


def add_api_commands(sub: Any) -> None:
    dl = sub.add_parser("deliveries", help="alerts' email and webhook deliveries and their state")
    dl.add_argument("--case", help="a case reference")
    dl.add_argument("--recipient", help="a staff key")
    dl.add_argument("--state", choices=["pending", "sending", "sent", "failed"])
    dl.add_argument("--limit", type=int, default=200)
    dl.set_defaults(fn=cmd_deliveries)

    api = sub.add_parser("api", help="serve the HTTP API and the officer page (FastAPI)")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=8000)
    api.set_defaults(fn=cmd_api)
    api_sub = api.add_subparsers(dest="api_command")
    tok = api_sub.add_parser("token", help="make a bearer token for a calling service")
    tok.add_argument("--service", required=True, help="the calling service's name")
    tok.add_argument("--officer", help="the staff key it acts for (omit: X-Acting-Officer)")
    tok.set_defaults(fn=cmd_api_token)


# ------------------------------------------------------------------ parser


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="python -m starter",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_CommandParser)

    cfg = sub.add_parser("config", help="validate or load a configuration folder")
    cfg_sub = cfg.add_subparsers(dest="config_command", required=True)
    for name, fn, text in (
        ("validate", cmd_config_validate, "check a configuration folder; list every error"),
        ("load", cmd_config_load, "validate, then store as a new version (DATABASE_URL)"),
    ):
        c = cfg_sub.add_parser(name, help=text)
        c.add_argument("path")
        c.add_argument("--today", type=date.fromisoformat, help="validate as of this date")
        c.set_defaults(fn=fn)

    dbp = sub.add_parser("db", help="the store's schema: upgrade it, say where it is")
    db_sub = dbp.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser(
        "upgrade", help="upgrade the store (DATABASE_URL) to this code's schema"
    ).set_defaults(fn=cmd_db_upgrade)
    db_sub.add_parser(
        "current", help="the store's schema revision and the code's (exit 1 when behind)"
    ).set_defaults(fn=cmd_db_current)
    rev = db_sub.add_parser(
        "revision", help="developers: write a migration for what store/schema.py changed"
    )
    rev.add_argument("-m", "--message", required=True, help="what the migration changes")
    rev.set_defaults(fn=cmd_db_revision)

    cs = sub.add_parser(
        "codec-server",
        help="serve /encode and /decode for the Web UI and the temporal CLI (payload keys)",
    )
    cs.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    cs.add_argument("--port", type=int, default=8888)
    cs.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        help="a Web UI origin allowed by CORS, e.g. http://localhost:8080 (repeatable; "
        "default CODEC_SERVER_ALLOWED_ORIGINS)",
    )
    cs.add_argument("--new-key", metavar="ID", help="print a new key line `ID:base64` and exit")
    cs.set_defaults(fn=cmd_codec_server)

    r = sub.add_parser("raise", help="raise a case")
    r.add_argument("--reference", required=True, help="the council's case reference")
    r.add_argument("--topic", required=True)
    r.add_argument("--by", required=True, help="staff key of the officer raising it")
    r.add_argument("--extra-task", action="append", default=[], help="an optional task to add")
    r.set_defaults(fn=cmd_raise)

    for msg in MESSAGES:
        add_message_command(sub, msg)

    ra = sub.add_parser(
        "reassign-absent",
        help="reassign every unfinished task of a user (absent, left) to a user or a role",
    )
    ra.add_argument("user", help="staff key whose tasks move")
    ra.add_argument("--to", type=_owner, required=True, help="user:KEY or role:KEY")
    ra.add_argument("--by", required=True, help="staff key of the acting user")
    ra.add_argument(
        "--reason",
        default="absence",
        choices=["workload", "absence", "specialist_knowledge", "other"],
    )
    ra.add_argument("--note", default="")
    ra.set_defaults(fn=cmd_reassign_all)

    s = sub.add_parser("show", help="show one case as a table")
    s.add_argument("reference")
    s.add_argument("--audit", action="store_true", help="also print the audit trail")
    s.set_defaults(fn=cmd_show)

    ls = sub.add_parser("list", help="list cases (visibility query)")
    ls.add_argument("--sla", choices=["on_track", "amber", "breached", "escalated"])
    ls.add_argument("--owner", help="staff key or role key owning an open task")
    ls.add_argument("--topic")
    ls.add_argument("--type", help="workflow type key")
    ls.add_argument("--status", choices=["open", "closed"])
    ls.add_argument("--limit", type=int, default=200)
    ls.set_defaults(fn=cmd_list)

    ib = sub.add_parser("inbox", help="a user's alerts (unread by default)")
    ib.add_argument("user")
    ib.add_argument("--all", action="store_true", help="include read alerts")
    ib.add_argument("--mark-read", action="store_true", help="mark the listed alerts read")
    ib.add_argument("--limit", type=int, default=100)
    ib.set_defaults(fn=cmd_inbox)

    rc = sub.add_parser(
        "reconcile",
        help="mark in the store the open cases whose workflows ended (terminated, ...)",
        description="Run one reconciliation now on the task queue (a worker must be polling "
        "it), or install its Temporal Schedule (the worker installs it at start too).",
    )
    what = rc.add_mutually_exclusive_group()
    what.add_argument("--now", action="store_true", help="run one now and wait (the default)")
    what.add_argument("--install-schedule", action="store_true", help="create or update it")
    rc.add_argument(
        "--every",
        type=float,
        help="schedule interval in minutes (default 5, or RECONCILE_EVERY_MINUTES)",
    )
    rc.set_defaults(fn=cmd_reconcile)
    add_api_commands(sub)
    # The staff directory (starter/staff_cli.py).
    from starter.staff_cli import add_staff_commands

    add_staff_commands(sub, _store, out)

    d = sub.add_parser("demo", help="run the demo: dev server, worker, realistic cases")
    d.add_argument("--cases", type=int, default=8)
    d.set_defaults(fn=None, demo=True)
    return p


# Errors of the core and of the input, by the code --json reports them with.
_ERROR_CODES: dict[type[Exception], str] = {
    ValidationError: "invalid_input",
    FileNotFoundError: "file_not_found",
    ConfigurationError: "invalid_configuration",
    DefinitionError: "invalid_definition",
    NoConfigurationError: "no_configuration",
    SchemaNotCurrentError: "schema_not_current",
    PayloadKeyError: "payload_keys",
    DirectoryError: "invalid_staff_change",
}


def _fail(json_out: bool, code: str, message: str, label: str = "error") -> int:
    """Report a refusal or an error: one line on stderr (JSON under --json); exit code 1."""
    if json_out:
        print(json.dumps({"error": {"code": code, "message": message}}), file=sys.stderr)
    else:
        err.print(f"[red]{escape(label)}[/]: {escape(message)}")
    return 1


def _usage(e: _UsageError, json_out: bool) -> int:
    if json_out:
        print(json.dumps({"error": {"code": "usage", "message": str(e)}}), file=sys.stderr)
    else:
        e.parser.print_usage(sys.stderr)
        print(f"{e.parser.prog}: error: {e}", file=sys.stderr)
    return 2


def _database_name() -> str:
    """DATABASE_URL as it may be shown: without its password."""
    from sqlalchemy.engine import make_url

    from store.db import database_url

    try:
        return make_url(database_url()).render_as_string(hide_password=True)
    except Exception:
        return "named by DATABASE_URL"


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; its exit code."""
    from starter.logs import configure_logging

    configure_logging(level="WARNING")
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
    except _UsageError as e:
        return _usage(e, json_out="--json" in argv)
    if getattr(args, "request_id", "x") is None:
        args.request_id = new_request_id()
    if getattr(args, "demo", False):
        from starter.demo import run_demo

        return run_demo(cases=args.cases)
    use_running_demo()
    reference = getattr(args, "reference", None) if args.command != "raise" else None
    if reference is not None:
        # A workflow ID copied from the Web UI names its case (raise refuses such references).
        reference = args.reference = reference.removeprefix(WORKFLOW_ID_PREFIX)
    json_out = bool(args.json)
    try:
        result = args.fn(args)
        if asyncio.iscoroutine(result):
            result = asyncio.run(result)
        return int(result)
    except (RequestRefusedError, RequestRefused) as refused:
        return _fail(json_out, refused.code, str(refused), f"refused ({refused.code})")
    except CliError as e:
        return _fail(json_out, e.code, str(e))
    except tuple(_ERROR_CODES) as e:
        code = next(c for t, c in _ERROR_CODES.items() if isinstance(e, t))
        # Pydantic's own rendering quotes the input: a note's text, or a megabyte of it.
        message = describe_validation_error(e) if isinstance(e, ValidationError) else str(e)
        return _fail(json_out, code, message)
    except RPCError as e:
        # (A namespace that does not exist is NOT_FOUND too: its message names it.)
        missing_case = "namespace" not in e.message.lower()
        if e.status == RPCStatusCode.NOT_FOUND and reference is not None and missing_case:
            namespace = os.environ.get("TEMPORAL_NAMESPACE") or TemporalSettings.namespace
            return _fail(
                json_out, "not_found", f"no case {reference}: not found in namespace {namespace}"
            )
        if e.status == RPCStatusCode.UNAVAILABLE:
            address = os.environ.get("TEMPORAL_ADDRESS") or TemporalSettings.address
            return _fail(
                json_out, "temporal_unreachable", f"cannot reach Temporal at {address}: {e.message}"
            )
        return _fail(json_out, "temporal_error", e.message, "Temporal error")
    except (OperationalError, InterfaceError) as e:
        reason = str(e.orig).strip().splitlines()[0] if e.orig is not None else type(e).__name__
        return _fail(
            json_out,
            "database_unreachable",
            f"cannot reach the database {_database_name()}: {reason}",
        )


if __name__ == "__main__":
    import starter.__main__  # noqa: F401  (exits with main()'s code)
