"""`python -m starter reassign-absent`: every unfinished task of an absent officer moves in one
command, with a summary of what moved and what was refused and why."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import subprocess
import sys
import uuid
from datetime import date
from pathlib import Path

from temporalio.client import Client

from config_files import load_and_validate
from models.case import Owner
from models.messages import RaiseCase
from starter.client import CaseClient
from starter.connection import CASE_DATA_CONVERTER
from starter.devserver import DevServer
from store.db import create_schema, make_engine
from store.repository import cases_with_work_owned_by, save_configuration
from tests.helpers import REPO
from tests.helpers.store import seed_sample_staff
from tests.helpers.workflow_harness import wait_open
from worker import build_worker


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "starter", "--json", *args],
        env=env,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )


async def test_reassign_all_tasks_of_an_absent_officer(
    tmp_path: Path,
    dev_server: DevServer,
    activity_executor: concurrent.futures.ThreadPoolExecutor,
) -> None:
    db = f"sqlite:///{tmp_path / 'casework.db'}"
    engine = make_engine(db)
    create_schema(engine)
    save_configuration(engine, load_and_validate(REPO / "config" / "sample", date.today()), "t")
    seed_sample_staff(engine)
    client = await Client.connect(dev_server.address, data_converter=CASE_DATA_CONVERTER)
    queue = f"bulk-{uuid.uuid4().hex[:8]}"
    cases = CaseClient(client, queue)
    env = {
        **os.environ,
        "DATABASE_URL": db,
        "TEMPORAL_ADDRESS": dev_server.address,
        "TEMPORAL_TASK_QUEUE": queue,
    }
    refs = [f"BULK-{uuid.uuid4().hex[:6]}-{i}" for i in range(3)]
    absent = Owner(kind="user", key="adviser3")
    async with build_worker(client, engine, queue, activity_executor):
        for ref in refs:
            handle = await cases.raise_case(
                RaiseCase(reference=ref, topic="asked-to-leave", raised_by="adviser3")
            )
            await wait_open(handle)
        for _ in range(100):  # the reporting copy is written just after the case opens
            if len(cases_with_work_owned_by(engine, absent)) == 3:
                break
            await asyncio.sleep(0.1)
        assert sorted(cases_with_work_owned_by(engine, absent)) == sorted(refs)
        before = await cases.state(refs[0])
        owned = len([t for t in before.tasks if t.owner == absent])
        # Otherwise every check on the moves below would hold of an empty summary.
        assert owned > 0, before.tasks

        # To a disabled officer: every move is refused, with the reason; nothing changes.
        refused = await asyncio.to_thread(
            cli, env, "reassign-absent", "adviser3", "--to", "user:adviser5", "--by", "tl2"
        )
        assert refused.returncode == 1, refused.stderr
        rows = json.loads(refused.stdout)
        assert len(rows) == 3 * owned
        assert {r["outcome"] for r in rows} == {"refused"}
        assert all("user_unavailable" in r["detail"] for r in rows)

        # To the advisers' group: everything moves.
        moved = await asyncio.to_thread(
            cli, env, "reassign-absent", "adviser3", "--to", "role:housing-advisers", "--by", "tl2"
        )
        assert moved.returncode == 0, moved.stderr
        rows = json.loads(moved.stdout)
        assert len(rows) == 3 * owned and {r["outcome"] for r in rows} == {"moved"}
        for ref in refs:
            state = await cases.state(ref)
            assert not [t for t in state.tasks if t.owner == absent]
            task = state.tasks[0]
            assert task.owner_history[-1].reason == "absence"
            assert task.owner_history[-1].by == "tl2"
    engine.dispose()
