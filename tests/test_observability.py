"""The worker's metrics and health, scraped from the real worker process (`python worker.py`)
on the real dev server during a case that raises, refuses a signal, turns amber and closes:
the product's metrics and /healthz on WORKER_METRICS_PORT, the SDK's on
WORKER_SDK_METRICS_PORT (starter/observability.py, activities/metrics.py)."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from activities.metrics import CaseMetrics
from models.activities import CaseRecord
from models.case import AuditEntry, Owner
from models.messages import CloseCase, CompleteTask, RaiseCase
from starter.client import CaseClient
from starter.connection import TemporalSettings, connect
from starter.devserver import DevServer, free_port
from starter.observability import Build, HealthMonitor
from store import repository
from store.db import make_engine
from tests.helpers import SDK_METRICS_SEEN
from tests.helpers.stack import started_stack

QUICK = "tests/e2e_config/quick_alert.yaml"


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def _samples(body: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


async def _until(check, what: str, timeout: float = 240.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = await asyncio.to_thread(check)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        await asyncio.sleep(1)


async def test_metrics_and_health_from_the_worker_process(
    dev_server: DevServer, tmp_path: Path
) -> None:
    port, sdk_port = free_port(), free_port()
    env = {
        "WORKER_METRICS_PORT": str(port),
        "WORKER_SDK_METRICS_PORT": str(sdk_port),
        "WORKER_BUILD_ID": "build-test-7",
    }
    with started_stack("sqlite", dev_server, tmp_path, QUICK, extra_env=env) as stack:
        metrics_url = f"http://127.0.0.1:{port}/metrics"
        health_url = f"http://127.0.0.1:{port}/healthz"

        def healthy() -> dict[str, object] | None:
            status, body = _get(health_url)
            data: dict[str, object] = json.loads(body)
            return data if status == 200 else None

        health = await _until(healthy, "the worker reports healthy", 60)
        assert health["polling"] is True and health["store"] is True
        assert health["build_id"] == "build-test-7" and health["task_queue"] == stack.queue
        started = [e for e in stack.worker.events() if e["event"] == "worker started"]
        assert started[0]["build_id"] == "build-test-7"
        # The tuning it runs with, as an operator reads it in the start-up line.
        assert started[0]["max_cached_workflows"] == 5000
        assert started[0]["sticky_queue_timeout_seconds"] == 30
        assert started[0]["workflow_sandbox"] is False

        cases = CaseClient(await connect(TemporalSettings(address=dev_server.address)), stack.queue)
        ref = f"OBS-{uuid.uuid4().hex[:8]}"
        await cases.raise_case(RaiseCase(reference=ref, topic="quick-advice", raised_by="adviser1"))
        # A refused signal (the letter is not open yet): audited, so counted by its code.
        await cases.complete_task(
            ref, CompleteTask(request_id="bad", actor="adviser1", task="quick-letter"), wait=False
        )

        def scraped() -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
            status, body = _get(metrics_url)
            assert status == 200
            samples = _samples(body)
            amber = samples.get(
                ("casework_alert_lateness_seconds_count", (("indicator", "amber"),)), 0
            )
            refused = samples.get(("casework_refusals_total", (("code", "task_not_open"),)), 0)
            return samples if amber >= 1 and refused >= 1 else None

        samples = await _until(scraped, "the amber alert and the refusal in /metrics")
        assert samples[("casework_alerts_sent_total", (("indicator", "amber"),))] == 2  # 2 people
        assert samples[("casework_cases_opened_total", ())] == 1
        # Lateness is the written instant minus the due one: under the largest bucket, >= 0.
        assert samples[("casework_alert_lateness_seconds_sum", (("indicator", "amber"),))] >= 0
        assert (
            samples[
                (
                    "casework_alert_lateness_seconds_bucket",
                    (("indicator", "amber"), ("le", "86400.0")),
                )
            ]
            == 1
        )
        open_cases = {
            dict(labels)["sla_status"]: value
            for (name, labels), value in samples.items()
            if name == "casework_open_cases"
        }
        assert sum(open_cases.values()) == 1 and set(open_cases) >= {"on_track", "amber"}
        this = version("housing-options-casework")
        build = ("casework_worker_build_info", (("build_id", "build-test-7"), ("version", this)))
        assert samples[build] == 1

        await cases.close_case(ref, CloseCase(request_id="close", actor="tl1", reason="done"))

        def finished() -> bool:
            samples = _samples(_get(metrics_url)[1])
            return samples.get(("casework_cases_finished_total", (("status", "closed"),))) == 1

        await _until(finished, "the closed case in /metrics", 60)

        # The SDK's own metrics, on their own port.
        status, sdk_body = _get(f"http://127.0.0.1:{sdk_port}/metrics")
        assert status == 200
        names = {family.name for family in text_string_to_metric_families(sdk_body)}
        assert "temporal_workflow_task_schedule_to_start_latency" in names, sorted(names)
        # Alerts and records are local activities (issue 13).
        assert "temporal_local_activity_execution_latency" in names, sorted(names)
        # What deploy/prometheus/alerts.yml uses (tests/test_alert_rules.py).
        assert names >= SDK_METRICS_SEEN, sorted(names)
        assert _get(f"http://127.0.0.1:{port}/nothing")[0] == 404


async def test_health_says_what_fails(dev_server: DevServer) -> None:
    """No worker polls the queue and the store is unreachable: 503, naming both."""
    client = await connect(TemporalSettings(address=dev_server.address))
    engine = make_engine(
        f"postgresql://nobody@127.0.0.1:{free_port()}/none", connect_args={"connect_timeout": 2}
    )
    monitor = HealthMonitor(
        client,
        engine,
        f"nobody-polls-{uuid.uuid4().hex[:8]}",
        Build("1", "b"),
        worker_running=lambda: True,
    )
    status, body = monitor.answer()
    assert status == 503 and body["errors"]["checked"]  # never checked yet
    report = await monitor.check()
    assert not report.polling and not report.store
    status, body = monitor.answer()
    assert status == 503 and body["status"] == "unavailable"
    assert set(body["errors"]) == {"store", "polling"}
    engine.dispose()


def test_retried_activities_count_nothing_twice(engine: Engine) -> None:
    """The counts follow what the store newly wrote: a retried record or alert adds nothing."""
    metrics = CaseMetrics()
    now = datetime(2026, 12, 1, 12, tzinfo=UTC)
    refused = AuditEntry(
        at=now,
        actor="adviser1",
        action="complete_task",
        outcome="refused",
        detail="task_not_open: the letter is waiting",
    )
    accepted = AuditEntry(at=now, actor="adviser1", action="raise", outcome="accepted")
    record = CaseRecord(
        reference="HO-M-1",
        topic="t",
        workflow_type="w",
        workflow_version=1,
        config_version=1,
        status="open",
        owner=Owner(kind="user", key="adviser1"),
        created_by="adviser1",
        created_at=now,
        finished_at=None,
        close_reason=None,
        sla_status="on_track",
        case_due_at=None,
        tasks=[],
        revision=1,
        audit=[accepted, refused],
        audit_from=0,
    )
    closed = record.model_copy(
        update={"status": "closed", "revision": 2, "audit": [accepted], "audit_from": 2}
    )
    for r in (record, record, closed, closed):  # each written once, then retried
        outcome = repository.record_case_outcome(engine, r)
        metrics.case_recorded(
            r, opened=outcome.opened, finished=outcome.finished, new_audit=outcome.new_audit
        )
    metrics.alert_written("amber", 2, now - timedelta(seconds=3), now)
    metrics.alert_written("amber", 0, now - timedelta(seconds=3), now)  # its retry
    metrics.watch_open_cases(lambda: repository.open_cases_by_sla_status(engine))

    samples = _samples(generate_latest(metrics.registry).decode())
    assert samples[("casework_cases_opened_total", ())] == 1
    assert samples[("casework_cases_finished_total", (("status", "closed"),))] == 1
    assert samples[("casework_refusals_total", (("code", "task_not_open"),))] == 1
    assert samples[("casework_alerts_sent_total", (("indicator", "amber"),))] == 2
    assert samples[("casework_alert_lateness_seconds_count", (("indicator", "amber"),))] == 1
    assert samples[("casework_alert_lateness_seconds_sum", (("indicator", "amber"),))] == 3
    assert samples[("casework_open_cases", (("sla_status", "on_track"),))] == 0
