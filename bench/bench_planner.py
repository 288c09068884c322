"""How long one `plan()` call takes: the workflow plans on every wake-up (timer or message),
inside the workflow task, so it must stay far below a millisecond for ordinary cases.

Run: `.venv/bin/python bench/bench_planner.py` (or `main()` from another script). Prints the
median and 99th percentile per call for 10-, 50- and 200-task cases, in two situations:

- steady state: every task open or waiting with indicators pending, nothing due now (the
  common case: a message arrived, or a timer for another case's instant);
- due: one amber indicator is due now, so the planner copies what it changes and simulates.

A script, not a test: timings depend on the machine and do not belong in assertions.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from domain import planner
from models.case import CaseState
from models.definition import CaseDefinition
from models.messages import CompleteTask
from tests.factories import (
    ALICE,
    OFFICERS,
    catch_up,
    definition,
    follow_on,
    london,
    p,
    sla,
    step,
    task,
)

RAISED = london(2026, 3, 2, 10)  # Mon 2 Mar 2026 10:00 GMT
SIZES = (10, 50, 200)
CALLS = 3000


def build_case(n: int) -> tuple[CaseDefinition, CaseState]:
    """A case of `n` tasks: a quarter start at once, each of the rest waits for the task a
    quarter before it (so most are waiting, a few open); targets of 5 to 19 working days with a
    2-day amber and two follow-ons. Started, a fifth of the open tasks completed."""
    keys = [f"task_{i:03d}" for i in range(n)]
    first = max(1, n // 4)
    escalate = follow_on(p(1, "days"), repeat=2)
    tasks = [
        task(
            k,
            sla(p(5 + i % 15, "days"), amber=p(2, "days"), follow=escalate),
        )
        for i, k in enumerate(keys)
    ]
    path = [
        step(k, [] if i < first else [keys[i - first]], mandatory=i % 3 != 0)
        for i, k in enumerate(keys)
    ]
    defn = definition(tasks, path)
    state = planner.new_case_state(
        defn,
        reference="BENCH-1",
        created_by="alice",
        created_at=RAISED,
        case_owner=ALICE,
        task_owners={k: OFFICERS for k in keys},
    )
    catch_up(defn, state, RAISED)
    for i in range(0, first, 5):
        planner.complete_task(
            defn,
            state,
            CompleteTask(request_id=f"r{i}", actor="alice", task=keys[i]),
            RAISED + timedelta(hours=1),
        )
    catch_up(defn, state, RAISED + timedelta(hours=1))
    return defn, state


def measure(call: Callable[[], object], calls: int = CALLS) -> tuple[float, float]:
    """Median and 99th percentile of one call, in microseconds."""
    for _ in range(100):  # warm the calendar cache and the interpreter
        call()
    samples = []
    for _ in range(calls):
        t0 = time.perf_counter_ns()
        call()
        samples.append(time.perf_counter_ns() - t0)
    samples.sort()
    return statistics.median(samples) / 1000, samples[int(len(samples) * 0.99)] / 1000


def main() -> None:
    print(f"plan() per call, {CALLS} calls each (microseconds)")
    print(f"{'tasks':>6} {'situation':<14} {'actions':>7} {'median':>9} {'p99':>9}")
    for n in SIZES:
        defn, state = build_case(n)
        steady_now = RAISED + timedelta(hours=2)
        steady = planner.plan(defn, state, steady_now)
        assert steady.actions == [] and steady.next_instant is not None
        due_now = steady.next_instant  # the earliest amber: due at exactly this instant
        due = planner.plan(defn, state, due_now)
        assert due.actions
        for label, now, actions in (
            ("steady state", steady_now, 0),
            ("due action", due_now, len(due.actions)),
        ):
            median, p99 = measure(partial(planner.plan, defn, state, now))
            print(f"{n:>6} {label:<14} {actions:>7} {median:>9.1f} {p99:>9.1f}")


if __name__ == "__main__":
    main()
