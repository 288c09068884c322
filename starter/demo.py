"""`make demo`: the dev server with its Web UI, the worker, and a realistic set of cases whose
SLA indicators fire within minutes (config/demo uses minute targets on the 24x7 calendar).

Everything it starts lives under var/demo/ and stops on Ctrl-C.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

from rich.console import Console

from config_files import load_and_validate
from models.case import Owner
from models.config import Configuration
from models.messages import AddTask, CloseCase, CompleteTask, RaiseCase, ReassignTask
from starter.client import CaseClient, RequestRefusedError, new_request_id
from starter.connection import TemporalSettings, connect
from starter.devserver import DevServer, start_dev_server

REPO = Path(__file__).resolve().parent.parent
WORKDIR = REPO / "var" / "demo"
console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 220)


def _start_worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    with (WORKDIR / "worker.log").open("ab") as log:  # the child keeps its own descriptor
        return subprocess.Popen(
            [sys.executable, str(REPO / "worker.py")],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=REPO,
        )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def _first_user(config: Configuration, role: str) -> str:
    for r in config.roles:
        if r.key == role and r.members:
            return r.members[0]
    return config.users[0].key


async def raise_demo_cases(client: CaseClient, config: Configuration, count: int) -> list[str]:
    """Raise `count` cases across the topics, then drive some of them the way officers would:
    complete work, reassign a task, add a task by hand, refuse a bad request, close one."""
    stamp = datetime.now(UTC).strftime("%m%d%H%M%S")
    topics = [t for t in config.topics if t.in_force_on(date.today())]
    raiser = _first_user(config, "housing-advisers")
    refs: list[str] = []
    for i in range(count):
        topic = topics[i % len(topics)]
        ref = f"DEMO-{stamp}-{i + 1:02d}"
        await client.raise_case(RaiseCase(reference=ref, topic=topic.key, raised_by=raiser))
        refs.append(ref)
        console.print(f"  raised [bold]{ref}[/] · topic {topic.key}")
    await asyncio.sleep(3)  # let the cases open (pin, allocate) before driving them

    async def act(what: str, coro: object) -> None:
        try:
            await coro  # type: ignore[misc]
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
        async for row in client.list_cases("CaseStatus = 'open'"):
            counts[row.sla_status or "?"] = counts.get(row.sla_status or "?", 0) + 1
        summary = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "none open"
        console.print(f"[dim]{datetime.now():%H:%M:%S}[/] open cases by SLA status: {summary}")
        await asyncio.sleep(30)


async def _demo(server: DevServer, config: Configuration, cases: int) -> None:
    settings = TemporalSettings(address=server.address)
    client = CaseClient(await connect(settings), settings.task_queue)
    console.print(f"[bold]Raising {cases} demo cases[/]")
    refs = await raise_demo_cases(client, config, cases)
    ui = server.ui_url
    console.print()
    console.print(f"[bold green]Web UI[/]: {ui}/namespaces/default/workflows")
    console.print("Filters worth trying in the Web UI (or with `temporal workflow list --query`):")
    for q in (
        "SlaStatus = 'breached'",
        "SlaStatus = 'amber' AND CaseWorkflowType = 'prevention-duty'",
        f"OpenTaskOwners = '{_first_user(config, 'housing-advisers')}'",
        "SlaStatus = 'escalated' OR SlaStatus = 'breached'",
        "CaseStatus = 'open' AND OpenTasks > 1",
    ):
        console.print(f"  {q}")
    temporal = Path(sys.executable).parent / "temporal"
    first = await client.state(refs[0])
    open_task = next((t.key for t in first.tasks if t.status == "open"), "<task key>")
    console.print("\nSignal a case from the `temporal` CLI, for example:")
    console.print(
        f"  {temporal} workflow signal --address {server.address} --workflow-id case-{refs[0]} "
        "--name complete_task --input "
        f'\'{{"request_id": "cli-1", "actor": "tl1", "task": "{open_task}"}}\''
    )
    console.print(
        f"  TEMPORAL_ADDRESS={server.address} {sys.executable} -m starter show {refs[0]} --audit"
    )
    console.print(
        f"  DATABASE_URL={os.environ['DATABASE_URL']} {sys.executable} -m starter inbox tl1"
    )
    console.print(
        "\nAmber alerts fire after about a minute, targets after about three. Ctrl-C stops.\n"
    )
    await _status_loop(client, refs[2 % len(refs)], _first_user(config, "service-manager"))


def run_demo(cases: int = 8) -> int:
    WORKDIR.mkdir(parents=True, exist_ok=True)
    db_url = os.environ.get("DATABASE_URL", f"sqlite:///{WORKDIR / 'casework.db'}")
    os.environ["DATABASE_URL"] = db_url
    config = load_and_validate(REPO / "config" / "demo", date.today())
    from store.db import create_schema, make_engine
    from store.repository import save_configuration

    engine = make_engine(db_url)
    create_schema(engine)
    version = save_configuration(engine, config, source="demo")
    console.print(f"configuration config/demo loaded as version {version} into {db_url}")

    port = int(os.environ.get("DEMO_TEMPORAL_PORT", "7233"))
    ui_port = int(os.environ.get("DEMO_UI_PORT", "8233"))
    console.print(
        f"starting the Temporal dev server on {port} (Web UI {ui_port}), data in {WORKDIR}"
    )
    server = start_dev_server(workdir=WORKDIR, port=port, ui_port=ui_port)
    env = {**os.environ, "TEMPORAL_ADDRESS": server.address, "LOG_FORMAT": "json"}
    worker = _start_worker(env)
    console.print(f"worker started (pid {worker.pid}, log {WORKDIR / 'worker.log'})")
    try:
        asyncio.run(_demo(server, config, cases))
    except KeyboardInterrupt:
        console.print("\nstopping")
    finally:
        _stop(worker)
        server.stop()
        console.print("worker and dev server stopped")
    return 0


if __name__ == "__main__":
    sys.exit(run_demo())
