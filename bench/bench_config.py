"""How long loading and validating the sample configuration takes.

`config validate` and `config load` run this on every call, and the synchronised-targets
check walks every path for every start date of the coming year (three start instants a day),
so it must stay well under two seconds.

Run from the repository root: `.venv/bin/python -m bench.bench_config [folder] [runs]`.
Prints the first run in this process (bank holidays not yet resolved), then the median of
`runs` runs of each stage, with the bank holiday cache cleared before each run (a fresh CLI
process) and kept (a long-lived service). A script, not a test: timings depend on the machine.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

from config_files import load_and_validate, load_configuration
from domain import case_definition
from domain.config_validation import validate_configuration

REPO = Path(__file__).resolve().parent.parent

TODAY = date(2026, 11, 25)


def median_ms(call: Callable[[], object], runs: int, *, cold: bool) -> float:
    samples = []
    for _ in range(runs):
        if cold:
            case_definition._bank_holidays.cache_clear()
        t0 = time.perf_counter()
        call()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1000


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "config" / "sample"
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 10

    t0 = time.perf_counter()
    config = load_and_validate(folder, TODAY)
    first = (time.perf_counter() - t0) * 1000
    print(
        f"{folder}: {len(config.workflow_types)} workflow type versions, "
        f"{len(config.topics)} topics, {len(config.task_definitions)} task definitions"
    )
    print(f"first load and validate in this process: {first:8.1f} ms")
    print(f"median of {runs} runs (ms)          {'cold':>8} {'warm':>8}")
    stages: list[tuple[str, Callable[[], object]]] = [
        ("load (YAML and schema)", lambda: load_configuration(folder)),
        ("validate", lambda: validate_configuration(config, TODAY)),
        ("load and validate", lambda: load_and_validate(folder, TODAY)),
    ]
    for label, call in stages:
        cold = median_ms(call, runs, cold=True)
        warm = median_ms(call, runs, cold=False)
        print(f"  {label:<31} {cold:8.1f} {warm:8.1f}")


if __name__ == "__main__":
    main()
