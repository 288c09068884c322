"""The staff directory end to end (issue 9): the real dev server, the real worker process
(`python worker.py`) and the command line in separate processes. `staff disable` run in one
process is refused in the very next message to a case raised before it, from another
process, with no restart of anything; `staff add` gives the case a new starter at once.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import pytest

from models.case import CaseState
from models.messages import CompleteTask
from starter.client import CaseClient, RequestRefusedError
from starter.connection import TemporalSettings, connect
from starter.devserver import DevServer
from tests.helpers.stack import Stack, started_stack, starter_cli_async


@pytest.fixture(scope="module")
def stack(dev_server: DevServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with started_stack("sqlite", dev_server, tmp_path_factory.mktemp("staff-e2e")) as s:
        yield s


async def _opened(cases: CaseClient, ref: str) -> CaseState:
    deadline = time.monotonic() + 60
    while True:
        try:
            return await cases.state(ref)
        except RequestRefusedError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.3)


async def test_disable_in_one_process_is_refused_in_the_next_message(
    stack: Stack, dev_server: DevServer
) -> None:
    ref = f"STF-{uuid.uuid4().hex[:10]}"
    raised = await starter_cli_async(
        stack.env, "raise", "--reference", ref, "--topic", "asked-to-leave", "--by", "adviser3"
    )
    assert raised.returncode == 0, str(raised)
    cases = CaseClient(await connect(TemporalSettings(address=dev_server.address)), stack.queue)
    state = await _opened(cases, ref)
    assert state.owner.key == "adviser3"

    # A new starter, added after the case was raised, is given its call back and does it.
    added = await starter_cli_async(
        stack.env, "staff", "add", "nina1", "--name", "Nina Shah", "--role", "housing-advisers"
    )
    assert added.returncode == 0, str(added)
    moved = await starter_cli_async(
        stack.env,
        "reassign",
        ref,
        "call-back",
        "--to",
        "user:nina1",
        "--reason",
        "workload",
        "--by",
        "adviser3",
        "--request-id",
        "m1",
    )
    assert moved.returncode == 0, str(moved)
    done = await starter_cli_async(
        stack.env,
        "complete",
        ref,
        "call-back",
        "--by",
        "nina1",
        "--request-id",
        "c1",
    )
    assert done.returncode == 0, str(done)

    # The case owner leaves: disabled by one process...
    disabled = await starter_cli_async(stack.env, "staff", "disable", "adviser3")
    assert disabled.returncode == 0, str(disabled)
    after_disable = time.monotonic()
    # ... and refused in the very next message, sent at once by another (this test's
    # client), then by a further command line process.
    with pytest.raises(RequestRefusedError) as info:
        await cases.complete_task(
            ref,
            CompleteTask(request_id="c2", actor="adviser3", task="housing-options-interview"),
        )
    elapsed = time.monotonic() - after_disable
    assert info.value.code == "actor_disabled", str(info.value)
    refused = await starter_cli_async(
        stack.env,
        "--json",
        "complete",
        ref,
        "housing-options-interview",
        "--by",
        "adviser3",
        "--request-id",
        "c3",
    )
    assert refused.returncode == 1, str(refused)
    assert '"code": "actor_disabled"' in refused.stderr, str(refused)
    print(f"\nstaff disable -> next message refused after {elapsed:.2f}s")
    state = await cases.state(ref)
    last = state.audit[-1]
    assert (last.outcome, last.actor, last.request_id) == ("refused", "adviser3", "c3")
