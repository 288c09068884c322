"""What the tests share: builders, harnesses and fixtures. Test modules import from here,
never from one another; tests/conftest.py registers the fixture modules (`temporal`,
`store`) as plugins, so a test names a fixture without importing it.

- factories: hand-built case definitions for the pure-core tests
- workflow_harness: a case engine on the time-skipping test server
- temporal: fixtures for the Temporal servers (dev server, time-skipping server)
- store: the store on SQLite and PostgreSQL (the `engine` and `sample_config` fixtures, and
  fresh PostgreSQL schemas)
- stack: the deployed stack (dev server, store, `python -m starter`, a worker process)
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TESTS = REPO / "tests"

# The Temporal SDK's metrics that deploy/prometheus/alerts.yml alerts on and a scrape of a
# healthy worker shows (tests/test_observability.py scrapes them; tests/test_alert_rules.py
# allows only these and the failure counters in the rules).
SDK_METRICS_SEEN = frozenset({"temporal_workflow_task_schedule_to_start_latency"})
# ... and those that appear once a regular activity ran (the reconciliation schedule's, and the
# alerts of cases started before 0.2.0: new cases alert by local activities).
SDK_METRICS_ON_ACTIVITIES = frozenset({"temporal_activity_schedule_to_start_latency"})
