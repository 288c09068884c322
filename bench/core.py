"""The pure core's costs, measured by the existing scripts bench/bench_planner.py (one `plan()`
call, which runs inside every workflow task, and the state's unpacking and packing, which a
case does each time it wakes) and bench/bench_config.py (loading and validating
the sample configuration, which `config load` and `config validate` do on every call).

Their functions are called here so the figures land in the table and the JSON; the scripts
themselves still run on their own and print more detail (`python -m bench.bench_planner`,
`python -m bench.bench_config`).
"""

from __future__ import annotations

import json
import time
from datetime import date, timedelta
from functools import partial

from bench import bench_config, bench_planner
from bench.common import REPO, BenchResult, log
from config_files import load_and_validate, load_configuration
from domain import planner
from domain.case_definition import build_case_definition
from domain.config_validation import validate_configuration
from domain.shared_definition import encode_pin
from models.case import pack_state, unpack_state
from models.config import Configuration

# Bytes of JSON each sample topic's case pinned on main at 493672e (2026-12-01, before the
# staff directory left the pin); issue 13's goal is at most half of it, for the bytes a case
# records now (the compressed pin, `domain.shared_definition.encode_pin`).
PINNED_BASELINE = {
    "homeless-tonight": 16955,
    "rough-sleeping": 16951,
    "threatened-within-56-days": 16062,
    "private-tenancy-ending": 16089,
    "rent-or-mortgage-arrears": 16042,
    "asked-to-leave": 16043,
    "domestic-abuse": 16951,
    "relationship-breakdown": 16052,
    "young-person-16-17": 16967,
    "care-leaver": 16016,
    "prison-or-hospital-discharge": 16048,
    "ex-armed-forces": 16041,
    "duty-to-refer": 16050,
    "disrepair-or-overcrowding": 10668,
    "review-of-a-decision": 11330,
    "review-of-plan-steps": 9851,
}
PLAN_GOAL_US = 1000.0  # "far below a millisecond for ordinary cases" (bench_planner.py)
CONFIG_GOAL_MS = 2000.0  # "well under two seconds" (bench_config.py)


def run(*, quick: bool = False) -> BenchResult:
    """Planner cost per call by case size and situation, and configuration load/validate."""
    result = BenchResult("core", "Core: planner per call, configuration load and validate")
    calls = 200 if quick else bench_planner.CALLS
    sizes = bench_planner.SIZES[:1] if quick else bench_planner.SIZES
    runs = 2 if quick else 5
    result.params = {"planner_calls": calls, "config_runs": runs, "sizes": list(sizes)}

    log(f"core: plan() x {calls} per size and situation")
    for n in sizes:
        defn, state = bench_planner.build_case(n)
        steady_now = bench_planner.RAISED + timedelta(hours=2)
        steady = planner.plan(defn, state, steady_now)
        assert steady.next_instant is not None
        due_now = steady.next_instant
        for label, now in (("steady state", steady_now), ("one amber due", due_now)):
            median, p99 = bench_planner.measure(partial(planner.plan, defn, state, now), calls)
            ordinary = n <= 50
            result.add(
                f"plan(), {n} tasks, {label}: median",
                median,
                "µs",
                goal=f"< {PLAN_GOAL_US:.0f} µs" if ordinary else None,
                met=median < PLAN_GOAL_US if ordinary else None,
            )
            result.add(f"plan(), {n} tasks, {label}: p99", p99, "µs")
        # What a waiting case keeps instead of its live state, and what each turn of a case
        # pays to unpack it when it wakes and pack it again before it waits.
        packed = pack_state(state)
        turn, _ = bench_planner.measure(partial(_wake_and_wait, packed), calls)
        result.add(f"state, {n} tasks: unpack and pack again (median)", turn, "µs")
        result.add(
            f"state, {n} tasks: packed / JSON",
            f"{len(packed):,} / {len(state.model_dump_json()):,} bytes",
        )

    folder = REPO / "config" / "sample"
    today = bench_config.TODAY
    log(f"core: configuration load and validate x {runs}")
    t0 = time.perf_counter()
    config = load_and_validate(folder, today)
    result.add(
        "config: first load and validate in process", (time.perf_counter() - t0) * 1000, "ms"
    )
    stages = (
        ("load (YAML and schema)", lambda: load_configuration(folder)),
        ("validate", lambda: validate_configuration(config, today)),
        ("load and validate", lambda: load_and_validate(folder, today)),
    )
    for label, call in stages:
        cold = bench_config.median_ms(call, runs, cold=True)
        warm = bench_config.median_ms(call, runs, cold=False)
        is_total = label == "load and validate"
        result.add(
            f"config: {label}, cold (median)",
            cold,
            "ms",
            goal=f"< {CONFIG_GOAL_MS:.0f} ms" if is_total else None,
            met=cold < CONFIG_GOAL_MS if is_total else None,
        )
        result.add(f"config: {label}, warm (median)", warm, "ms")
    pinned_sizes(result, config, today)
    return result


def _wake_and_wait(packed: bytes) -> bytes:
    return pack_state(unpack_state(packed))


def pinned_sizes(result: BenchResult, config: Configuration, on: date) -> None:
    """Bytes a case of each sample topic records for its pinned definition (in force on `on`):
    the payload data in its history (`encode_pin`, compressed), against the goal of half the
    JSON pinned before issue 13; and the definition's JSON, as a second figure. The largest
    parts of the JSON in the params."""
    parts: dict[str, dict[str, int]] = {}
    for topic in config.topics:
        try:
            definition = build_case_definition(config, 1, topic.key, on)
        except Exception as err:  # a topic not in force, or the builder's signature changed
            result.notes.append(f"pinned definition of {topic.key}: {type(err).__name__}: {err}")
            continue
        recorded = len(encode_pin(definition))
        base = PINNED_BASELINE.get(topic.key)
        result.add(
            f"pinned definition, {topic.key}",
            recorded,
            "bytes",
            goal=f"<= {base // 2:,}" if base else None,
            met=recorded <= base // 2 if base else None,
        )
        result.add(
            f"pinned definition JSON, {topic.key}", len(definition.model_dump_json()), "bytes"
        )
        dumped = definition.model_dump(mode="json")
        by_part = {k: len(json.dumps(v, separators=(",", ":"))) for k, v in dumped.items()}
        parts[topic.key] = dict(sorted(by_part.items(), key=lambda kv: -kv[1])[:6])
    result.params["pinned_largest_parts"] = parts
