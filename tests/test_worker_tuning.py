"""The worker's tuning variables: defaults, ranges, and a clear refusal naming a bad one
(the real `python worker.py` exits before connecting to anything)."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from worker import TuningError, max_cached_workflows_from_env, sticky_timeout_from_env

REPO = Path(__file__).resolve().parent.parent


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORKER_MAX_CACHED_WORKFLOWS", raising=False)
    monkeypatch.delenv("WORKER_STICKY_QUEUE_TIMEOUT_SECONDS", raising=False)
    assert max_cached_workflows_from_env() == 5000
    assert sticky_timeout_from_env() == timedelta(seconds=30)
    monkeypatch.setenv("WORKER_STICKY_QUEUE_TIMEOUT_SECONDS", " 12 ")
    assert sticky_timeout_from_env() == timedelta(seconds=12)


@pytest.mark.parametrize("value", ["0", "601", "ten", "1.5", "-3"])
def test_a_sticky_timeout_out_of_range_is_refused_naming_it(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("WORKER_STICKY_QUEUE_TIMEOUT_SECONDS", value)
    with pytest.raises(
        TuningError, match=r"WORKER_STICKY_QUEUE_TIMEOUT_SECONDS must be .* 1 to 600"
    ):
        sticky_timeout_from_env()


def test_the_worker_refuses_to_start_on_a_bad_cache_size(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}",
        "TEMPORAL_ADDRESS": "127.0.0.1:1",
        "WORKER_MAX_CACHED_WORKFLOWS": "lots",
    }
    run = subprocess.run(
        [sys.executable, "worker.py"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 1, run
    assert "WORKER_MAX_CACHED_WORKFLOWS must be a whole number from 1 to 1000000, not 'lots'" in (
        run.stderr
    )
