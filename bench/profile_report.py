"""Summarise the py-spy profiles a benchmark recorded (`python -m bench --only herd --profile
DIR`): for each file of collapsed stacks (py-spy's `--format raw`), the functions with the
largest share of the samples, inclusive (the function or anything it called was running)
and self (the function itself was), and the share of each package.

    python -m bench.profile_report DIR [--top 25]

A sample is one stack of one busy thread (py-spy leaves idle threads out), taken 100 times
a second, so shares are of the worker's Python CPU time as seen by py-spy (the Rust core
threads of the SDK are not seen).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^():]*)(?::\d+)?\)$")
PACKAGES = (
    ("workflows/", "ours: workflows"),
    ("domain/", "ours: domain"),
    ("activities/", "ours: activities"),
    ("models/", "ours: models"),
    ("store/", "ours: store"),
    ("starter/", "ours: starter"),
    ("temporalio/worker/workflow_sandbox", "temporalio: sandbox"),
    ("temporalio/", "temporalio: other"),
    ("pydantic", "pydantic"),
    ("sqlalchemy", "sqlalchemy"),
    ("structlog", "structlog"),
    ("google/protobuf", "protobuf"),
    ("sqlite3", "sqlite3"),
    ("asyncio", "asyncio"),
    ("json", "json"),
)


def short(file: str) -> str:
    """A path from the repository or site-packages onwards."""
    for marker in ("site-packages/", "/lib/python3"):
        if marker in file:
            rest = file.split(marker, 1)[1]
            return rest.split("/", 1)[1] if marker.startswith("/lib") and "/" in rest else rest
    for top in ("workflows/", "domain/", "activities/", "models/", "store/", "starter/", "bench/"):
        if top in file:
            return top + file.split(top, 1)[1]
    return file


# Leaves where a thread waits rather than works: the event loop's select, a thread-pool
# thread blocked in its queue (the wait is in C, so `_worker` is the leaf), a condition wait.
# Left out of every share (py-spy's own idle detection does not catch them all).
IDLE_LEAVES = {
    ("EpollSelector.select", "selectors.py"),
    ("_worker", "concurrent/futures/thread.py"),
    ("Condition.wait", "threading.py"),
    ("Event.wait", "threading.py"),
    ("Thread.join", "threading.py"),
    ("_wait_for_tstate_lock", "threading.py"),
}


def package(file: str) -> str:
    for prefix, name in PACKAGES:
        if prefix in file:
            return name
    return "other"


@dataclass
class Profile:
    samples: int = 0
    idle: int = 0
    inclusive: Counter[str] = field(default_factory=Counter)
    own: Counter[str] = field(default_factory=Counter)
    packages: Counter[str] = field(default_factory=Counter)


def read(path: Path) -> Profile:
    prof = Profile()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        names: list[tuple[str, str]] = []
        for frame in stack.split(";"):
            m = FRAME.match(frame.strip())
            if m is None:
                names.append((frame.strip(), ""))
            else:
                names.append((m["func"], short(m["file"])))
        if not names:
            continue
        if names[-1] in IDLE_LEAVES:
            prof.idle += count
            continue
        prof.samples += count
        for key in {f"{func} ({file})" for func, file in names}:
            prof.inclusive[key] += count
        leaf_func, leaf_file = names[-1]
        prof.own[f"{leaf_func} ({leaf_file})"] += count
        prof.packages[package(leaf_file)] += count
    return prof


def report(path: Path, top: int, out: object = None) -> None:
    stream = out or sys.stdout
    prof = read(path)
    if not prof.samples:
        print(f"{path.name}: no samples", file=stream)  # type: ignore[arg-type]
        return

    def pct(n: int) -> str:
        return f"{100 * n / prof.samples:5.1f}%"

    lines = [
        f"## {path.name}: {prof.samples} busy samples ({prof.idle} idle left out)",
        "",
        "Inclusive:",
    ]
    lines += [f"  {pct(n)}  {k}" for k, n in prof.inclusive.most_common(top)]
    lines += ["", "Self:"]
    lines += [f"  {pct(n)}  {k}" for k, n in prof.own.most_common(top)]
    lines += ["", "Self, by package:"]
    lines += [f"  {pct(n)}  {k}" for k, n in prof.packages.most_common()]
    print("\n".join(lines) + "\n", file=stream)  # type: ignore[arg-type]


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.profile_report")
    p.add_argument("folder", type=Path)
    p.add_argument("--top", type=int, default=25)
    args = p.parse_args(argv)
    files = sorted(args.folder.rglob("*.txt"))
    if not files:
        print(f"no profiles (*.txt) under {args.folder}", file=sys.stderr)
        return 1
    for f in files:
        report(f, args.top)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
