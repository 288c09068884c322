"""How the tests and the benchmarks share code: test modules only through tests/helpers/ and
the fixtures tests/conftest.py registers (never by importing another test module), and the
benchmarks not at all (they run without the tests, so they import no test code and need no
`sys.path` edits: `python -m bench...` from the repository root)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.helpers import REPO, TESTS


def _imported(path: Path) -> set[str]:
    """The modules `path` imports (absolute imports; the repository uses no relative ones)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_no_test_module_imports_another_test_module() -> None:
    files = sorted(TESTS.rglob("*.py"))
    assert len(files) > 10  # the walk found the suite
    offenders = {
        str(path.relative_to(REPO)): sorted(
            name
            for name in _imported(path)
            if name.startswith("tests.") and not name.startswith("tests.helpers")
        )
        for path in files
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_benchmarks_import_no_test_code_and_edit_no_path() -> None:
    files = sorted((REPO / "bench").rglob("*.py"))
    assert len(files) > 5  # the walk found the benchmarks
    offenders = {
        str(path.relative_to(REPO)): sorted(
            name for name in _imported(path) if name == "tests" or name.startswith("tests.")
        )
        for path in files
    }
    assert {k: v for k, v in offenders.items() if v} == {}
    edits = [str(p.relative_to(REPO)) for p in files if "sys.path" in p.read_text()]
    assert edits == []
