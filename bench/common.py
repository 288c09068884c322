"""What every benchmark shares: a dev server and a store of its own in a temporary folder, a
worker process, a client, bounded concurrency, percentiles, the result rows and a description
of the machine.

Each benchmark starts its own headless dev server and its own worker process, so runs are
comparable and a benchmark never inherits another's cases. The worker runs as a separate
process (`python worker.py`, the real entry point) rather than inside the benchmark: the
benchmark's own Python (the load generator, the measuring) would otherwise share one GIL with
the worker and distort what is measured; it also lets the scale benchmark read the worker's
memory and kill it with SIGKILL. The process itself is starter.worker_process.WorkerProcess,
the one the end-to-end tests use too; what only the benchmarks need (the CPU meter, the
count of deadlocked and slow workflow tasks in its log) is here.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from string import Template
from typing import Any, TypeVar

from sqlalchemy import Engine

from models.config import Configuration
from starter.client import CaseClient
from starter.connection import TemporalSettings, connect
from starter.devserver import DevServer, start_dev_server, temporal_cli
from starter.worker_process import WorkerProcess, cpu_seconds, worker_env
from store.db import create_schema, make_engine
from store.repository import save_configuration

REPO = Path(__file__).resolve().parent.parent
# The benchmarks measure the engine as the figures in docs/benchmarks.md were taken: without
# payload encryption unless keys are given (starter/codec.py refuses to run with neither).
os.environ.setdefault("CASE_PAYLOAD_PLAINTEXT", "accept")
BENCH_CONFIG = REPO / "bench" / "bench_config"
T = TypeVar("T")


# --------------------------------------------------------------------------- results


@dataclass
class Figure:
    """One measured figure. `goal` is a human-readable target ("< 2 s", ">= 0.8") and `met`
    whether this run reached it (None: no goal)."""

    name: str
    value: float | int | str | None
    unit: str = ""
    goal: str | None = None
    met: bool | None = None

    def shown(self) -> str:
        v = self.value
        if v is None:
            text = "n/a"
        elif isinstance(v, float):
            text = f"{v:,.3f}" if abs(v) < 10 else f"{v:,.1f}"
        elif isinstance(v, int):
            text = f"{v:,}"
        else:
            text = str(v)
        return f"{text} {self.unit}".strip()


@dataclass
class BenchResult:
    """What one benchmark measured: its figures, the sizes it ran at, and notes (what limited
    it, anything that did not go to plan)."""

    name: str
    title: str
    figures: list[Figure] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None

    def add(
        self,
        name: str,
        value: float | int | str | None,
        unit: str = "",
        goal: str | None = None,
        met: bool | None = None,
    ) -> Figure:
        fig = Figure(name, value, unit, goal, met)
        self.figures.append(fig)
        return fig

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def print_table(results: Sequence[BenchResult], out: Any = None) -> None:
    """The figures of every benchmark as one plain-text table."""
    out = out or sys.stdout
    rows: list[tuple[str, str, str, str]] = []
    for r in results:
        if r.error:
            rows.append((r.name, "FAILED", r.error[:60], ""))
        for f in r.figures:
            verdict = "" if f.met is None else ("met" if f.met else "MISSED")
            goal = f"{f.goal} {verdict}".strip() if f.goal else ""
            rows.append((r.name, f.name, f.shown(), goal))
    headers = ("benchmark", "figure", "value", "goal")
    widths = [
        max(len(h), *(len(row[i]) for row in rows)) if rows else len(h)
        for i, h in enumerate(headers)
    ]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    print(line, file=out)
    print("  ".join("-" * w for w in widths), file=out)
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip(), file=out)
    out.flush()


def percentile(values: Sequence[float], p: float) -> float | None:
    """The p-th percentile (0-100) by the nearest-rank method; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-p * len(ordered) // 100))))
    return ordered[rank - 1]


def log(msg: str) -> None:
    """Progress on stderr, so stdout keeps the table."""
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- the machine


def temporal_version() -> str:
    try:
        out = subprocess.run(
            [str(temporal_cli()), "--version"], capture_output=True, text=True, timeout=30
        )
        return out.stdout.strip().removeprefix("temporal version ")
    except (OSError, subprocess.SubprocessError) as err:
        return f"unknown ({err})"


def machine() -> dict[str, Any]:
    """Cores, RAM, CPU model, OS, Python, temporal CLI and SDK versions, date."""
    from importlib.metadata import version

    mem_kb = 0
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "ram_gb": round(mem_kb / 1024 / 1024, 1),
        "cpu": cpu,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "temporal_cli": temporal_version(),
        "temporalio": version("temporalio"),
        "sqlite": sqlite3.sqlite_version,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


