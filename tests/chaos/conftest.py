"""The fault-injection tests: `pytest -m chaos` selects them, `-m "not chaos"` leaves them out."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "chaos: fault injection on the deployed stack (bench/chaos.py)"
    )
