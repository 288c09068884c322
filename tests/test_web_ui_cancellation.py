"""An operator presses "Request Cancellation" in the Temporal Web UI, in headless Chromium
(Debian's package; nothing is downloaded): the case closes as the system, the store and the
search attributes say closed, and the Web UI shows the workflow Canceled.

The dev server with its Web UI, an in-process worker with the real workflow and activities,
a SQLite store loaded with config/sample.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib.util
import re
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from domain.planner import OPERATOR_CANCELLED
from models.case import SYSTEM
from models.messages import RaiseCase
from starter.devserver import DevServer, start_dev_server
from store.repository import case_audit, load_case
from tests.helpers.workflow_harness import live_cases
from workflows import search
from workflows.case_workflow import case_workflow_id

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(
        "Chromium not installed: apt-get install chromium (see .ci/run)", allow_module_level=True
    )
if importlib.util.find_spec("playwright") is None:
    pytest.skip(
        "Playwright not installed: .venv/bin/pip install -e '.[dev]'", allow_module_level=True
    )

from playwright.async_api import async_playwright, expect  # noqa: E402
from temporalio.client import WorkflowExecutionStatus  # noqa: E402

pytestmark = pytest.mark.slow

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"]
UI_TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    server = start_dev_server(
        workdir=tmp_path_factory.mktemp("webui-cancel"), ui_port="auto", persist=False
    )
    try:
        assert server.ui_url is not None
        deadline = time.monotonic() + 60
        while True:  # the UI server starts a little after the frontend's gRPC port answers
            try:
                with urllib.request.urlopen(server.ui_url, timeout=2):
                    break
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield server
    finally:
        server.stop()


async def test_request_cancellation_in_the_web_ui_closes_the_case(
    tmp_path: Path,
    ui_server: DevServer,
    activity_executor: concurrent.futures.ThreadPoolExecutor,
) -> None:
    ref = f"UI-CXL-{uuid.uuid4().hex[:8]}"
    workflow_id = case_workflow_id(ref)
    async with live_cases(tmp_path, ui_server, activity_executor, "ui-cancel") as live:
        await live.cases.raise_case(
            RaiseCase(reference=ref, topic="homeless-tonight", raised_by="adviser1")
        )
        url = f"{ui_server.ui_url}/namespaces/default/workflows/{urllib.parse.quote(workflow_id)}"
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page(viewport={"width": 1400, "height": 800})
                page.set_default_timeout(UI_TIMEOUT_MS)
                await page.goto(url)
                await page.get_by_role("button", name="Request Cancellation").click()
                dialog = page.get_by_role("dialog").filter(has_text="Cancel Workflow")
                await dialog.get_by_role("button", name="Confirm").click()
                # The page follows the workflow to its end (its status badge).
                canceled = page.get_by_text(re.compile(r"^\s*canceled\s*$", re.IGNORECASE))
                await expect(canceled.first).to_be_visible(timeout=UI_TIMEOUT_MS)
            finally:
                await browser.close()
        handle = live.client.get_workflow_handle(workflow_id)
        for _ in range(100):
            desc = await handle.describe()
            if desc.status != WorkflowExecutionStatus.RUNNING:
                break
            await asyncio.sleep(0.1)

    assert desc.status == WorkflowExecutionStatus.CANCELED
    assert desc.typed_search_attributes.get(search.CASE_STATUS) == "closed"
    record = load_case(live.engine, ref)
    assert record is not None and record.status == "closed"
    assert record.close_reason == OPERATOR_CANCELLED
    closes = [a for a in case_audit(live.engine, ref) if a.action == "close_case"]
    assert [(a.actor, a.detail) for a in closes] == [(SYSTEM, OPERATOR_CANCELLED)]