# --------------------------------------------------------------------------- the stack


def dev_server(workdir: Path, *, persist: bool) -> DevServer:
    """A headless dev server (no Web UI) with its files in `workdir`."""
    workdir.mkdir(parents=True, exist_ok=True)
    return start_dev_server(workdir=workdir, persist=persist)


class CpuMeter:
    """CPU used by the worker process(es), the dev server and this process over a stretch of
    time, as a share of one core each: shows which of them was the bottleneck. With several
    worker processes, "worker" is their sum; `worker_seconds` gives the CPU seconds each
    used."""

    def __init__(self, worker: WorkerProcess | Sequence[WorkerProcess], server: DevServer) -> None:
        self.workers = [worker] if isinstance(worker, WorkerProcess) else list(worker)
        self.server_pid = server.process.pid if server.process else None
        self.start()

    def _sample(self) -> tuple[float, list[float], float, float]:
        server = cpu_seconds(self.server_pid) if self.server_pid else None
        return (
            time.monotonic(),
            [w.cpu_seconds() or 0.0 for w in self.workers],
            server or 0.0,
            time.process_time(),
        )

    def start(self) -> None:
        self._t0 = self._sample()
        self._t1: tuple[float, list[float], float, float] | None = None

    def stop(self) -> None:
        """Freeze the measurement here (later `shares` and `worker_seconds` use this)."""
        self._t1 = self._sample()

    def _end(self) -> tuple[float, list[float], float, float]:
        return self._t1 if self._t1 is not None else self._sample()

    def worker_seconds(self) -> list[float]:
        """CPU seconds each worker process used since `start` (until `stop`)."""
        t1 = self._end()
        return [b - a for a, b in zip(self._t0[1], t1[1], strict=True)]

    def shares(self) -> dict[str, float]:
        """Cores used on average since `start`: worker(s), dev server, benchmark (load)."""
        t1 = self._end()
        wall = max(t1[0] - self._t0[0], 1e-9)
        return {
            "worker": sum(self.worker_seconds()) / wall,
            "dev_server": (t1[2] - self._t0[2]) / wall,
            "benchmark": (t1[3] - self._t0[3]) / wall,
        }


