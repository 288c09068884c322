"""bench/profile_report.py reads py-spy's collapsed stacks: shares of busy samples,
inclusive and self, with the threads that only wait left out."""

from __future__ import annotations

from pathlib import Path

from bench.profile_report import read


def test_shares_count_busy_samples_and_leave_waiting_threads_out(tmp_path: Path) -> None:
    raw = tmp_path / "w1.txt"
    raw.write_text(
        "\n".join(
            [
                # the event loop thread waiting in select: idle
                "run (asyncio/runners.py:1);EpollSelector.select (selectors.py:2) 50",
                # a pool thread waiting for work (the wait is in C): idle
                "Thread.run (threading.py:3);_worker (concurrent/futures/thread.py:4) 30",
                # busy: the workflow planning, then a store write
                "run (asyncio/runners.py:1);_run (/repo/workflows/case_workflow.py:9);"
                "plan (/repo/domain/planner/planning.py:5) 15",
                "Thread.run (threading.py:3);record_case_outcome (/repo/store/repository.py:7)"
                ";do_execute (/venv/lib/python3.11/site-packages/sqlalchemy/engine/default.py:8)"
                " 5",
            ]
        )
        + "\n"
    )
    prof = read(raw)
    assert prof.idle == 80
    assert prof.samples == 20
    assert prof.inclusive["_run (workflows/case_workflow.py)"] == 15
    assert prof.own["plan (domain/planner/planning.py)"] == 15
    assert prof.own["do_execute (sqlalchemy/engine/default.py)"] == 5
    assert prof.inclusive["record_case_outcome (store/repository.py)"] == 5
    assert prof.packages == {"ours: domain": 15, "sqlalchemy": 5}
