"""The workflow sandbox re-imports every non-passthrough module for each run: the workflow
modules must not pull in SQLAlchemy (or the `holidays` package, or our store) even indirectly."""

from __future__ import annotations

import json
import subprocess
import sys

FORBIDDEN = ("sqlalchemy", "holidays", "store", "activities", "psycopg", "structlog")


def test_workflow_modules_import_no_io_libraries() -> None:
    code = (
        "import sys, json\n"
        "import workflows.case_workflow, workflows.search, workflows.reconcile\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    loaded = json.loads(result.stdout)
    offending = [m for m in loaded if m.split(".")[0] in FORBIDDEN]
    assert offending == [], f"workflow code imports {offending}"
