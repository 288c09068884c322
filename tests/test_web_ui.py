"""What an operator sees in the Temporal Web UI, checked in a real browser.

Starts a dev server with its Web UI, a worker and a store loaded with
tests/web_ui_config.yaml (one topic per SLA state, in minutes), raises one case per topic,
waits until visibility shows each case in its SLA state, then drives headless Chromium
(Debian's package; nothing is downloaded) through the Web UI:

- the workflow list, with the case search attributes added as columns, shows each case's
  SlaStatus; filtered by `SlaStatus = '...'` (the list page takes `?query=`) it shows
  exactly the case in that state;
- a case's User Metadata tab shows its summary and its current details, one line per task
  with its SLA state;
- its timeline shows the labels we give timers ("next: ...") and each alert (a `send_alert`
  local activity marker).

Screenshots of those pages go to var/screenshots/; with UPDATE_SCREENSHOTS=1 they replace
the committed ones in docs/screenshots/ (see the README there). Not by default: they change
on every run (times, run ids), and a test run should not leave the working tree modified.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib.util
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.client import Client

from config_files import load_and_validate
from models.messages import HoldTask, RaiseCase
from starter.client import CaseClient
from starter.connection import CASE_DATA_CONVERTER
from starter.devserver import DevServer, start_dev_server
from store.db import create_schema, make_engine
from store.directory import import_file
from store.repository import save_configuration
from tests.helpers import REPO
from tests.helpers.workflow_harness import wait_open
from worker import build_worker

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(
        "Chromium not installed: apt-get install chromium (see .ci/run)", allow_module_level=True
    )
if importlib.util.find_spec("playwright") is None:
    pytest.skip(
        "Playwright not installed: .venv/bin/pip install -e '.[dev]'", allow_module_level=True
    )

from playwright.async_api import Browser, Page, async_playwright, expect  # noqa: E402

pytestmark = pytest.mark.slow

CONFIG = Path(__file__).resolve().parent / "web_ui_config.yaml"
SCREENSHOTS = (
    REPO / "docs" / "screenshots"
    if os.environ.get("UPDATE_SCREENSHOTS") == "1"
    else REPO / "var" / "screenshots"
)
QUEUE = "web-ui"
NAMESPACE = "default"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# One case per topic; each reaches its SLA state within two minutes of real time and stays
# there while the test runs (see tests/web_ui_config.yaml).
CASES = {
    "breached": ("HO-2026-000101", "ui-breached"),
    "amber": ("HO-2026-000102", "ui-amber"),
    "escalated": ("HO-2026-000103", "ui-escalated"),
    "on_track": ("HO-2026-000104", "ui-on-track"),
}
# The escalated case opens two tasks side by side: one escalates, one stays on track.
ESCALATING_TASK = "Same-day interview"
QUIET_TASK = "Written advice letter"
# The cases need two minutes of real time; allow for a slow machine.
VISIBILITY_TIMEOUT = 240.0
UI_TIMEOUT_MS = 30_000


def wf_id(status: str) -> str:
    return f"case-{CASES[status][0]}"


@dataclass
class WebUi:
    server: DevServer
    client: Client

    @property
    def url(self) -> str:
        assert self.server.ui_url is not None
        return self.server.ui_url

    def list_url(self, query: str) -> str:
        return f"{self.url}/namespaces/{NAMESPACE}/workflows?query={urllib.parse.quote(query)}"

    def case_url(self, workflow_id: str) -> str:
        return f"{self.url}/namespaces/{NAMESPACE}/workflows/{urllib.parse.quote(workflow_id)}"


def wait_for_http(url: str, timeout: float = 60.0) -> None:
    """The UI server starts a little after the frontend's gRPC port answers."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            if time.monotonic() > deadline:
                raise
        time.sleep(0.2)


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    server = start_dev_server(
        workdir=tmp_path_factory.mktemp("webui"), ui_port="auto", persist=False
    )
    try:
        assert server.ui_url is not None
        wait_for_http(server.ui_url)
        yield server
    finally:
        server.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def web_ui(
    ui_server: DevServer,
    tmp_path: Path,
    activity_executor: concurrent.futures.ThreadPoolExecutor,
) -> AsyncIterator[WebUi]:
    """The cases raised and in their SLA states, with the worker running: the UI reads a
    case's current details through a query, which the worker answers."""
    engine = make_engine(f"sqlite:///{tmp_path / 'casework.db'}")
    create_schema(engine)
    save_configuration(engine, load_and_validate(CONFIG, date.today()), "web-ui-test")
    import_file(engine, CONFIG.with_name("web_ui_config_staff.csv"))
    client = await Client.connect(ui_server.address, data_converter=CASE_DATA_CONVERTER)
    cases = CaseClient(client, QUEUE)
    try:
        async with build_worker(client, engine, QUEUE, activity_executor):
            for reference, topic in CASES.values():
                handle = await cases.raise_case(
                    RaiseCase(reference=reference, topic=topic, raised_by="adviser1")
                )
                await wait_open(handle)
            await wait_for_sla_states(client)
            yield WebUi(server=ui_server, client=client)
    finally:
        engine.dispose()


