"""Real Temporal servers for tests: the time-skipping test server and the dev server, both
from PyPI packages installed beside this Python (nothing is downloaded at run time).

A pytest plugin (registered by tests/conftest.py): the session fixtures `time_skipping_env`,
`dev_server` and `activity_executor` are shared by every test module.
"""

from __future__ import annotations

import concurrent.futures
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from starter.connection import CASE_DATA_CONVERTER
from starter.devserver import DevServer, start_dev_server

BIN = Path(sys.executable).parent


# The SDK gives the test server a fixed 5 s to answer; on a loaded CI machine it sometimes
# needs longer (seen: "did not start within 5s"), so a start is tried this many times.
_STARTS = 3


async def start_time_skipping() -> WorkflowEnvironment:
    """A fresh time-skipping test server with the product's data converter."""
    attempt = 1
    while True:
        try:
            return await WorkflowEnvironment.start_time_skipping(
                test_server_existing_path=str(BIN / "temporal-test-server"),
                data_converter=CASE_DATA_CONVERTER,
            )
        except RuntimeError as err:
            if attempt == _STARTS or "did not start" not in str(err):
                raise
            attempt += 1


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """One time-skipping server for the session (tests that need a clock of their own use
    tests.helpers.workflow_harness.case_engine)."""
    env = await start_time_skipping()
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="session")
def dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    """One headless dev server (in memory) for the session."""
    server = start_dev_server(workdir=tmp_path_factory.mktemp("devserver"), persist=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def activity_executor() -> Iterator[concurrent.futures.ThreadPoolExecutor]:
    """The thread pool in-process workers run their activities on."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=50) as ex:
        yield ex
