"""Shared test setup. The fixtures live in tests/helpers/ and are registered here as plugins,
so test modules name them without importing them, and never import one another."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Helper modules hold assertions too (a worker must stop cleanly, ...): rewrite them, so a
# failure shows the values as it would in a test module. Must come before they are imported.
pytest.register_assert_rewrite("tests.helpers")

REPO = Path(__file__).resolve().parent.parent

# The suite's clients and worker processes run without payload encryption unless a test
# gives them keys (tests/test_codec.py): starter/codec.py refuses to start without keys
# otherwise.
os.environ.setdefault("CASE_PAYLOAD_PLAINTEXT", "accept")

# The Temporal servers (dev server, time-skipping server) are session fixtures shared by
# every test module; the store fixtures give an `engine` on each backend and the sample
# configuration.
pytest_plugins = ["tests.helpers.temporal", "tests.helpers.store"]

settings.register_profile("default", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("default")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # scripts/run_pytest.sh reads this when the interpreter aborts at shutdown (SDK quirk).
    status = REPO / "var" / "pytest-exit-status"
    status.parent.mkdir(exist_ok=True)
    status.write_text(str(int(exitstatus)))
