"""The HTTP service (issue 11): a real uvicorn on a free port, driven with httpx, over a real
SQLite store and real cases on the time-skipping server (the real workflow and worker).

Worklists and alerts come from the store's records; messages go to the case through
`CaseClient.send`, one endpoint per row of the message table; refusals come back as HTTP
errors with the refusal code. The officer page is checked in headless Chromium (skipped
when Chromium is absent), with screenshots in var/screenshots/ (docs/screenshots/ with
UPDATE_SCREENSHOTS=1).
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from domain.messages import MESSAGES
from models.messages import RaiseCase
from starter.api import create_app
from starter.api_auth import TokenEntry, TokenError, Tokens, token_hash
from starter.client import CaseClient
from starter.devserver import free_port
from tests.helpers import REPO
from tests.helpers.workflow_harness import CaseEngine, case_engine, wait_open

OFFICER_TOKEN = "officer-token-for-adviser1-0123456789"
CMS_TOKEN = "cms-token-acting-for-many-0123456789"
TOKENS = Tokens(
    [
        TokenEntry(service="amira", token_sha256=token_hash(OFFICER_TOKEN), officer="adviser1"),
        TokenEntry(service="cms", token_sha256=token_hash(CMS_TOKEN)),
    ]
)
REF = "API-2028-0001"
BREACHED = "API-2028-0002"
ON_TRACK = "API-2028-0003"
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = (
    REPO / "docs" / "screenshots"
    if os.environ.get("UPDATE_SCREENSHOTS") == "1"
    else REPO / "var" / "screenshots"
)


def z(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@asynccontextmanager
async def api_server(eng: CaseEngine) -> AsyncIterator[str]:
    async def cases() -> CaseClient:
        return eng.client

    app = create_app(eng.engine, TOKENS, cases)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def officer() -> dict[str, str]:
    return {"Authorization": f"Bearer {OFFICER_TOKEN}"}


async def wait_for(http: httpx.AsyncClient, path: str, headers: dict[str, str]) -> Any:
    for _ in range(200):
        r = await http.get(path, headers=headers)
        if r.status_code == 200 and r.json():
            return r.json()
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path} stayed empty")


async def test_worklists_alerts_and_messages_over_http(tmp_path: Path) -> None:
    async with case_engine(tmp_path) as eng, api_server(eng) as url:
        # Three cases of adviser1's, raised so that on Tue 21 Mar 2028 at 13:01 one call-back
        # has breached (due Mon 17:00), one is amber (due Tue 17:00, amber from 13:00) and
        # one is on track (due Wed 17:00).
        for ref, at in ((BREACHED, z(2028, 3, 17, 10)), (REF, z(2028, 3, 20, 10))):
            await eng.sleep_until(at)
            handle = await eng.client.raise_case(
                RaiseCase(reference=ref, topic="private-tenancy-ending", raised_by="adviser1")
            )
            await wait_open(handle)
        await eng.sleep_until(z(2028, 3, 21, 12))
        handle = await eng.client.raise_case(
            RaiseCase(reference=ON_TRACK, topic="private-tenancy-ending", raised_by="adviser1")
        )
        await wait_open(handle)
        async with httpx.AsyncClient(base_url=url) as http:
            # --- authentication
            assert (await http.get("/me/tasks")).status_code == 401
            r = await http.get("/me/tasks", headers={"Authorization": "Bearer nope"})
            assert r.status_code == 401 and r.json()["error"]["code"] == "unauthenticated"
            cms = {"Authorization": f"Bearer {CMS_TOKEN}"}
            r = await http.get("/me", headers=cms)
            assert r.status_code == 401 and r.json()["error"]["code"] == "no_officer"
            r = await http.get("/me", headers={**cms, "X-Acting-Officer": "ghost"})
            assert r.status_code == 403 and r.json()["error"]["code"] == "unknown_actor"
            r = await http.get("/me", headers={**officer(), "X-Acting-Officer": "tl1"})
            assert r.status_code == 403
            r = await http.get("/me", headers={**cms, "X-Acting-Officer": "adviser1"})
            assert r.status_code == 200, r.text
            me = r.json()
            assert me["officer"] == "adviser1" and me["service"] == "cms"

            # --- my tasks, from the store's records, soonest due first
            await eng.sleep_until(z(2028, 3, 21, 13, 1))
            tasks = await wait_for(http, "/me/tasks", officer())
            call_backs = [
                (t["case_reference"], t["due_at"], t["sla_status"])
                for t in tasks
                if t["task"] == "call-back"
            ]
            assert call_backs == [
                (BREACHED, "2028-03-20T17:00:00Z", "breached"),
                (REF, "2028-03-21T17:00:00Z", "amber"),
                (ON_TRACK, "2028-03-22T17:00:00Z", "on_track"),
            ]
            dues = [t["due_at"] for t in tasks if t["due_at"] is not None]
            assert dues == sorted(dues)
            assert {t["owner"]["key"] for t in tasks if t["owner"]["kind"] == "user"} == {
                "adviser1"
            }
            role = await http.get("/me/role-tasks", headers=officer())
            assert role.status_code == 200 and isinstance(role.json(), list)

            # --- the case summary
            case = (await http.get(f"/cases/{REF}", headers=officer())).json()
            assert case["reference"] == REF and case["status"] == "open"
            r = await http.get("/cases/NOPE-1", headers=officer())
            assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"

            if CHROMIUM.exists() and importlib.util.find_spec("playwright") is not None:
                await officer_page_in_chromium(url)

            # --- alerts: the call-back's amber at 13:00 reaches adviser1's inbox
            alerts = await wait_for(http, "/me/alerts?unread_only=true", officer())
            amber = next(
                a for a in alerts if a["indicator"] == "amber" and a["case_reference"] == REF
            )
            assert amber["case_reference"] == REF and amber["task_key"] == "call-back"
            r = await http.post("/me/alerts/read", json={"ids": [amber["id"]]}, headers=officer())
            assert r.json() == {"marked": 1}
            unread = (await http.get("/me/alerts?unread_only=true", headers=officer())).json()
            assert amber["id"] not in [a["id"] for a in unread]

            # --- messages, one endpoint per row of the message table
            path = f"/cases/{REF}/messages/complete_task"
            body = {"task": "call-back", "note": "spoke to the applicant", "request_id": "r-1"}
            r = await http.post(path, json=body, headers=officer())
            assert r.status_code == 200, r.text
            assert r.json()["task"]["status"] == "completed"
            assert r.json()["request_id"] == "r-1"
            state = await eng.client.state(REF)
            done = state.task("call-back")
            assert done is not None and done.status == "completed"
            # A repeat of the same request is a duplicate, changing nothing.
            again = await http.post(path, json=body, headers=officer())
            assert again.status_code == 200 and again.json()["task"]["duplicate"] is True
            # Refused by the case: the refusal code, as a 409.
            r = await http.post(path, json={"task": "call-back"}, headers=officer())
            assert r.status_code == 409 and r.json()["error"]["code"] == "task_not_open"
            # Not permitted: 403 with the code.
            r = await http.post(
                f"/cases/{REF}/messages/close_case",
                json={"reason": "test"},
                headers={**cms, "X-Acting-Officer": "adviser3"},
            )
            assert r.status_code == 403 and r.json()["error"]["code"] == "not_permitted"
            # Bad input (an unknown field; the actor is never the body's to choose): 422.
            r = await http.post(path, json={"task": "call-back", "actor": "tl1"}, headers=officer())
            assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_input"
            secret = "applicant Jane Doe of 1 High St " * 200
            r = await http.post(path, json={"task": "call-back", "note": secret}, headers=officer())
            assert r.status_code == 422, r.text
            assert r.json()["error"]["message"].startswith("note: ")
            assert "Jane" not in r.text  # the field and the rule, never the value
            r = await http.post(
                "/cases/NOPE-1/messages/complete_task", json={"task": "x"}, headers=officer()
            )
            assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
            # reassign through the service token acting for adviser1.
            r = await http.post(
                f"/cases/{REF}/messages/reassign_task",
                json={
                    "task": "housing-options-interview",
                    "to": {"kind": "user", "key": "adviser3"},
                    "reason": "workload",
                },
                headers={**cms, "X-Acting-Officer": "adviser1"},
            )
            assert r.status_code == 200, r.text
            assert r.json()["task"]["owner"] == {"kind": "user", "key": "adviser3"}

            # --- the OpenAPI document lists every message of the table
            spec = (await http.get("/openapi.json")).json()
            for msg in MESSAGES:
                assert f"/cases/{{reference}}/messages/{msg.name}" in spec["paths"]
            assert "/me/tasks" in spec["paths"] and "/me/alerts/read" in spec["paths"]


async def officer_page_in_chromium(url: str) -> None:
    """The officer page in headless Chromium: sign in with the token, see the work sorted by
    due instant with its RAG status and the alerts, open a case."""
    from playwright.async_api import async_playwright, expect

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        try:
            page = await browser.new_page(viewport={"width": 1200, "height": 800})
            await page.goto(f"{url}/officer")
            await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
            await page.get_by_label("Officer token").fill(OFFICER_TOKEN)
            await page.get_by_role("button", name="Sign in").click()
            await expect(page.get_by_role("heading", name="My work: Amira Bennett")).to_be_visible()
            rows = page.locator("#worklist tr.task")
            assert await rows.count() >= 1
            dues = await page.locator("#worklist tr.task td:nth-child(2)").all_inner_texts()
            assert dues and all(d.endswith(("GMT", "BST", "-")) for d in dues)
            assert set(await rows.evaluate_all("rs => rs.map(r => r.dataset.rag)")) <= {
                "green",
                "amber",
                "red",
                "grey",
            }
            await expect(page.locator("#alertlist")).to_contain_text("Amber warning")
            await expect(page.locator("#alertlist")).to_contain_text("Target exceeded")
            # Soonest due first: the breached call-back, then the amber one, then on track.
            first = await rows.evaluate_all("rs => rs.slice(0, 3).map(r => r.dataset.rag)")
            assert first == ["red", "amber", "green"]
            await page.screenshot(path=str(SCREENSHOTS / "officer-page.png"), full_page=True)
            await page.locator("#worklist a").first.click()
            await expect(page.get_by_role("heading", name=f"Case {BREACHED}")).to_be_visible()
            await page.screenshot(path=str(SCREENSHOTS / "officer-case.png"), full_page=True)
        finally:
            await browser.close()


def test_tokens_are_configured_hashed_and_checked() -> None:
    entry = f'[{{"service": "cms", "token_sha256": "{token_hash("t" * 40)}"}}]'
    tokens = Tokens.from_env({"API_TOKENS": entry})
    found = tokens.find("t" * 40)
    assert found is not None and found.service == "cms" and found.officer is None
    assert tokens.find("t" * 39) is None
    with pytest.raises(TokenError, match=r"API_TOKENS: entry 0\.token_sha256"):
        Tokens.from_env({"API_TOKENS": '[{"service": "cms", "token_sha256": "plain"}]'})
    with pytest.raises(TokenError, match="API_TOKENS_FILE: cannot read"):
        Tokens.from_env({"API_TOKENS_FILE": "/no/such/file"})


def test_the_command_line_makes_a_token_and_the_entry_that_accepts_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import json

    from starter.cli import main

    assert main(["--json", "api", "token", "--service", "cms", "--officer", "adviser1"]) == 0
    made = json.loads(capsys.readouterr().out)
    assert made["token"] not in json.dumps(made["entry"])  # only the hash is configured
    tokens = Tokens.parse(json.dumps([made["entry"]]), "API_TOKENS")
    found = tokens.find(made["token"])
    assert found is not None and (found.service, found.officer) == ("cms", "adviser1")
