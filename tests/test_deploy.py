"""The deployment files, checked without a Docker engine (none runs on these machines):
docker-compose.yml is valid (`docker-compose config`, Debian's package, when installed) and
has the structure issue 14 asks for, its images pinned at the versions the tests run
against; the Dockerfile installs the lock; the locks are up to date with pyproject.toml and
are what this environment runs; the set-up scripts register exactly the product's search
attributes and hide no failure."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import text

from starter.client import SEARCH_ATTRIBUTE_TYPES
from starter.devserver import _SA_CLI_NAMES, temporal_cli
from store.db import make_engine
from tests.helpers import REPO
from tests.helpers.store import POSTGRES_URL, postgres_unreachable

COMPOSE = REPO / "docker-compose.yml"
DEPLOY = REPO / "deploy"


def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return document


def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose()["services"]
    return found


def image_tag(service: str) -> tuple[str, str]:
    name, _, tag = services()[service]["image"].partition(":")
    return name, tag


def test_docker_compose_config_accepts_the_file() -> None:
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.skip("docker-compose not installed (apt-get install docker-compose; .ci/run does)")
    run = subprocess.run(
        [tool, "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr


def test_every_image_is_pinned_and_none_is_auto_setup() -> None:
    for name, service in services().items():
        image = service.get("image")
        if image is None:
            assert "build" in service, name
            continue
        repository, _, tag = image.partition(":")
        assert re.fullmatch(r"v?\d+\.\d+(\.\d+)?", tag), f"{name}: {image} is not pinned"
        assert "auto-setup" not in repository, f"{name}: the development image"


def test_versions_are_those_the_tests_run() -> None:
    shown = subprocess.run(
        [str(temporal_cli()), "--version"], capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"Server (\d+\.\d+\.\d+), UI (\d+\.\d+\.\d+)", shown)
    assert match, shown
    server, ui = match.groups()
    assert image_tag("temporal") == ("temporalio/server", server)
    assert image_tag("temporal-schema") == ("temporalio/admin-tools", server)
    assert image_tag("temporal-register") == ("temporalio/admin-tools", server)
    assert image_tag("temporal-ui") == ("temporalio/ui", ui)
    python = re.search(r"^FROM python:(\d+\.\d+)\.\d+-", (REPO / "Dockerfile").read_text(), re.M)
    assert python and python.group(1) == f"{sys.version_info.major}.{sys.version_info.minor}"
    reason = postgres_unreachable()
    if reason is not None:
        pytest.skip(reason)
    engine = make_engine(POSTGRES_URL)
    with engine.connect() as conn:
        tested = str(conn.execute(text("SHOW server_version")).scalar_one()).split()[0]
    engine.dispose()
    name, tag = image_tag("postgresql")
    assert name == "postgres" and tag.split(".")[0] == tested.split(".")[0], (tag, tested)


def test_temporal_schema_is_made_by_temporals_tools_before_the_server_starts() -> None:
    s = services()
    assert s["temporal"]["depends_on"]["temporal-schema"] == {
        "condition": "service_completed_successfully"
    }
    script = (DEPLOY / "temporal" / "setup-schema.sh").read_text()
    assert s["temporal-schema"]["entrypoint"] == ["sh", "/deploy/setup-schema.sh"]
    assert "temporal-sql-tool" in script and "set -eu" in script
    for step in ("setup-schema -v 0.0", 'update-schema -d "$SCHEMA/$dir/versioned"'):
        assert step in script
    assert "temporal:temporal temporal_visibility:visibility" in script
    init = (DEPLOY / "postgres" / "init-databases.sh").read_text()
    for database in ("temporal", "temporal_visibility", "casework"):
        assert database in init
    assert s["temporal"]["environment"]["DB"] == "postgres12"


def test_search_attributes_are_registered_before_the_worker_with_no_failure_hidden() -> None:
    s = services()
    assert s["worker"]["depends_on"]["temporal-register"] == {
        "condition": "service_completed_successfully"
    }
    script = (DEPLOY / "temporal" / "register.sh").read_text()
    registered = dict(re.findall(r"^\s+(\w+):(\w+)(?: \\|; do)$", script, re.M))
    expected = {name: _SA_CLI_NAMES[int(kind)] for name, kind in SEARCH_ATTRIBUTE_TYPES.items()}
    assert registered == expected
    for path in [COMPOSE, *DEPLOY.rglob("*.sh")]:
        assert "|| true" not in path.read_text(), path
    assert "set -eu" in script


def test_the_worker_runs_migrated_with_keys_metrics_and_a_health_check() -> None:
    s = services()
    worker = s["worker"]
    assert worker["depends_on"]["casework-migrate"] == {
        "condition": "service_completed_successfully"
    }
    assert s["casework-migrate"]["command"] == ["python", "-m", "starter", "db", "upgrade"]
    env = worker["environment"]
    assert env["DATABASE_URL"].startswith("postgresql://") and "@postgresql:" in env["DATABASE_URL"]
    assert env["CASE_PAYLOAD_KEYS_FILE"] == "/run/secrets/case_payload_keys"
    assert "case_payload_keys" in worker["secrets"]
    assert "CASE_PAYLOAD_PLAINTEXT" not in env
    health = " ".join(worker["healthcheck"]["test"])
    assert f"127.0.0.1:{env['WORKER_METRICS_PORT']}/healthz" in health
    assert env["WORKER_METRICS_HOST"] == "0.0.0.0"


def test_the_ui_decodes_through_the_codec_server() -> None:
    s = services()
    ui_env = s["temporal-ui"]["environment"]
    codec = s["codec-server"]
    port = codec["command"][codec["command"].index("--port") + 1]
    assert ui_env["TEMPORAL_CODEC_ENDPOINT"] == f"http://localhost:{port}"
    assert f"{port}:{port}" in codec["ports"]
    ui_port = s["temporal-ui"]["ports"][0].split(":")[0]
    assert codec["environment"]["CODEC_SERVER_ALLOWED_ORIGINS"] == f"http://localhost:{ui_port}"
    assert codec["command"][:3] == ["python", "-m", "starter"]


def test_prometheus_loads_the_alert_rules_and_scrapes_both_ports() -> None:
    s = services()
    mounts = " ".join(s["prometheus"]["volumes"])
    assert "deploy/prometheus/alerts.yml" in mounts
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = {
        job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]
    }
    env = s["worker"]["environment"]
    assert targets == {
        "casework-worker": [f"worker:{env['WORKER_METRICS_PORT']}"],
        "casework-worker-sdk": [f"worker:{env['WORKER_SDK_METRICS_PORT']}"],
    }


def _locked(path: Path) -> dict[str, str]:
    return {
        m[1].lower().replace("_", "-"): m[2]
        for m in re.finditer(r"^([A-Za-z0-9_.-]+)==(\S+)", path.read_text(), re.M)
    }


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\[<>=!~ ;]", r, maxsplit=1)[0].lower() for r in requirements}


def test_the_locks_hold_every_dependency_and_the_dockerfile_installs_the_lock() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    runtime = _locked(REPO / "requirements.lock")
    dev = _locked(REPO / "requirements-dev.lock")
    missing = _names(project["dependencies"]) - set(runtime)
    assert not missing, f"not in requirements.lock: {sorted(missing)}; run `make lock`"
    missing = _names(project["optional-dependencies"]["dev"]) - set(dev)
    assert not missing, f"not in requirements-dev.lock: {sorted(missing)}; run `make lock`"
    for name, pinned in runtime.items():
        assert dev.get(name) == pinned, f"{name}: the two locks disagree; run `make lock`"
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "pip install --no-cache-dir -r requirements.lock" in dockerfile
    assert "pip install --no-cache-dir --no-deps ." in dockerfile
    assert "-c $(LOCK)" in (REPO / "Makefile").read_text()


def test_this_environment_runs_the_locked_versions() -> None:
    """`make setup` installs with the lock as constraints: what the suite runs is the lock."""
    differ = {}
    for name, pinned in _locked(REPO / "requirements-dev.lock").items():
        if name in ("pip", "setuptools"):
            continue  # the installers themselves
        try:
            installed = version(name)
        except PackageNotFoundError:
            installed = None
        if installed != pinned:
            differ[name] = (pinned, installed)
    assert not differ, f"installed versions differ from requirements-dev.lock: {differ}"


def test_license_and_changelog() -> None:
    license_text = (REPO / "LICENSE").read_text()
    assert license_text.startswith("MIT License")
    assert "Copyright (c) 2026 the housing options casework engine authors" in license_text
    changelog = (REPO / "CHANGELOG.md").read_text()
    current = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert f"## {current}" in changelog
    assert "python -m starter db upgrade" in changelog
