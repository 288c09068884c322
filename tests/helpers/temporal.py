"""Real Temporal servers for tests: the time-skipping test server and the dev server, both
from PyPI packages installed beside this Python (nothing is downloaded at run time)."""

from __future__ import annotations

import concurrent.futures
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from starter.devserver import DevServer, start_dev_server

BIN = Path(sys.executable).parent


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(BIN / "temporal-test-server"),
        data_converter=pydantic_data_converter,
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="session")
def dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    server = start_dev_server(workdir=tmp_path_factory.mktemp("devserver"), persist=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def activity_executor() -> Iterator[concurrent.futures.ThreadPoolExecutor]:
    with concurrent.futures.ThreadPoolExecutor(max_workers=50) as ex:
        yield ex
