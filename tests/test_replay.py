"""Replay recorded case histories against the current workflow code: a change that would
make running cases fail (non-determinism) fails here. The histories are kept per released
version, `tests/histories/<version>/*.json`, and every version's are replayed: cases opened
on any release may still be running. Record this release's, deliberately, with
`RECORD_HISTORIES=1 .venv/bin/pytest tests/test_case_workflow.py` (they go under the version
in pyproject.toml) when a change is meant to be incompatible (and version it with
workflow.patched for the running cases). A history left directly in tests/histories/ (before
it is filed under its version) is replayed too."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from starter.codec import EncryptionCodec, KeyRing, new_key_line
from starter.connection import data_converter
from worker import sandboxed_runner, workflow_runner
from workflows.case_workflow import HousingOptionsCase

ROOT = Path(__file__).resolve().parent / "histories"
HISTORIES = sorted(ROOT.rglob("*.json"))
VERSIONS = sorted(p.name for p in ROOT.iterdir() if p.is_dir())
# A key for replay only: the recorded histories are plaintext, and pass through the codec.
REPLAY_CODEC = EncryptionCodec(KeyRing.parse([new_key_line("replay")], "test"))


@pytest.mark.parametrize(
    "path", HISTORIES, ids=[str(p.relative_to(ROOT).with_suffix("")) for p in HISTORIES]
)
@pytest.mark.parametrize("sandboxed", [False, True], ids=["production", "sandbox"])
async def test_recorded_history_replays(path: Path, sandboxed: bool) -> None:
    """Each history replays as production runs it (outside the SDK's sandbox) and inside the
    sandbox, which refuses a non-deterministic call in the workflow module (the sandbox as a
    check in CI: see worker.workflow_runner)."""
    replayer = Replayer(
        workflows=[HousingOptionsCase],
        # The product's converter with encryption on: plaintext histories still replay.
        data_converter=data_converter(REPLAY_CODEC),
        workflow_runner=sandboxed_runner() if sandboxed else workflow_runner(False),
    )
    history = WorkflowHistory.from_json(f"case-{path.stem}", path.read_text())
    await replayer.replay_workflow(history)


def test_histories_are_recorded() -> None:
    assert len(HISTORIES) >= 3, "tests/histories/ lost its recorded cases"


def test_every_released_version_keeps_its_histories() -> None:
    """Each folder is a release named in CHANGELOG.md, and the first release's are kept."""
    assert "0.1.0" in VERSIONS and list((ROOT / "0.1.0").glob("*.json"))
    changelog = (ROOT.parent.parent / "CHANGELOG.md").read_text()
    for version in VERSIONS:
        assert re.fullmatch(r"\d+\.\d+\.\d+", version), f"tests/histories/{version}"
        assert f"## {version}" in changelog, f"CHANGELOG.md has no release {version}"
