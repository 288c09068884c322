"""The product's metrics, recorded where the activities do their I/O (never in workflow code,
which must stay deterministic and is replayed). Exposed by the worker in Prometheus's text
format (`starter.observability`); docs/operations.md lists each one and what to alert on.

Every count comes from what the store newly wrote, so an activity retried after a failure
counts nothing twice: alerts from the inbox rows the insert created, refusals from the audit
entries the record newly stored, opened and finished cases from the record that first stored
or finished the case. Labels are codes and statuses only: never a reference or a name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from models.activities import CaseRecord
from models.case import AuditEntry

# Seconds from an indicator's instant to its alert being written: under a second when all
# is well, minutes when workers were down or the queue backed up.
LATENESS_BUCKETS = (0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600, 4 * 3600, 24 * 3600)
SLA_STATUSES = ("on_track", "amber", "breached", "escalated")


def refusal_code(entry: AuditEntry) -> str:
    """The stable code of a refused message's audit entry (its detail is "code: why")."""
    code = entry.detail.split(":", 1)[0].strip()
    return code if code.replace("_", "").isalnum() and len(code) <= 64 else "unknown"


class _OpenCases(Collector):
    """casework_open_cases{sla_status}: read from the store at each scrape."""

    def __init__(self, read: Callable[[], dict[str, int]]) -> None:
        self._read = read

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "casework_open_cases",
            "Open cases in the store's reporting copy, by SLA status.",
            labels=["sla_status"],
        )
        try:
            counts = self._read()
        except Exception:
            return  # the store is down: /healthz says so; no stale numbers here
        for status in sorted(set(SLA_STATUSES) | set(counts)):
            family.add_metric([status], counts.get(status, 0))
        yield family


class CaseMetrics:
    """The product's metrics in a registry of their own (the SDK's are on another port)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.alerts_sent = Counter(
            "casework_alerts_sent",
            "Alerts written to an inbox, one per recipient, by indicator.",
            ["indicator"],
            registry=r,
        )
        self.alert_lateness = Histogram(
            "casework_alert_lateness_seconds",
            "Instant an alert was written minus the instant its indicator was due.",
            ["indicator"],
            buckets=LATENESS_BUCKETS,
            registry=r,
        )
        self.refusals = Counter(
            "casework_refusals",
            "Messages refused and audited (signals; a refused update is answered to its "
            "caller and never reaches history), by refusal code.",
            ["code"],
            registry=r,
        )
        self.cases_opened = Counter(
            "casework_cases_opened", "Cases recorded for the first time.", registry=r
        )
        self.cases_finished = Counter(
            "casework_cases_finished",
            "Cases that completed or closed, by status.",
            ["status"],
            registry=r,
        )
        self.build_info = Gauge(
            "casework_worker_build_info",
            "Always 1; the labels say which build of the worker runs.",
            ["version", "build_id"],
            registry=r,
        )
        for indicator in ("amber", "target_exceeded", "follow_on"):
            self.alerts_sent.labels(indicator)  # present at 0 from the start

    def watch_open_cases(self, read: Callable[[], dict[str, int]]) -> None:
        """Report open cases by SLA status from `read` (the store) at each scrape."""
        self.registry.register(_OpenCases(read))

    def alert_written(self, indicator: str, created: int, due: datetime, now: datetime) -> None:
        if created <= 0:
            return  # a retry that found its rows: counted the first time
        self.alerts_sent.labels(indicator).inc(created)
        self.alert_lateness.labels(indicator).observe(max(0.0, (now - due).total_seconds()))

    def case_recorded(
        self, record: CaseRecord, *, opened: bool, finished: bool, new_audit: list[AuditEntry]
    ) -> None:
        if opened:
            self.cases_opened.inc()
        if finished:
            self.cases_finished.labels(record.status).inc()
        for entry in new_audit:
            if entry.outcome == "refused":
                self.refusals.labels(refusal_code(entry)).inc()
