"""What the worker shows operators: Prometheus metrics and a health endpoint, and its build.

- WORKER_METRICS_PORT (unset: off): the worker's HTTP endpoint, `/metrics` (the product's
  metrics, `activities.metrics`) and `/healthz`.
- WORKER_SDK_METRICS_PORT (unset: off): the Temporal SDK's own Prometheus endpoint
  (`temporalio.runtime`), any path.
- WORKER_METRICS_HOST (127.0.0.1): the address both bind to (`0.0.0.0` in a container).
- WORKER_BUILD_ID (the package version): the build this worker runs, in its log, its
  metrics (`casework_worker_build_info`) and `/healthz`.

Two ports because the SDK's endpoint is served by its Rust core, which owns its listener;
docs/operations.md lists the metrics of both. Off by default so that workers started side by
side (tests, benchmarks) never fight over a port; the compose file sets both.

`/healthz` answers 200 with `"status": "ok"` when the worker is polling (its identity is
among the task queue's recent workflow and activity pollers, as the server reports them) and
the store answers `SELECT 1`; otherwise 503, saying which. The checks run every few seconds
on the worker's event loop; a result older than `STALE_AFTER` seconds counts as failing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import Engine, text
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

PACKAGE = "housing-options-casework"
CHECK_INTERVAL = 5.0  # seconds between health checks
STALE_AFTER = 30.0  # a health result older than this fails
POLLER_RECENT = timedelta(minutes=2)  # a poller the server saw within this is polling


@dataclass(frozen=True)
class Build:
    version: str  # the package version
    build_id: str  # WORKER_BUILD_ID, else the version


def build() -> Build:
    try:
        version = package_version(PACKAGE)
    except PackageNotFoundError:
        version = "unknown"
    return Build(version, os.environ.get("WORKER_BUILD_ID", "").strip() or version)


def _port(name: str) -> int | None:
    value = os.environ.get(name, "").strip()
    if not value or value.lower() == "off":
        return None
    try:
        port = int(value)
    except ValueError:
        raise ValueError(f"{name} must be a port number or 'off', got {value!r}") from None
    if not 0 < port < 65536:
        raise ValueError(f"{name} must be a port number between 1 and 65535, got {port}")
    return port


@dataclass(frozen=True)
class ObservabilitySettings:
    metrics_port: int | None = None
    sdk_metrics_port: int | None = None
    host: str = "127.0.0.1"

    @classmethod
    def from_env(cls) -> ObservabilitySettings:
        return cls(
            metrics_port=_port("WORKER_METRICS_PORT"),
            sdk_metrics_port=_port("WORKER_SDK_METRICS_PORT"),
            host=os.environ.get("WORKER_METRICS_HOST", "").strip() or cls.host,
        )

    def sdk_runtime(self) -> Runtime | None:
        """A Temporal runtime exporting the SDK's metrics, when a port is set."""
        if self.sdk_metrics_port is None:
            return None
        bind = f"{self.host}:{self.sdk_metrics_port}"
        return Runtime(
            telemetry=TelemetryConfig(
                metrics=PrometheusConfig(bind_address=bind, durations_as_seconds=True)
            )
        )


# ------------------------------------------------------------------ health


@dataclass
class HealthReport:
    polling: bool = False
    store: bool = False
    checked_at: float = 0.0  # time.monotonic() of the check; 0: never checked
    errors: dict[str, str] = field(default_factory=dict)


class HealthMonitor:
    """Checks, every `CHECK_INTERVAL` seconds, that the worker polls and the store answers."""

    def __init__(
        self,
        client: Client,
        engine: Engine,
        task_queue: str,
        build: Build,
        *,
        worker_running: Callable[[], bool],
    ) -> None:
        self._client = client
        self._engine = engine
        self._task_queue = task_queue
        self._build = build
        self._worker_running = worker_running
        self._report = HealthReport()
        self._lock = threading.Lock()

    def _store_ok(self) -> None:
        with self._engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    async def _polling(self) -> bool:
        identity = self._client.identity
        cutoff = datetime.now(UTC) - POLLER_RECENT
        for kind in (
            TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
            TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
        ):
            answer = await self._client.workflow_service.describe_task_queue(
                DescribeTaskQueueRequest(
                    namespace=self._client.namespace,
                    task_queue=TaskQueue(name=self._task_queue),
                    task_queue_type=kind,
                ),
                timeout=timedelta(seconds=5),
            )
            if not any(
                p.identity == identity and p.last_access_time.ToDatetime(tzinfo=UTC) >= cutoff
                for p in answer.pollers
            ):
                return False
        return True

    async def check(self) -> HealthReport:
        report = HealthReport(checked_at=time.monotonic())
        try:
            await asyncio.to_thread(self._store_ok)
            report.store = True
        except Exception as e:
            report.errors["store"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
        try:
            report.polling = self._worker_running() and await self._polling()
            if not report.polling:
                report.errors["polling"] = "this worker is not among the task queue's pollers"
        except Exception as e:
            report.errors["polling"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
        with self._lock:
            self._report = report
        return report

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.check()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), CHECK_INTERVAL)

    def answer(self) -> tuple[int, dict[str, Any]]:
        """The HTTP status and JSON body of /healthz."""
        with self._lock:
            report = self._report
        age = time.monotonic() - report.checked_at if report.checked_at else None
        fresh = age is not None and age <= STALE_AFTER
        ok = fresh and report.polling and report.store
        errors = dict(report.errors)
        if not fresh:
            errors["checked"] = "no health check has completed recently"
        body = {
            "status": "ok" if ok else "unavailable",
            "polling": report.polling,
            "store": report.store,
            "task_queue": self._task_queue,
            "version": self._build.version,
            "build_id": self._build.build_id,
            "checked_seconds_ago": round(age, 1) if age is not None else None,
            "errors": errors,
        }
        return (200 if ok else 503), body


# ------------------------------------------------------------------ the HTTP endpoint


class ObservabilityServer:
    """`/metrics` and `/healthz` on a thread of their own (a scrape never waits for the
    worker's event loop)."""

    def __init__(
        self, host: str, port: int, registry: CollectorRegistry, health: HealthMonitor
    ) -> None:
        registry_ = registry
        health_ = health

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, generate_latest(registry_), CONTENT_TYPE_LATEST)
                elif path in ("/healthz", "/health"):
                    status, body = health_.answer()
                    self._send(status, json.dumps(body).encode(), "application/json")
                else:
                    self._send(404, b"not found: /metrics or /healthz\n", "text/plain")

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # scrapes every few seconds would drown the worker's log

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="observability", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
