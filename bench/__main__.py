"""`python -m bench`: run the benchmarks, print a table, write JSON, rewrite docs/benchmarks.md.

    python -m bench                          # everything at default sizes (about 20 minutes)
    python -m bench --only herd              # one benchmark (repeat --only for more)
    python -m bench --quick                  # tiny sizes: checks the machinery, not the stack
    python -m bench --herd-cases 2000 --scale-cases 10000 --throughput-seconds 60
    python -m bench --only herd --workers 1,2 --profile /tmp/prof   # py-spy the workers

docs/benchmarks.md is rewritten after a full run at default or larger sizes (not with
--quick, not with --only unless --docs is given); --no-docs never writes it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from bench import core, herd, scale, throughput, worked
from bench.common import (
    REPO,
    BenchResult,
    load_average,
    log,
    machine,
    print_table,
    write_docs,
    write_json,
)

NAMES = ("core", "throughput", "herd", "scale", "worked")


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    p.add_argument("--only", action="append", choices=NAMES, help="run only this benchmark")
    p.add_argument("--quick", action="store_true", help="tiny sizes (seconds, not minutes)")
    p.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "latest.json")
    p.add_argument("--docs", action="store_true", help="rewrite docs/benchmarks.md regardless")
    p.add_argument("--no-docs", action="store_true", help="never rewrite docs/benchmarks.md")
    p.add_argument(
        "--persist",
        action="store_true",
        help="throughput and herd: dev server on an SQLite file (default in memory; scale "
        "always uses a file)",
    )
    p.add_argument("--keep", action="store_true", help="keep the temporary folders (logs, DBs)")
    p.add_argument("--throughput-seconds", type=float, default=None)
    p.add_argument("--throughput-concurrency", type=int, default=None)
    p.add_argument("--herd-cases", type=int, default=None)
    p.add_argument(
        "--workers",
        default=None,
        help="herd: worker processes, or a comma-separated list to run the herd once for "
        "each (default 1,2; --quick: 1); the bare reference runs on as many as the cases",
    )
    p.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="herd: record the worker processes with py-spy into this folder (collapsed "
        "stacks; summarise with python -m bench.profile_report FOLDER)",
    )
    p.add_argument("--scale-cases", type=int, default=None)
    p.add_argument("--worked-cases", type=int, default=None)
    p.add_argument("--worked-messages", type=int, default=None, help="messages to each case")
    p.add_argument(
        "--scale-budget",
        type=float,
        default=None,
        help="seconds allowed for raising the scale cases (the rate is reported if short)",
    )
    return p.parse_args(argv)


def sizes(args: argparse.Namespace) -> dict[str, float]:
    quick = args.quick
    return {
        "throughput_seconds": args.throughput_seconds or (3 if quick else 60),
        "throughput_concurrency": args.throughput_concurrency or (10 if quick else 50),
        "throughput_warmup": 1 if quick else 5,
        "herd_cases": args.herd_cases or (20 if quick else 2000),
        "scale_cases": args.scale_cases or (30 if quick else 10_000),
        "scale_budget": args.scale_budget or (60 if quick else 240),
        "worked_cases": args.worked_cases or (10 if quick else 300),
        "worked_messages": args.worked_messages or (2 if quick else 12),
    }


def main(argv: list[str]) -> int:
    args = parse(argv)
    chosen = [n for n in NAMES if not args.only or n in args.only]
    size = sizes(args)
    root = Path(tempfile.mkdtemp(prefix="bench-"))
    log(f"benchmarks {', '.join(chosen)}; work folder {root}")
    workers = args.workers or ("1" if args.quick else "1,2")
    counts = [int(n) for n in workers.split(",") if n.strip()]
    runners: dict[str, Callable[[], list[BenchResult]]] = {
        "core": lambda: [core.run(quick=args.quick)],
        "throughput": lambda: [
            throughput.run(
                root / "throughput",
                seconds=size["throughput_seconds"],
                concurrency=int(size["throughput_concurrency"]),
                warmup=size["throughput_warmup"],
                persist=args.persist,
            )
        ],
        "herd": lambda: [
            herd.run(
                root / f"herd-{n}",
                cases=int(size["herd_cases"]),
                quick=args.quick,
                persist=args.persist,
                workers=n,
                profile=args.profile / f"{n}w" if args.profile else None,
            )
            for n in counts
        ],
        "scale": lambda: [
            scale.run(
                root / "scale",
                cases=int(size["scale_cases"]),
                budget=size["scale_budget"],
                quick=args.quick,
            )
        ],
        "worked": lambda: [
            worked.run(
                root / "worked",
                cases=int(size["worked_cases"]),
                messages=int(size["worked_messages"]),
            )
        ],
    }
    results: list[BenchResult] = []
    started = time.monotonic()
    for name in chosen:
        t0 = time.monotonic()
        load_before = load_average()
        try:
            ran = runners[name]()
        except Exception as err:
            traceback.print_exc()
            ran = [BenchResult(name, name, error=f"{type(err).__name__}: {err}")]
        seconds = time.monotonic() - t0
        load_after = load_average()
        for result in ran:
            result.seconds = result.seconds or seconds / len(ran)
            result.params.setdefault("load_average", f"{load_before} / {load_after}")
        log(f"{name} done in {seconds:.0f} s")
        results.extend(ran)
    total = time.monotonic() - started

    about = machine()
    print()
    print(
        f"{about['cores']} cores, {about['ram_gb']} GB RAM, Python {about['python']}, "
        f"temporal {about['temporal_cli']}, {about['date']}; {total:.0f} s in all"
    )
    print_table(results)
    payload = {
        "machine": about,
        "quick": args.quick,
        "sizes": size,
        "total_seconds": total,
        "results": [r.to_json() for r in results],
    }
    write_json(args.json, payload)
    log(f"JSON written to {args.json}")
    full = set(chosen) == set(NAMES) and not args.quick
    if not args.no_docs and (args.docs or full):
        docs = write_docs(payload)
        log(f"{docs} rewritten")
    if args.keep:
        log(f"kept {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    # The Temporal SDK can abort the interpreter at shutdown after all work succeeded
    # (sdk-python issue 300); the exit status must reflect the benchmarks, so leave at once.
    os._exit(code)
