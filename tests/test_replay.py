"""Replay recorded case histories against the current workflow code: a change that would
make running cases fail (non-determinism) fails here. Record anew, deliberately, with
`RECORD_HISTORIES=1 .venv/bin/pytest tests/test_case_workflow.py` when a change is meant to
be incompatible (and version it with workflow.patched for the running cases)."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from worker import PASSTHROUGH
from workflows.case_workflow import HousingOptionsCase

HISTORIES = sorted((Path(__file__).resolve().parent / "histories").glob("*.json"))


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_recorded_history_replays(path: Path) -> None:
    replayer = Replayer(
        workflows=[HousingOptionsCase],
        data_converter=pydantic_data_converter,
        workflow_runner=SandboxedWorkflowRunner(
            restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH)
        ),
    )
    history = WorkflowHistory.from_json(f"case-{path.stem}", path.read_text())
    await replayer.replay_workflow(history)


def test_histories_are_recorded() -> None:
    assert len(HISTORIES) >= 3, "tests/histories/ lost its recorded cases"
