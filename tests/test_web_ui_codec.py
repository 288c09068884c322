"""The Temporal Web UI shows a case's decoded input through the codec server, in headless
Chromium: the dev server's UI is started with `--ui-codec-endpoint` pointing at
`starter.codec_server` (as the demo does), the worker and client encrypt every payload, and
the note the case was raised with, which the server holds only as ciphertext, is on the page.
"""

from __future__ import annotations

import concurrent.futures
import importlib.util
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest
from temporalio.client import Client

from models.messages import RaiseCase
from starter.client import CaseClient
from starter.codec import EncryptionCodec, KeyRing, new_key_line
from starter.codec_server import CodecServer
from starter.connection import data_converter
from starter.devserver import free_port, start_dev_server
from tests.helpers.store import sample_store
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

from playwright.async_api import async_playwright, expect  # noqa: E402

pytestmark = pytest.mark.slow

NOTE = "Decoded-in-the-browser note 5b7e"
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


def wait_for_http(url: str, timeout: float = 60.0) -> None:
    """The UI server starts a little after the frontend's gRPC port answers."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            if time.monotonic() > deadline:
                raise
        time.sleep(0.2)


async def test_the_web_ui_shows_a_decoded_note_through_the_codec_server(
    tmp_path: Path, activity_executor: concurrent.futures.ThreadPoolExecutor
) -> None:
    codec = EncryptionCodec(KeyRing.parse([new_key_line("ui-1")], "test"))
    ui_port = free_port()
    codec_server = CodecServer(
        codec, port=0, allowed_origins=[f"http://127.0.0.1:{ui_port}"]
    ).start()
    server = start_dev_server(
        workdir=tmp_path,
        ui_port=ui_port,
        persist=False,
        ui_codec_endpoint=f"http://127.0.0.1:{codec_server.port}",
    )
    engine = sample_store(tmp_path)
    try:
        client = await Client.connect(server.address, data_converter=data_converter(codec))
        queue = f"ui-codec-{uuid.uuid4().hex[:6]}"
        ref = f"UIC-{uuid.uuid4().hex[:8]}"
        async with build_worker(client, engine, queue, activity_executor):
            cases = CaseClient(client, queue)
            await cases.raise_case(
                RaiseCase(
                    reference=ref,
                    topic="disrepair-or-overcrowding",
                    raised_by="adviser1",
                    notes=NOTE,
                )
            )
            await cases.state(ref)
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(
                    executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
                )
                try:
                    page = await browser.new_page(viewport={"width": 1400, "height": 900})
                    page.set_default_timeout(60_000)
                    url = (
                        f"{server.ui_url}/namespaces/default/workflows/"
                        f"{urllib.parse.quote(f'case-{ref}')}"
                    )
                    wait_for_http(f"{server.ui_url}")
                    await page.goto(url)
                    await expect(page.locator("body")).to_contain_text(NOTE, timeout=60_000)
                    await page.screenshot(path=tmp_path / "decoded-input.png")
                finally:
                    await browser.close()
        assert codec_server.calls["/decode"] >= 1  # the browser asked the codec server
    finally:
        engine.dispose()
        server.stop()
        codec_server.stop()
