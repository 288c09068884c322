"""`make demo`: the dev server with its Web UI, the worker, and a realistic set of cases whose
SLA indicators fire within minutes (config/demo uses minute targets on the 24x7 calendar).

Cases arrive staggered (half at once, then one every ARRIVAL_SECONDS for ARRIVALS_FOR), so
within five minutes an operator sees cases on track, amber, breached and escalated at the
same moment, and keeps seeing that mix for as long as cases arrive.

Everything it starts lives under var/demo/ (DEMO_DIR) and stops on Ctrl-C, SIGTERM or
SIGHUP; on Linux the dev server and the worker also die with it if it is killed outright.
While it runs, var/demo/connection.json tells the command line where its Temporal server and
store are (starter.connection.use_running_demo).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType

from rich.console import Console
from temporalio.service import RPCError

from config_files import load_and_validate
from domain.planner import local_date
from models.case import Owner
from models.config import Configuration, TopicConfig
from models.messages import (
    AddTask,
    CloseCase,
    CompleteTask,
    HoldTask,
    RaiseCase,
    ReassignTask,
)
from starter.api_auth import entry_line, new_token
from starter.catchers import MailCatcher, WebhookCatcher
from starter.client import CaseClient, CaseFilter, RequestRefusedError, new_request_id
from starter.codec import EncryptionCodec, KeyRing, new_key_line
from starter.codec_server import CodecServer
from starter.connection import (
    DEFAULT_TASK_QUEUE,
    TemporalSettings,
    connect,
    demo_connection_file,
    demo_dir,
)
from starter.devserver import (
    DevServer,
    PortInUseError,
    die_with_parent_preexec,
    free_port,
    hang_up_with_parent,
    port_in_use,
    start_dev_server,
)
from starter.reconcile import schedule_id
from workflows.case_workflow import case_workflow_id

REPO = Path(__file__).resolve().parent.parent
NAMESPACE = "default"
# A demo task turns amber 1 minute after it opens, breaches at 3 and escalates at 4 or 5
# (config/demo): a new case every 45 s keeps each state populated, on track included.
ARRIVAL_SECONDS = 45.0
ARRIVALS_FOR = 30 * 60.0  # then the demo stops raising cases (the case targets are 30 min)
STATUS_EVERY = 30.0
# The reconciliation schedule runs every minute in the demo; one case is terminated in
# Temporal after TERMINATE_AFTER seconds so the demo shows it marked closed in the store.
RECONCILE_EVERY_MINUTES = "1"
TERMINATE_AFTER = 90.0
console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 220)
err = Console(stderr=True, soft_wrap=True, width=None if sys.stderr.isatty() else 220)


def _start_worker(env: dict[str, str], workdir: Path) -> subprocess.Popen[bytes]:
    with (workdir / "worker.log").open("ab") as log:  # the child keeps its own descriptor
        return subprocess.Popen(
            [sys.executable, str(REPO / "worker.py")],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=REPO,
            preexec_fn=die_with_parent_preexec(),
        )


def _start_api(env: dict[str, str], workdir: Path, port: int) -> subprocess.Popen[bytes]:
    """The HTTP service (`python -m starter api`) for the officer page and the API."""
    with (workdir / "api.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "starter", "api", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=REPO,
            preexec_fn=die_with_parent_preexec(),
        )


@dataclass
class _Channels:
    """The demo's alert channels: a local SMTP server writing each mail to `mail/` and a
    webhook receiver checking signatures and writing each call to `webhook/`, plus the
    officer tokens for the HTTP service."""

    mail: MailCatcher
    hooks: WebhookCatcher
    api_port: int
    tokens: dict[str, str]

    def env(self) -> dict[str, str]:
        entries = [
            json.loads(entry_line(f"demo-{officer}", token, officer))
            for officer, token in self.tokens.items()
        ]
        return {
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(self.mail.port),
            "SMTP_FROM": "casework-demo@council.example.org",
            "WEBHOOK_URL": self.hooks.url,
            "WEBHOOK_SECRET": self.hooks.secret.decode(),
            "ALERT_LINK_BASE_URL": f"http://127.0.0.1:{self.api_port}",
            "DELIVERY_POLL_SECONDS": "1",
            "API_TOKENS": json.dumps(entries),
        }

    def stop(self) -> None:
        self.mail.stop()
        self.hooks.stop()


def _start_channels(workdir: Path, config: Configuration) -> _Channels:
    wanted = int(os.environ.get("DEMO_API_PORT", "8000"))
    api_port = wanted if not port_in_use(wanted) else free_port()
    officers = [_first_user(config, "housing-advisers"), _first_user(config, "team-leaders")]
    return _Channels(
        mail=MailCatcher(folder=workdir / "mail").start(),
        hooks=WebhookCatcher(
            secret=secrets.token_urlsafe(24).encode(), folder=workdir / "webhook"
        ).start(),
        api_port=api_port,
        tokens={o: new_token() for o in officers},
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _first_user(config: Configuration, role: str) -> str:
    """The first member of `role` in the demo's staff export (config/demo/staff.csv)."""
    from store.directory import parse_import

    rows = parse_import((REPO / "config" / "demo" / "staff.csv").read_text(), "staff.csv")
    for row in rows:
        if role in row.roles and not row.disabled:
            return row.key
    return rows[0].key


