"""deploy/prometheus/alerts.yml is a well-formed Prometheus rule file whose rules name only
metrics the worker exports (promtool is not on PyPI, so the structure is checked here)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from activities.metrics import CaseMetrics
from starter.gc_watch import CollectionWatch
from tests.helpers import REPO, SDK_METRICS_ON_ACTIVITIES, SDK_METRICS_SEEN

RULES = REPO / "deploy" / "prometheus" / "alerts.yml"
# The SDK's metrics the rules use that appear only once something failed (so a scrape of a
# healthy worker, tests/test_observability.py, cannot show them).
SDK_ON_FAILURE = {
    "temporal_workflow_task_execution_failed",
    "temporal_activity_execution_failed",
    "temporal_local_activity_execution_failed",
}
DURATION = re.compile(r"^\d+[smhd]$")


def _rules() -> list[dict[str, object]]:
    document = yaml.safe_load(RULES.read_text())
    assert set(document) == {"groups"}
    rules: list[dict[str, object]] = []
    for group in document["groups"]:
        assert set(group) == {"name", "rules"} and group["rules"]
        rules.extend(group["rules"])
    return rules


def _product_metrics() -> set[str]:
    metrics = CaseMetrics()
    metrics.watch_open_cases(lambda: {"on_track": 0})
    metrics.refusals.labels("x")
    metrics.cases_finished.labels("closed")
    metrics.alert_lateness.labels("amber")
    CollectionWatch(metrics.registry)  # the worker's garbage collection pauses
    names = set()
    for family in text_string_to_metric_families(generate_latest(metrics.registry).decode()):
        names |= {s.name for s in family.samples}
    return names


def test_every_rule_is_complete() -> None:
    rules = _rules()
    names = [r["alert"] for r in rules]
    assert len(names) == len(set(names)), names
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
        assert isinstance(rule["expr"], str) and rule["expr"].strip()
        assert "for" not in rule or DURATION.match(str(rule["for"])), rule
        labels = rule["labels"]
        assert isinstance(labels, dict) and labels["severity"] in {"page", "warning", "info"}
        annotations = rule["annotations"]
        assert isinstance(annotations, dict) and annotations["summary"]
        expr = rule["expr"]
        assert expr.count("(") == expr.count(")"), expr


def test_rules_name_only_metrics_the_worker_exports() -> None:
    product = _product_metrics()
    used: set[str] = set()
    for rule in _rules():
        used |= set(re.findall(r"\b(?:casework|temporal)_[a-z_]+\b", str(rule["expr"])))
    assert used, "the rules use no metric"
    for name in used:
        if name.startswith("casework_"):
            assert name in product, f"{name} is not a metric of activities.metrics"
        else:
            base = name.removesuffix("_bucket")
            assert base in SDK_ON_FAILURE | SDK_METRICS_SEEN | SDK_METRICS_ON_ACTIVITIES, (
                f"{name}: not a metric the SDK exports"
            )
    # The lateness rule is the one the issue asks for: p99 over 60 seconds.
    late = next(r for r in _rules() if r["alert"] == "CaseworkAlertsLate")
    assert "0.99" in str(late["expr"]) and str(late["expr"]).rstrip().endswith("> 60")


def test_the_compose_file_mounts_this_file_or_docs_name_it() -> None:
    ops = (REPO / "docs" / "operations.md").read_text()
    assert "deploy/prometheus/alerts.yml" in ops
    assert Path(RULES).is_file()
