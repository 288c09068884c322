"""The benchmark suite runs end to end at tiny sizes: `python -m bench --quick` for the core,
throughput, herd and worked-case benchmarks (each with its own dev server and worker
processes), printing a table and writing JSON. No timing is asserted: the figures depend on
the machine, and benchmarks are scripts that print them (docs/benchmarks.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_quick_benchmarks_print_a_table_and_write_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    docs = REPO / "docs" / "benchmarks.md"
    docs_before = docs.read_text() if docs.exists() else None
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--quick",
            "--only",
            "core",
            "--only",
            "throughput",
            "--only",
            "herd",
            "--only",
            "worked",
            "--throughput-seconds",
            "3",
            "--json",
            str(out),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr

    # The table: a header, then a row per figure, naming each benchmark.
    lines = proc.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["benchmark", "figure"])
    rows = lines[header + 2 :]
    assert any(r.startswith("core ") for r in rows), proc.stdout
    assert any(r.startswith("throughput ") for r in rows), proc.stdout

    payload = json.loads(out.read_text())
    assert payload["quick"] is True
    assert payload["machine"]["cores"] >= 1
    results = {r["name"]: r for r in payload["results"]}
    assert set(results) == {"core", "throughput", "herd", "worked"}
    for result in results.values():
        assert result["error"] is None
        assert result["figures"], result["name"]
    throughput = {f["name"]: f["value"] for f in results["throughput"]["figures"]}
    assert throughput["trivial: history events per workflow"] > 0
    assert throughput["case: history events per workflow"] > 0
    assert throughput["ratio (b)/(a), history events per second"] is not None
    # The herd: the bare reference and the cases, side by side, every alert written once.
    herd = {f["name"]: f["value"] for f in results["herd"]["figures"]}
    assert herd["bare: lost"] == 0
    assert herd["burst: lost"] == 0 and herd["spread: lost"] == 0
    assert herd["alerts doubled (all inbox rows)"] == 0
    assert herd["drain rate ratio, case burst / bare reference"] is not None
    assert herd["burst: history events per alert (from the timer firing)"] > 0
    assert herd["burst: worker CPU per alert"] is not None
    # Memory per cached workflow, the case's beside the bare workflow's (the SDK's floor).
    assert "bare: worker memory per cached workflow (VmRSS growth / workflows asleep)" in herd
    assert "worker memory per cached case above the bare workflow's" in herd
    # The worker's log is read: its full garbage collections (starter.gc_watch) are counted.
    assert herd["worker: full garbage collections"] >= 0
    assert herd["worker: longest full garbage collection"] >= 0

    # Worked cases: messages carried out (the history grew), then every case replayed on a
    # new worker and answering its state query.
    worked = {f["name"]: f["value"] for f in results["worked"]["figures"]}
    assert (
        worked["history events of a worked case"] > worked["history events of a case just opened"]
    )
    assert worked["replay: cases answered per second (new worker)"] > 0
    assert "replay: worker memory per replayed case (VmRSS growth / cases)" in worked
    assert worked["new worker: workflow tasks failed as deadlocked (TMPRL1101)"] == 0

    # A quick run never rewrites the published figures.
    assert (docs.read_text() if docs.exists() else None) == docs_before