class Arrivals:
    """Raises the demo's cases, numbered in order, the topics in turn."""

    def __init__(self, client: CaseClient, config: Configuration) -> None:
        self.client = client
        self.stamp = datetime.now(UTC).strftime("%m%d%H%M%S")
        self.topics: list[TopicConfig] = [
            t for t in config.topics if t.in_force_on(local_date(datetime.now(UTC)))
        ]
        self.raiser = _first_user(config, "housing-advisers")
        self.count = 0

    async def raise_one(self) -> str:
        """Raise the next case; its reference."""
        topic = self.topics[self.count % len(self.topics)]
        self.count += 1
        ref = f"DEMO-{self.stamp}-{self.count:02d}"
        await self.client.raise_case(
            RaiseCase(reference=ref, topic=topic.key, raised_by=self.raiser)
        )
        console.print(f"  [dim]{datetime.now():%H:%M:%S}[/] raised [bold]{ref}[/] · {topic.key}")
        return ref


async def _opened(client: CaseClient, reference: str, timeout: float = 120.0) -> None:
    """Wait until the case has pinned its definition and allocated its owners (a few
    seconds; longer on a busy machine)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            await client.state(reference)
            return
        except RequestRefusedError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def raise_demo_cases(client: CaseClient, config: Configuration, count: int) -> list[str]:
    """Raise `count` cases across the topics, then drive some of them the way officers would:
    complete work, reassign a task, add a task by hand, refuse a bad request, close one."""
    arrivals = Arrivals(client, config)
    return await _first_cases(arrivals, config, count)


async def _first_cases(arrivals: Arrivals, config: Configuration, count: int) -> list[str]:
    client = arrivals.client
    refs = [await arrivals.raise_one() for _ in range(count)]
    for ref in refs:  # let the cases open (pin, allocate) before driving them
        await _opened(client, ref)

    async def act(what: str, coro: Awaitable[object]) -> None:
        try:
            await coro
            console.print(f"  {what}")
        except RequestRefusedError as refused:
            console.print(f"  {what}: [yellow]refused[/] ({refused.code}) {refused}")

    manager = _first_user(config, "service-manager")
    team_leads = "team-leaders"
    # Complete the first open task on every other case, so some cases move along the path.
    for ref in refs[::2]:
        state = await client.state(ref)
        first = next((t for t in state.tasks if t.status == "open"), None)
        if first is not None:
            await act(
                f"{ref}: completed '{first.name}' as {manager}",
                client.complete_task(
                    ref, CompleteTask(request_id=new_request_id(), actor=manager, task=first.key)
                ),
            )
    # Reassign an open task to the team leaders (absence).
    state = await client.state(refs[1 % len(refs)])
    task = next((t for t in state.tasks if t.status == "open"), None)
    if task is not None:
        await act(
            f"{state.reference}: reassigned '{task.name}' to role {team_leads}",
            client.reassign_task(
                state.reference,
                ReassignTask(
                    request_id=new_request_id(),
                    actor=manager,
                    task=task.key,
                    to=Owner(kind="role", key=team_leads),
                    reason="absence",
                ),
            ),
        )
    # Working a case: hold a task on another case for three minutes (the applicant is in
    # hospital); it releases itself and its target moves later by the hold.
    if len(refs) > 2:
        state = await client.state(refs[2])
        statutory = {
            t.key for t in config.task_definitions if t.sla is not None and t.sla.statutory
        }
        held = next((t for t in state.tasks if t.status == "open" and t.key not in statutory), None)
        if held is not None:
            await act(
                f"{state.reference}: held '{held.name}' for 3 minutes (applicant_unavailable)",
                client.hold_task(
                    state.reference,
                    HoldTask(
                        request_id=new_request_id(),
                        actor=manager,
                        task=held.key,
                        reason="applicant_unavailable",
                        planned_release=datetime.now(UTC) + timedelta(minutes=3),
                        notes="applicant in hospital",
                    ),
                ),
            )
    # Add an optional task by hand.
    wt = {w.key: w for w in config.workflow_types}
    for ref in refs:
        state = await client.state(ref)
        optional = [k for k in wt[state.workflow_type].optional_tasks if state.task(k) is None]
        if optional:
            await act(
                f"{ref}: added optional task '{optional[0]}'",
                client.add_task(
                    ref, AddTask(request_id=new_request_id(), actor=manager, task=optional[0])
                ),
            )
            break
    # A request the case refuses (completing a task that is not open), then close the last case.
    state = await client.state(refs[-1])
    waiting = next((t for t in state.tasks if t.status == "waiting"), None)
    if waiting is not None:
        await act(
            f"{refs[-1]}: try to complete waiting task '{waiting.name}'",
            client.complete_task(
                refs[-1], CompleteTask(request_id=new_request_id(), actor=manager, task=waiting.key)
            ),
        )
    if len(refs) > 3:
        await act(
            f"{refs[-1]}: closed (applicant found own accommodation)",
            client.close_case(
                refs[-1],
                CloseCase(
                    request_id=new_request_id(),
                    actor=manager,
                    reason="applicant secured accommodation",
                ),
            ),
        )
    return refs


async def _keep_on_track(client: CaseClient, reference: str, actor: str) -> None:
    """A diligent officer: complete whatever is open on this case, so one case stays on track
    while the others go amber, breach and escalate."""
    try:
        state = await client.state(reference)
        for task in [t for t in state.tasks if t.status == "open"]:
            await client.complete_task(
                reference, CompleteTask(request_id=new_request_id(), actor=actor, task=task.key)
            )
    except RequestRefusedError:
        pass  # the case finished or moved on meanwhile: nothing to do


async def _status_loop(client: CaseClient, diligent: str, actor: str) -> None:
    while True:
        await _keep_on_track(client, diligent, actor)
        counts: dict[str, int] = {}
        async for row in client.list_cases(CaseFilter(status="open")):
            counts[row.sla_status or "?"] = counts.get(row.sla_status or "?", 0) + 1
        order = ["on_track", "amber", "breached", "escalated", "?"]
        summary = ", ".join(f"{k}: {counts[k]}" for k in order if k in counts) or "none open"
        console.print(f"[dim]{datetime.now():%H:%M:%S}[/] open cases by SLA status: {summary}")
        await asyncio.sleep(STATUS_EVERY)


def _reconcile_every() -> str:
    return os.environ.get("RECONCILE_EVERY_MINUTES", RECONCILE_EVERY_MINUTES)


async def _show_reconciliation(client: CaseClient, reference: str) -> None:
    """As an operator might: terminate one case in Temporal (it gets no chance to record
    that), then watch the reconciliation schedule mark it closed in the store."""
    from store.db import make_engine
    from store.repository import load_case

    await asyncio.sleep(TERMINATE_AFTER)
    handle = client.client.get_workflow_handle(case_workflow_id(reference))
    await handle.terminate(reason="demo: terminated to show the reconciliation")
    console.print(
        f"[dim]{datetime.now():%H:%M:%S}[/] terminated [bold]{reference}[/] in Temporal (as an "
        "operator might): the store still says open until the reconciliation schedule runs"
    )
    engine = make_engine(os.environ["DATABASE_URL"])
    try:
        while True:
            record = await asyncio.to_thread(load_case, engine, reference)
            if record is not None and record.status != "open":
                console.print(
                    f"[dim]{datetime.now():%H:%M:%S}[/] the reconciliation marked "
                    f"[bold]{reference}[/] {record.status} in the store: {record.close_reason}"
                )
                return
            await asyncio.sleep(5)
    finally:
        engine.dispose()


async def _keep_arriving(arrivals: Arrivals, more: int) -> None:
    """Raise `more` cases one every ARRIVAL_SECONDS, then keep arriving until ARRIVALS_FOR
    has passed: the cases then stand at different points of their SLAs (a case raised a
    minute ago is amber while one raised four minutes ago has escalated)."""
    started = time.monotonic()
    raised = 0
    while raised < more or time.monotonic() - started < ARRIVALS_FOR:
        await asyncio.sleep(ARRIVAL_SECONDS)
        await arrivals.raise_one()
        raised += 1
    console.print("[dim]no more demo cases arrive; the ones open carry on[/]")


async def _demo(
    server: DevServer, config: Configuration, cases: int, channels: _Channels | None = None
) -> None:
    settings = TemporalSettings(address=server.address, namespace=NAMESPACE)
    client = CaseClient(await connect(settings), settings.task_queue)
    arrivals = Arrivals(client, config)
    first = max(1, cases // 2)
    console.print(
        f"[bold]Raising {first} demo cases now, {cases - first} more one every "
        f"{ARRIVAL_SECONDS:.0f} s, and new arrivals for {ARRIVALS_FOR / 60:.0f} minutes[/]"
    )
    refs = await _first_cases(arrivals, config, first)
    ui = server.ui_url
    console.print()
    console.print(f"[bold green]Web UI[/]: {ui}/namespaces/{NAMESPACE}/workflows")
    console.print("Filters worth trying in the Web UI (or with `temporal workflow list --query`):")
    for q in (
        "SlaStatus = 'breached'",
        "SlaStatus = 'amber' AND CaseWorkflowType = 'prevention-duty'",
        f"OpenTaskOwners = '{_first_user(config, 'housing-advisers')}'",
        "SlaStatus = 'escalated' OR SlaStatus = 'breached'",
        "CaseStatus = 'open' AND ExecutionStatus = 'Running' AND OpenTasks > 1",
    ):
        console.print(f"  {q}")
    temporal = Path(sys.executable).parent / "temporal"
    console.print(
        f"\nReconciliation: schedule {schedule_id(settings.task_queue)} marks in the store, every "
        f"{_reconcile_every()} min, the cases whose workflows were terminated, timed out or "
        f"failed: {ui}/namespaces/{NAMESPACE}/schedules"
    )
    console.print(
        "Cancel a case as an operator (Web UI: Request Cancellation), and it closes as the "
        "system, recorded everywhere:"
    )
    console.print(
        f"  {temporal} workflow cancel --address {server.address} --workflow-id case-{refs[0]}"
    )
    state = await client.state(refs[0])
    open_task = next((t.key for t in state.tasks if t.status == "open"), "<task key>")
    console.print("\nSignal a case from the `temporal` CLI, for example:")
    console.print(
        f"  {temporal} workflow signal --address {server.address} --workflow-id case-{refs[0]} "
        "--name complete_task --input "
        f'\'{{"request_id": "cli-1", "actor": "tl1", "task": "{open_task}"}}\''
    )
    console.print("\nThe command line finds this demo by itself while it runs (no variables):")
    for command in (f"show {refs[0]} --audit", "list --sla breached", "inbox tl1"):
        console.print(f"  {sys.executable} -m starter {command}")
    if channels is not None:
        base = f"http://127.0.0.1:{channels.api_port}"
        console.print(f"\n[bold green]Officer page[/]: {base}/officer  (sign in with a token)")
        for officer, token in channels.tokens.items():
            console.print(f"  {officer}: {token}")
        console.print(f"HTTP API: {base}/docs (OpenAPI: {base}/openapi.json), for example:")
        officer, token = next(iter(channels.tokens.items()))
        console.print(f"  curl -H 'Authorization: Bearer {token}' {base}/me/tasks")
        console.print(f"[bold green]Mail[/] (one .eml file per message): {channels.mail.folder}")
        console.print(f"[bold green]Webhook calls[/] (signed JSON): {channels.hooks.folder}")
    console.print(
        "\nAmber alerts fire after about a minute, targets after about three. Ctrl-C stops.\n"
    )
    # refs[1]: neither the diligent officer's case (refs[2]) nor the closed one (refs[-1]).
    shown = [_show_reconciliation(client, refs[1])] if len(refs) >= 3 else []
    await asyncio.gather(
        _status_loop(client, refs[2 % len(refs)], _first_user(config, "service-manager")),
        _keep_arriving(arrivals, cases - first),
        *shown,
    )


class _Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP: stop as Ctrl-C does."""