def load_average() -> str:
    """The 1, 5 and 15 minute load averages (what else was running), as text."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def file_size(path: Path) -> int:
    """Bytes of an SQLite database with its -wal and -shm files."""
    total = 0
    for suffix in ("", "-wal", "-shm"):
        p = Path(f"{path}{suffix}")
        if p.exists():
            total += p.stat().st_size
    return total


def store(
    workdir: Path, config: Configuration, source: str, staff: Path | None = None
) -> tuple[Engine, str]:
    """A fresh SQLite store in `workdir` with `config` in force and the staff of `staff`
    (a CSV export; default the herd's, bench/bench_config/herd/staff.csv) in its directory."""
    url = f"sqlite:///{workdir / 'casework.db'}"
    engine = make_engine(url)
    create_schema(engine)
    save_configuration(engine, config, source=source)
    seed_staff(engine, staff)
    return engine, url


# The staff of config/sample (for the benchmarks that run on it).
SAMPLE_STAFF = REPO / "config" / "sample" / "staff.csv"


def seed_staff(engine: Engine, staff: Path | None = None) -> None:
    """Staff from a CSV export (default bench/bench_config/herd/staff.csv) in the directory of
    `engine`."""
    from store.directory import import_file

    import_file(engine, staff or BENCH_CONFIG / "herd" / "staff.csv", by="bench")


def render_config(template: str, dest: Path, values: dict[str, Any]) -> Path:
    """Copy bench/bench_config/<template>/ to `dest`, substituting `$name` placeholders."""
    dest.mkdir(parents=True, exist_ok=True)
    for src in sorted((BENCH_CONFIG / template).glob("*.yaml")):
        text = Template(src.read_text()).substitute({k: str(v) for k, v in values.items()})
        (dest / src.name).write_text(text)
    return dest


def worker_process(
    *,
    address: str,
    task_queue: str,
    database_url: str,
    log_file: Path,
    argv: list[str] | None = None,
) -> WorkerProcess:
    """A worker process for a benchmark, not yet started: the product's `python worker.py`
    unless `argv` says otherwise, in a session of its own, its log in `log_file`."""
    env = worker_env(address, task_queue, database_url)
    # Cache bytecode (outside the repository). The workflow sandbox re-imports the workflow
    # module for every run; without a .pyc each run compiles it from source again, a cost no
    # deployed worker pays (an image or pip install compiles ahead).
    env["PYTHONPYCACHEPREFIX"] = str(log_file.parent / "pycache")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return WorkerProcess(env, log_file, argv=argv, own_session=True)


def log_counts(worker: WorkerProcess) -> dict[str, int]:
    """Trouble the SDK reported in the worker's log: workflow tasks failed by the deadlock
    detector (TMPRL1101: an activation took over 2 s of wall time) and workflow tasks that
    took over 5 s (TMPRL1104). Empty when the log cannot be read."""
    try:
        lines = worker.log_text().splitlines()
    except OSError:
        return {}
    pauses = [_gc_seconds(x) for x in lines if '"full garbage collection"' in x]
    return {
        # Core logs "Failing workflow task" once per failure, with the Python error.
        "deadlock": sum(1 for x in lines if "Failing workflow task" in x and "TMPRL1101" in x),
        "slow_task": sum(1 for x in lines if "[TMPRL1104]" in x),
        # The worker logs each full garbage collection (starter.gc_watch), in milliseconds.
        "full_gc": len(pauses),
        "longest_full_gc_ms": round(1000 * max(pauses, default=0.0)),
    }


def _gc_seconds(line: str) -> float:
    try:
        return float(json.loads(line).get("seconds", 0.0))
    except (ValueError, AttributeError):
        return 0.0


def worker_trouble(result: BenchResult, worker: WorkerProcess, label: str = "worker") -> None:
    """Add the deadlock-detector failures and slow workflow tasks in `worker`'s log."""
    counts = log_counts(worker)
    if not counts:
        return
    result.add(
        f"{label}: workflow tasks failed as deadlocked (TMPRL1101)",
        counts["deadlock"],
        goal="0",
        met=counts["deadlock"] == 0,
    )
    result.add(
        f"{label}: workflow tasks over 5 s (TMPRL1104)",
        counts["slow_task"],
        goal="0",
        met=counts["slow_task"] == 0,
    )
    result.add(f"{label}: full garbage collections", counts["full_gc"])
    result.add(f"{label}: longest full garbage collection", counts["longest_full_gc_ms"], "ms")


async def case_client(address: str, task_queue: str) -> CaseClient:
    settings = TemporalSettings(address=address, task_queue=task_queue)
    return CaseClient(await connect(settings), task_queue)


async def bounded(
    items: Iterable[T], work: Callable[[T], Awaitable[Any]], concurrency: int
) -> list[BaseException]:
    """Run `work(item)` for every item, at most `concurrency` at once; the errors raised."""
    sem = asyncio.Semaphore(concurrency)
    errors: list[BaseException] = []

    async def one(item: T) -> None:
        async with sem:
            try:
                await work(item)
            except Exception as err:
                errors.append(err)

    await asyncio.gather(*(one(i) for i in items))
    return errors


def today() -> date:
    return datetime.now(UTC).date()


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")


# --------------------------------------------------------------------------- docs

DOCS = REPO / "docs" / "benchmarks.md"
BEGIN = "<!-- BEGIN GENERATED by `python -m bench`: everything up to END is rewritten -->"
END = "<!-- END GENERATED -->"
CRON_INTERVALS_MIN = (1, 5, 15, 60)


def _figure(payload: dict[str, Any], bench: str, name: str) -> Any:
    for r in payload["results"]:
        if r["name"] == bench:
            for f in r["figures"]:
                if f["name"] == name:
                    return f["value"]
    return None


def _shown(value: Any, unit: str) -> str:
    return Figure("", value, unit).shown()


def render_results(payload: dict[str, Any]) -> str:
    """The generated block of docs/benchmarks.md: machine, sizes, figures, notes, and the
    measured alert lateness beside a cron-style scan's."""
    m = payload["machine"]
    lines = [
        BEGIN,
        "",
        f"## Latest run ({m['date']})",
        "",
        f"- Machine: {m['cores']} cores ({m['cpu']}), {m['ram_gb']} GB RAM, {m['os']}",
        f"- Python {m['python']}, temporalio {m['temporalio']}, SQLite {m['sqlite']}",
        f"- temporal CLI {m['temporal_cli']} (dev server, headless)",
        f"- Sizes: {', '.join(f'{k} {v:g}' for k, v in payload['sizes'].items())}"
        + (" (--quick)" if payload.get("quick") else ""),
        f"- Wall time for the whole run: {payload['total_seconds'] / 60:.1f} minutes",
        "",
    ]
    for r in payload["results"]:
        lines += [f"### {r['title']}", ""]
        if r.get("error"):
            lines += [f"**Failed**: `{r['error']}`", ""]
        if r["figures"]:
            lines += ["| figure | value | goal |", "| --- | ---: | --- |"]
            for f in r["figures"]:
                fig = Figure(f["name"], f["value"], f["unit"], f["goal"], f["met"])
                verdict = "" if fig.met is None else (" (met)" if fig.met else " (**missed**)")
                goal = f"{fig.goal}{verdict}" if fig.goal else ""
                lines.append(f"| {fig.name.strip()} | {fig.shown()} | {goal} |")
            lines.append("")
        for note in r.get("notes", []):
            lines.append(f"- {note}")
        if r.get("notes"):
            lines.append("")
        load = r.get("params", {}).get("load_average")
        where = f" Load average (1/5/15 min) before / after: {load}." if load else ""
        lines += [f"Ran for {r['seconds']:.0f} s.{where}", ""]

    measured = {
        label: [_figure(payload, "herd", f"{label}: lateness {q}") for q in ("p50", "p99", "max")]
        for label in ("spread", "burst")
    }
    if any(v is not None for vals in measured.values() for v in vals):
        lines += [
            "### Alert lateness: durable timers against a cron-style scan",
            "",
            "A job that scans the store every N minutes for overdue tasks finds an indicator "
            "between 0 and N minutes after it fell due, plus the scan's own time: about N/2 "
            "on average and up to N plus the scan time, by construction, however idle the "
            "system. (The scan time grows with the number of open tasks.)",
            "",
            "| how | typical (mean or p50) | p99 | worst |",
            "| --- | ---: | ---: | ---: |",
        ]
        for n in CRON_INTERVALS_MIN:
            lines.append(
                f"| cron scan every {n} min | {n * 60 / 2:,.0f} s + scan | "
                f"{n * 60 * 0.99:,.0f} s + scan | {n * 60:,.0f} s + scan |"
            )
        for label, (p50, p99, worst) in measured.items():
            what = (
                "ambers spread over the raise window"
                if label == "spread"
                else "all ambers at one instant"
            )
            lines.append(
                f"| durable timers, measured: {what} | {_shown(p50, 's')} | "
                f"{_shown(p99, 's')} | {_shown(worst, 's')} |"
            )
        lines.append("")
    lines.append(END)
    return "\n".join(lines)


SKELETON = """# Benchmarks

`make bench` (or `python -m bench`) runs every benchmark at its default size and rewrites the
block below with the figures and the machine they were measured on.

{block}
"""


def write_docs(payload: dict[str, Any], path: Path = DOCS) -> Path:
    """Rewrite the generated block of docs/benchmarks.md; the hand-written text around it
    (what each benchmark does, what limits each figure) is kept."""
    block = render_results(payload)
    if path.exists() and BEGIN in (text := path.read_text()) and END in text:
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        path.write_text(head + block + tail)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(SKELETON.format(block=block))
    return path


# --------------------------------------------------------------------------- profiling


class Profiler:
    """py-spy attached to running worker processes for a stretch of a benchmark, writing
    collapsed stacks (`--format raw`, one line per stack with its sample count) that
    bench/profile_report.py summarises. Sampling does not pause the process
    (`--nonblocking`); only Python frames are seen (the SDK's Rust core threads are not).
    With `gil` (the default) only the thread holding the GIL is sampled: a worker process
    is bound by its GIL, so that is where its Python CPU goes; threads waiting for the GIL
    or for SQLite's write lock are left out. Nothing happens when `folder` is None or py-spy
    is not installed."""

    def __init__(self, folder: Path | None, rate: int = 100, *, gil: bool = True) -> None:
        self.folder = folder
        self.rate = rate
        self.gil = gil
        self._procs: list[subprocess.Popen[bytes]] = []
        exe = Path(sys.executable).parent / "py-spy"
        self.exe = str(exe) if exe.exists() else shutil.which("py-spy")

    def start(self, label: str, workers: Sequence[WorkerProcess]) -> None:
        if self.folder is None or self.exe is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        for i, w in enumerate(workers):
            out = self.folder / f"{label}-w{i + 1}.txt"
            self._procs.append(
                subprocess.Popen(
                    [
                        self.exe,
                        "record",
                        "--pid",
                        str(w.pid),
                        "--rate",
                        str(self.rate),
                        "--format",
                        "raw",
                        "--nonblocking",
                        *(["--gil"] if self.gil else []),
                        "--output",
                        str(out),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=(self.folder / f"{label}-w{i + 1}.log").open("wb"),
                )
            )

    def stop(self) -> None:
        """SIGINT: py-spy writes what it sampled and exits."""
        for p in self._procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in self._procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        self._procs = []