async def ids_in(client: Client, status: str) -> set[str]:
    return {wf.id async for wf in client.list_workflows(f"SlaStatus = '{status}'")}


async def wait_for_sla_states(client: Client) -> None:
    """Until visibility has each case in its state (the escalated one passes through
    breached on the way)."""
    deadline = time.monotonic() + VISIBILITY_TIMEOUT
    while True:
        seen = {status: await ids_in(client, status) for status in CASES}
        if all(seen[status] == {wf_id(status)} for status in CASES):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"cases not in their SLA states in time: {seen}")
        await asyncio.sleep(2)


@pytest_asyncio.fixture(loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


async def show_case_columns(page: Page, ui: WebUi) -> None:
    """Configure the workflow table (kept in the browser's local storage): drop the columns
    that say nothing about a case, add the case search attributes."""
    await page.goto(ui.list_url("WorkflowType = 'HousingOptionsCase'"))
    await page.get_by_test_id("workflows-summary-table-configuration-button").click()
    for column in ("SlaStatus", "CaseTopic", "OpenTaskOwners", "NextDeadline"):
        await page.get_by_test_id(f"orderable-list-item-{column}-add-button").click()
    for column in ("Run ID", "Type", "End"):
        await page.get_by_label(f"Remove {column} column").click()
    await page.reload()  # closes the drawer; the columns stay


async def test_operator_finds_cases_by_sla_state_and_reads_them(
    web_ui: WebUi, browser: Browser
) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    # Wide enough for the list's columns.
    page = await browser.new_page(viewport={"width": 1700, "height": 760})
    page.set_default_timeout(UI_TIMEOUT_MS)
    await show_case_columns(page, web_ui)

    # Every case, each with its SLA state as a column.
    rows = page.get_by_test_id("workflows-summary-configurable-table-row")
    await expect(rows).to_have_count(len(CASES))
    for status in CASES:
        row = rows.filter(has_text=wf_id(status))
        # Exact text: only the SlaStatus cell (the topic "ui-amber" contains "amber" too).
        await expect(row.get_by_text(status, exact=True)).to_be_visible()
    await page.screenshot(path=SCREENSHOTS / "list-all-cases.png")

    # The list, filtered by each SLA state, shows exactly the case in that state.
    for status in ("escalated", "amber", "on_track", "breached"):
        await page.goto(web_ui.list_url(f"SlaStatus = '{status}'"))
        await expect(rows).to_have_count(1)
        row = rows.first
        await expect(row).to_contain_text(wf_id(status))
        await expect(row.get_by_text(status, exact=True)).to_be_visible()
        await expect(row.get_by_text(CASES[status][1], exact=True)).to_be_visible()
        for other in CASES.keys() - {status}:
            await expect(row).not_to_contain_text(wf_id(other))
    await page.screenshot(path=SCREENSHOTS / "list-filtered-breached.png")

    # The escalated case: summary and current details, one line per task.
    await page.set_viewport_size({"width": 1400, "height": 760})
    await page.goto(web_ui.case_url(wf_id("escalated")))
    await page.get_by_role("tab", name="User Metadata").click()
    summary = page.frame_locator("#user-metadata-summary").locator("body")
    await expect(summary).to_contain_text(f"Case {CASES['escalated'][0]}")
    details = page.frame_locator("#user-metadata-current-details")
    await expect(details.locator("body")).to_contain_text("SLA escalated")
    items = [await li.inner_text() for li in await details.locator("li").all()]
    assert len(items) == 2, items
    assert any(ESCALATING_TASK in c and "escalated" in c for c in items), items
    assert any(QUIET_TASK in c and "on track" in c for c in items), items
    await expect(details.locator("body")).to_contain_text(f"Next: amber: {QUIET_TASK}")
    await page.screenshot(path=SCREENSHOTS / "case-current-details.png")

    # Its timeline: the timers, each labelled with what it is for, and each alert (a local
    # activity: a `send_alert` marker, whose summary names the indicator and task).
    await page.get_by_role("tab", name="Timeline").click()
    heading = page.get_by_role("heading", name="Timeline", exact=True)
    timeline = heading.locator("xpath=../../..")
    for label in (
        f"next: target: {ESCALATING_TASK}",
        f"next: follow-on: {ESCALATING_TASK}",
        f"next: amber: {QUIET_TASK}",
        "send_alert",
    ):
        await expect(timeline).to_contain_text(label)
    await timeline.scroll_into_view_if_needed()
    await timeline.screenshot(path=SCREENSHOTS / "case-timeline.png")
    await page.close()


async def test_operator_sees_a_held_task_in_the_current_details(
    ui_server: DevServer,
    tmp_path: Path,
    activity_executor: concurrent.futures.ThreadPoolExecutor,
    browser: Browser,
) -> None:
    """A held task shows in the current details ("on hold until ...", its reason and the
    target it had before release). (Cancellation from the Web UI:
    tests/test_web_ui_cancellation.py.)"""
    engine = make_engine(f"sqlite:///{tmp_path / 'casework.db'}")
    create_schema(engine)
    save_configuration(engine, load_and_validate(CONFIG, date.today()), "web-ui-test")
    import_file(engine, CONFIG.with_name("web_ui_config_staff.csv"))
    client = await Client.connect(ui_server.address, data_converter=CASE_DATA_CONVERTER)
    queue = "web-ui-cancel"
    cases = CaseClient(client, queue)
    reference = f"HO-2026-{int(time.time()) % 1_000_000:06d}"
    ui = WebUi(server=ui_server, client=client)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        async with build_worker(client, engine, queue, activity_executor):
            handle = await cases.raise_case(
                RaiseCase(reference=reference, topic="ui-on-track", raised_by="adviser1")
            )
            await wait_open(handle)
            await cases.hold_task(
                reference,
                HoldTask(
                    request_id="ui-hold",
                    actor="adviser1",
                    task="ui-letter",
                    reason="applicant_unavailable",
                    planned_release=datetime.now(UTC) + timedelta(days=2),
                ),
            )
            page = await browser.new_page(viewport={"width": 1400, "height": 800})
            page.set_default_timeout(UI_TIMEOUT_MS)
            await page.goto(ui.case_url(f"case-{reference}"))
            await page.get_by_role("tab", name="User Metadata").click()
            details = page.frame_locator("#user-metadata-current-details").locator("body")
            await expect(details).to_contain_text("on hold until")
            await expect(details).to_contain_text("Written advice letter: on hold until")
            await page.screenshot(path=SCREENSHOTS / "case-on-hold.png")

            await page.close()
    finally:
        engine.dispose()