def stop_reason(stop: KeyboardInterrupt) -> str:
    """What stopped the demo, for its last lines: the signal's name, or Ctrl-C."""
    return str(stop) or "Ctrl-C"


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise _Stopped(signal.Signals(signum).name)


def demo_payload_keys(workdir: Path) -> Path:
    """The demo's payload key file (made once, readable by its owner only), which this
    process and its children use unless keys are configured already."""
    path = workdir / "payload-keys"
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(
            "# The demo's payload encryption key (starter/codec.py); never commit it.\n"
            f"{new_key_line('demo-1')}\n"
        )
    if not (os.environ.get("CASE_PAYLOAD_KEYS") or os.environ.get("CASE_PAYLOAD_KEYS_FILE")):
        os.environ["CASE_PAYLOAD_KEYS_FILE"] = str(path)
    return path


def codec_url(codec: CodecServer) -> str:
    return f"http://127.0.0.1:{codec.port}"


def _start_codec_server(workdir: Path, ui_port: int) -> CodecServer:
    """The codec server the demo's Web UI decodes payloads through (on a thread here)."""
    demo_payload_keys(workdir)
    ring = KeyRing.from_env()
    assert ring is not None  # demo_payload_keys set them
    port = int(os.environ.get("DEMO_CODEC_PORT", "0")) or free_port()
    origins = [f"http://127.0.0.1:{ui_port}", f"http://localhost:{ui_port}"]
    return CodecServer(EncryptionCodec(ring), port=port, allowed_origins=origins).start()


