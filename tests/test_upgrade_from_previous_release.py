"""A case started by the previous release keeps running on this one (issue 8, section 5).

The previous release's code is taken from git (`git archive`, nothing downloaded), its worker
runs a case on the dev server, then stops; the operator's upgrade follows (`db upgrade` with
this release's command line), this release's worker takes over the same task queue, and the
case (raised before holds existed) is held and released. No `workflow.patched` was needed for
the new messages: a case started before them has no event they would change, and a running
case receives them only once the new worker runs; the recorded histories in tests/histories
prove the old events replay.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import uuid
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from models.messages import HoldTask, RaiseCase, ReleaseTask
from starter.client import CaseClient, RequestRefusedError
from starter.devserver import DevServer
from starter.worker_process import WorkerProcess, worker_env
from tests.helpers import REPO
from tests.helpers.stack import starter_cli

# The last release before holds, revisions and cancellation (and before Alembic).
PREVIOUS_RELEASE = "8b7cbaa"


def _previous_release(into: Path) -> Path:
    if shutil.which("git") is None:
        pytest.skip("git is not installed: the previous release cannot be taken from history")
    found = subprocess.run(
        ["git", "cat-file", "-e", f"{PREVIOUS_RELEASE}^{{commit}}"], cwd=REPO, check=False
    )
    if found.returncode != 0:
        pytest.skip(f"commit {PREVIOUS_RELEASE} is not in this clone's history (shallow clone?)")
    archive = subprocess.run(
        ["git", "archive", "--format=tar", PREVIOUS_RELEASE],
        cwd=REPO,
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def _old_cli(old: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "starter", *args],
        cwd=old,
        env={**env, "PYTHONPATH": str(old)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_a_case_from_the_previous_release_is_held_on_this_one(
    dev_server: DevServer, tmp_path: Path
) -> None:
    old = _previous_release(tmp_path / "previous")
    queue = f"upgrade-{uuid.uuid4().hex[:8]}"
    env = worker_env(dev_server.address, queue, f"sqlite:///{tmp_path / 'store.sqlite'}")
    loaded = _old_cli(old, env, "--json", "config", "load", "config/sample")
    assert loaded.returncode == 0, loaded.stderr

    client = await Client.connect(dev_server.address, data_converter=pydantic_data_converter)
    cases = CaseClient(client, queue)
    ref = f"UPG-{uuid.uuid4().hex[:10]}"
    previous = WorkerProcess(
        {**env, "PYTHONPATH": str(old)},
        tmp_path / "previous-worker.log",
        argv=[sys.executable, str(old / "worker.py")],
        cwd=old,
    )
    previous.start()
    try:
        await cases.raise_case(
            RaiseCase(reference=ref, topic="threatened-within-56-days", raised_by="adviser3")
        )
        state = await cases.state(ref)
        assert state.task("call-back") is not None
    finally:
        assert previous.stop(60) == 0, previous.log_tail()

    # The operator's upgrade: the schema first, then this release's worker on the same queue.
    upgraded = starter_cli(env, "--json", "db", "upgrade")
    assert upgraded.returncode == 0, str(upgraded)
    current = WorkerProcess(env, tmp_path / "worker.log")
    current.start()
    try:
        until = datetime.now(UTC) + timedelta(days=3)
        held = await cases.hold_task(
            ref,
            HoldTask(
                request_id="upgrade-hold",
                actor="adviser3",
                task="call-back",
                reason="applicant_unavailable",
                planned_release=until,
            ),
        )
        assert held is not None and held.status == "on_hold"
        released = await cases.release_task(
            ref, ReleaseTask(request_id="upgrade-release", actor="adviser3", task="call-back")
        )
        assert released is not None and released.status == "open"
        state = await cases.state(ref)
        task = state.task("call-back")
        assert task is not None and len(task.holds) == 1
        # The staff the previous release's configuration listed are in the live directory
        # (migration 0005), and the case now checks people against it: adviser3 disabled
        # today is refused on the case raised before.
        disabled = starter_cli(env, "staff", "disable", "adviser3", "--by", "hr")
        assert disabled.returncode == 0, str(disabled)
        with pytest.raises(RequestRefusedError) as refused:
            await cases.hold_task(
                ref,
                HoldTask(
                    request_id="upgrade-hold-2",
                    actor="adviser3",
                    task="call-back",
                    reason="applicant_unavailable",
                    planned_release=until,
                ),
            )
        assert refused.value.code == "actor_disabled"
        # The events the previous release wrote replayed: no workflow task failed.
        history = await client.get_workflow_handle(f"case-{ref}").fetch_history()
        markers = [
            e.marker_recorded_event_attributes.SerializeToString()
            for e in history.events
            if e.HasField("marker_recorded_event_attributes")
        ]
        assert not any(b'"live-directory"' in m for m in markers)  # raised before it
        assert any(b"live-directory-from-" in m for m in markers)  # live from its next message
        failed = [e for e in history.events if e.HasField("workflow_task_failed_event_attributes")]
        assert failed == []
    finally:
        assert current.stop(60) == 0, current.log_tail()
