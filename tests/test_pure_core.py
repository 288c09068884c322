"""`domain/` is the pure core: the workflow sandbox imports parts of it and every layer
depends on it, so it must not reach files, databases or the Temporal client, even
indirectly. Reading configuration files is the `config_files` adapter's job.

Each module is imported in a fresh interpreter, so that what it pulls in is its own doing
and not left over from another test (compare tests/test_workflow_imports.py, which guards
the workflow modules themselves).
"""

from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import domain

DOMAIN = Path(domain.__file__).resolve().parent

# Top-level packages the pure core must never load: YAML and file reading (ours and the
# library), the database, our I/O layers, and logging, which workflow code gets from
# Temporal's sandbox-safe logger instead.
FORBIDDEN_PACKAGES = (
    "yaml",
    "sqlalchemy",
    "psycopg",
    "structlog",
    "config_files",
    "store",
    "activities",
    "starter",
    "bench",
    "worker",
    "workflows",
)
# Modules forbidden by full name: the client is for starters and workers, not for rules.
FORBIDDEN_MODULES = ("temporalio.client",)

# The edge of the core: modules allowed the `holidays` package, whose bank-holiday data is
# resolved once when a case pins its definition (never inside a running workflow).
# config_validation checks synchronised targets on real calendars, through case_definition.
HOLIDAY_EDGE = {"domain.bank_holidays", "domain.case_definition", "domain.config_validation"}

# What no module of the core imports directly: file and process access.
FORBIDDEN_DIRECT_IMPORTS = ("pathlib", "os", "io", "shutil", "tempfile", "glob", "subprocess")


def _core_modules() -> list[str]:
    found = ["domain"]
    found += [m.name for m in pkgutil.walk_packages([str(DOMAIN)], prefix="domain.")]
    return sorted(found)


CORE = _core_modules()


def test_the_core_is_found() -> None:
    assert {"domain.planner", "domain.task_paths", "domain.config_validation"} <= set(CORE)
    assert "domain.config_loader" not in CORE  # the loader lives in config_files/


@pytest.mark.parametrize("module", CORE)
def test_core_module_imports_no_io(module: str) -> None:
    code = (
        "import importlib, json, sys\n"
        f"importlib.import_module({module!r})\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    loaded = json.loads(result.stdout)
    forbidden = FORBIDDEN_PACKAGES if module in HOLIDAY_EDGE else (*FORBIDDEN_PACKAGES, "holidays")
    offending = [m for m in loaded if m.split(".")[0] in forbidden or m in FORBIDDEN_MODULES]
    assert offending == [], f"{module} imports {offending}"


@pytest.mark.parametrize("module", CORE)
def test_core_module_reads_no_files(module: str) -> None:
    source = DOMAIN.parent / (module.replace(".", "/") + ".py")
    if not source.exists():
        source = DOMAIN.parent / module.replace(".", "/") / "__init__.py"
    tree = ast.parse(source.read_text(encoding="utf-8"), filename=str(source))
    problems: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "open"
        ):
            problems.append(f"line {node.lineno}: open()")
            continue
        else:
            continue
        problems += [
            f"line {node.lineno}: import {n}"
            for n in names
            if n.split(".")[0] in FORBIDDEN_DIRECT_IMPORTS
        ]
    assert problems == [], f"{source.name}: {problems}"