def _write_connection(
    path: Path,
    server: DevServer,
    worker: subprocess.Popen[bytes],
    api: subprocess.Popen[bytes] | None = None,
    channels: _Channels | None = None,
) -> None:
    """Describe the running demo for the command line (written whole, then renamed in)."""
    data = {
        "pid": os.getpid(),
        "env": {
            "TEMPORAL_ADDRESS": server.address,
            "TEMPORAL_NAMESPACE": NAMESPACE,
            "TEMPORAL_TASK_QUEUE": DEFAULT_TASK_QUEUE,
            "DATABASE_URL": os.environ["DATABASE_URL"],
        },
        "ui": server.ui_url,
        "payload_keys_file": os.environ.get("CASE_PAYLOAD_KEYS_FILE"),
        "children": {
            "temporal": server.process.pid if server.process else None,
            "worker": worker.pid,
            **({"api": api.pid} if api is not None else {}),
        },
        "started_at": datetime.now(UTC).isoformat(),
        **(
            {
                "officer_page": f"http://127.0.0.1:{channels.api_port}/officer",
                "mail": str(channels.mail.folder),
                "webhook": str(channels.hooks.folder),
            }
            if channels is not None
            else {}
        ),
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(path)


def _remove_connection(path: Path) -> None:
    try:
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError):
        pass


