"""Shared test setup. Fixtures for the Temporal servers live in tests/temporal_fixtures.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

REPO = Path(__file__).resolve().parent.parent

# The Temporal servers (dev server, time-skipping server) are session fixtures shared by
# every test module.
pytest_plugins = ["tests.temporal_fixtures"]

settings.register_profile("default", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("default")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # scripts/run_pytest.sh reads this when the interpreter aborts at shutdown (SDK quirk).
    status = REPO / "var" / "pytest-exit-status"
    status.parent.mkdir(exist_ok=True)
    status.write_text(str(int(exitstatus)))