def _ports_taken(port: int, ui_port: int) -> str | None:
    for number, variable, what in (
        (port, "DEMO_TEMPORAL_PORT", "the Temporal server"),
        (ui_port, "DEMO_UI_PORT", "the Web UI"),
    ):
        if port_in_use(number):
            return (
                f"port {number} ({what}) is already in use: is another demo or Temporal "
                f"server running? Stop it, or choose free ports, e.g. "
                f"{variable}={number + 100} make demo"
            )
    return None


def run_demo(cases: int = 8) -> int:
    """Run the demo until Ctrl-C, SIGTERM or SIGHUP; 1 if it cannot start."""
    port = int(os.environ.get("DEMO_TEMPORAL_PORT", "7233"))
    ui_port = int(os.environ.get("DEMO_UI_PORT", "8233"))
    taken = _ports_taken(port, ui_port)
    if taken is not None:
        err.print(f"[red]error[/]: {taken}")
        return 1
    # From here on these stop the demo the way Ctrl-C does: everything started is stopped.
    # A hang-up ignored on purpose (nohup) stays ignored; otherwise the parent's death (make
    # killed, the terminal's shell gone) is a hang-up too: make passes on SIGTERM, not SIGHUP.
    stops = [signal.SIGTERM]
    if signal.getsignal(signal.SIGHUP) != signal.SIG_IGN:
        stops.append(signal.SIGHUP)
        hang_up_with_parent()
    for sig in stops:
        signal.signal(sig, _on_signal)
    workdir = demo_dir()
    workdir.mkdir(parents=True, exist_ok=True)
    connection = demo_connection_file()
    server: DevServer | None = None
    worker: subprocess.Popen[bytes] | None = None
    codec: CodecServer | None = None
    api: subprocess.Popen[bytes] | None = None
    channels: _Channels | None = None
    try:
        db_url = os.environ.get("DATABASE_URL", f"sqlite:///{workdir / 'casework.db'}")
        os.environ["DATABASE_URL"] = db_url
        config = load_and_validate(REPO / "config" / "demo", local_date(datetime.now(UTC)))
        from store.db import create_schema, make_engine
        from store.repository import save_configuration

        engine = make_engine(db_url)
        create_schema(engine)
        version = save_configuration(engine, config, source="demo")
        # The staff directory from the demo's HR export (idempotent: a rerun changes nothing).
        from store.directory import import_file

        staff = import_file(engine, REPO / "config" / "demo" / "staff.csv", by="demo")
        engine.dispose()
        console.print(f"configuration config/demo loaded as version {version} into {db_url}")
        console.print(f"staff directory seeded from config/demo/staff.csv ({len(staff)} changes)")
        console.print(
            f"starting the Temporal dev server on {port} (Web UI {ui_port}), data in {workdir}"
        )
        codec = _start_codec_server(workdir, ui_port)
        console.print(
            f"payloads encrypted (keys {os.environ.get('CASE_PAYLOAD_KEYS_FILE', 'from env')}); "
            f"the Web UI decodes them through the codec server on {codec_url(codec)}"
        )
        server = start_dev_server(
            workdir=workdir,
            port=port,
            ui_port=ui_port,
            die_with_parent=True,
            ui_codec_endpoint=codec_url(codec),
        )
        channels = _start_channels(workdir, config)
        env = {
            **os.environ,
            "TEMPORAL_ADDRESS": server.address,
            "TEMPORAL_NAMESPACE": NAMESPACE,
            "TEMPORAL_TASK_QUEUE": DEFAULT_TASK_QUEUE,
            "LOG_FORMAT": "json",
            "RECONCILE_EVERY_MINUTES": _reconcile_every(),
            **channels.env(),
        }
        worker = _start_worker(env, workdir)
        console.print(f"worker started (pid {worker.pid}, log {workdir / 'worker.log'})")
        api = _start_api(env, workdir, channels.api_port)
        console.print(f"HTTP service started (pid {api.pid}, log {workdir / 'api.log'})")
        _write_connection(connection, server, worker, api, channels)
        asyncio.run(_demo(server, config, cases, channels))
    except PortInUseError as e:  # taken between the check and the start
        err.print(f"[red]error[/]: {e}: set DEMO_TEMPORAL_PORT / DEMO_UI_PORT to free ports")
        return 1
    except KeyboardInterrupt as stop:
        console.print(f"\nstopping ({stop_reason(stop)})")
    except (RPCError, RuntimeError, TimeoutError) as e:
        err.print(f"[red]error[/]: the demo stopped: {e}")
        return 1
    finally:
        # A second signal must not cut the clean-up short (the children would still go,
        # by their parent-death signal, but the dev server's database would not be closed).
        for sig in stops:
            signal.signal(sig, signal.SIG_IGN)
        _remove_connection(connection)
        if api is not None:
            _stop(api)
        if worker is not None:
            _stop(worker)
        if channels is not None:
            channels.stop()
        if server is not None:
            server.stop()
        if codec is not None:
            codec.stop()
        if worker is not None or server is not None:
            console.print("worker and dev server stopped")
    return 0


if __name__ == "__main__":
    sys.exit(run_demo())
