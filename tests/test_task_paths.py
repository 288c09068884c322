"""The path rules of `domain.task_paths`: predecessors, reachable tasks, cycles and order."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from config_files import load_configuration
from domain import planner
from domain.case_definition import DefinitionError, build_case_definition
from domain.task_paths import (
    added_task,
    find_cycles,
    reachable_tasks,
    resolve_predecessors,
    topological_order,
)
from models.case import Owner
from models.config import PathStepConfig, TaskDefinitionConfig, WorkflowTypeConfig
from models.definition import CaseDefinition
from tests.helpers.factories import H24, definition, follow_on, p, sla, step, task

RAISED = datetime(2026, 4, 7, 9, tzinfo=UTC)
REPO = Path(__file__).resolve().parent.parent
CONFIGS = [REPO / "config" / "sample", REPO / "config" / "demo"]


# ------------------------------------------------------------------ resolve_predecessors


def _waits_for(defn: CaseDefinition) -> dict[str, list[str]]:
    """What each path task of a case just raised waits for, as the planner built it."""
    owner = Owner(kind="user", key="alice")
    state = planner.new_case_state(
        defn, reference="T-1", created_by="alice", created_at=RAISED, case_owner=owner
    )
    return {t.key: list(t.predecessors) for t in state.tasks if t.origin == "path"}


@pytest.mark.parametrize("folder", CONFIGS, ids=lambda f: f.name)
def test_planned_predecessors_in_every_configuration(
    folder: Path,
) -> None:
    # The planner builds a case's tasks with this rule: what each configured task waits for.
    config = load_configuration(folder)
    assert config.workflow_types
    for wt in config.workflow_types:
        defn = definition(config.task_definitions, wt.path)
        assert resolve_predecessors(wt.path) == _waits_for(defn), wt.key
        assert list(resolve_predecessors(wt.path)) == [s.task for s in wt.path]


def test_all_earlier_is_every_earlier_path_task() -> None:
    config = load_configuration(CONFIGS[0])
    wt = next(w for w in config.workflow_types if (w.key, w.version) == ("prevention-duty", 1))
    preds = resolve_predecessors(wt.path)
    assert preds["prevention-outcome"] == [s.task for s in wt.path[:-1]]
    assert preds["call-back"] == []
    assert preds["housing-options-interview"] == ["call-back"]


EDGE_PATHS: list[list[PathStepConfig]] = [
    [],
    [step("a"), step("b", ["a", "a"]), step("c", "all_earlier")],  # a predecessor named twice
    [step("a", ["ghost"]), step("b", "all_earlier")],  # not a task of the path
    [step("a", ["a"])],  # its own predecessor
    [step("a", ["b"]), step("b", ["a"])],  # a cycle
]


@pytest.mark.parametrize("path", EDGE_PATHS)
def test_planned_predecessors_on_odd_paths(
    path: list[PathStepConfig],
) -> None:
    defn = definition([task(s.task) for s in path], path)
    assert resolve_predecessors(path) == _waits_for(defn)


def test_a_task_twice_in_the_path_keeps_its_first_predecessors() -> None:
    # Validation refuses such a path (task-twice-in-path) and names the cycles of its first
    # steps alongside; no pinned definition holds one, so the planner never sees it.
    path = [step("a"), step("b", ["a"]), step("a", ["b"]), step("c", "all_earlier")]
    assert resolve_predecessors(path) == {"a": [], "b": ["a"], "c": ["a", "b", "a"]}


KEYS = ["a", "b", "c", "d", "e"]


@st.composite
def paths(draw: st.DrawFn) -> list[PathStepConfig]:
    tasks = draw(st.lists(st.sampled_from(KEYS), max_size=len(KEYS), unique=True))
    result = []
    for key in tasks:
        preds: list[str] | Literal["all_earlier"] = draw(
            st.one_of(st.just("all_earlier"), st.lists(st.sampled_from([*KEYS, "x"]), max_size=4))
        )
        result.append(step(key, preds))
    return result


@given(paths())
def test_planned_predecessors_on_any_path(
    path: list[PathStepConfig],
) -> None:
    defn = definition([task(k) for k in KEYS], path)
    assert resolve_predecessors(path) == _waits_for(defn)


# ------------------------------------------------------------------ reachable_tasks


def _workflow_type(
    path: list[PathStepConfig], optional: list[str], case_add: str | None = None
) -> WorkflowTypeConfig:
    case = sla(p(56, "days"), calendar=H24, follow=follow_on(p(1, "days"), add_task=case_add))
    return definition([], path, optional=optional, case_sla=case).workflow_type


def _adds(key: str, added: str) -> TaskDefinitionConfig:
    return task(key, sla(p(1, "days"), follow=follow_on(p(1, "days"), add_task=added)))


def test_reachable_tasks_in_discovery_order() -> None:
    tasks = {
        "a": _adds("a", "review"),
        "b": task("b"),
        "opt": _adds("opt", "second-review"),
        "review": _adds("review", "audit"),
        "case-add": task("case-add"),
        "second-review": task("second-review"),
        "audit": _adds("audit", "a"),  # back onto the path: listed once
    }
    wt = _workflow_type([step("a"), step("b", ["a"])], ["opt"], case_add="case-add")
    assert reachable_tasks(wt, tasks) == [
        "a",
        "b",
        "opt",
        "case-add",
        "review",
        "second-review",
        "audit",
    ]


def test_reachable_tasks_lists_unknown_keys_without_following_them() -> None:
    tasks = {"a": _adds("a", "missing"), "b": task("b")}
    wt = _workflow_type([step("a"), step("ghost")], ["b", "b"], case_add="gone")
    assert reachable_tasks(wt, tasks) == ["a", "ghost", "b", "gone", "missing"]


def test_added_task() -> None:
    assert added_task(None) is None
    assert added_task(sla(p(1, "days"))) is None
    assert added_task(sla(p(1, "days"), follow=follow_on(p(1, "days")))) is None
    assert added_task(sla(p(1, "days"), follow=follow_on(p(1, "days"), add_task="x"))) == "x"


@pytest.mark.parametrize("folder", CONFIGS, ids=lambda f: f.name)
def test_a_pinned_definition_holds_the_reachable_tasks_in_order(folder: Path) -> None:
    config = load_configuration(folder)
    by_key = {t.key: t for t in config.task_definitions}
    on = date(2026, 11, 25)
    for topic in config.topics:
        if not topic.in_force_on(on):
            continue
        defn = build_case_definition(config, 1, topic.key, on)
        assert list(defn.task_definitions) == reachable_tasks(defn.workflow_type, by_key)


def test_a_definition_naming_an_unknown_task_is_refused() -> None:
    config = load_configuration(CONFIGS[0])
    broken = config.model_copy(
        update={"task_definitions": [t for t in config.task_definitions if t.key != "call-back"]}
    )
    with pytest.raises(DefinitionError, match="uses task 'call-back', which is not a task"):
        build_case_definition(broken, 1, "private-tenancy-ending", date(2026, 11, 25))


# ------------------------------------------------------------------ cycles and order


def test_cycles_are_found_once_each() -> None:
    assert find_cycles(["a"], {"a": ["a", "a"]}) == [["a", "a"]]
    assert find_cycles(["a", "b"], {"a": ["b", "b", "ghost"], "b": ["a"]}) == [["a", "b", "a"]]
    assert find_cycles([], {}) == []


def test_topological_order_keeps_path_order_for_ties() -> None:
    preds = {"a": [], "b": ["c"], "c": [], "d": ["a", "a", "b"]}
    assert topological_order(["a", "b", "c", "d"], preds) == ["a", "c", "b", "d"]
    assert topological_order(["a", "b"], {"a": ["ghost"], "b": []}) == ["a", "b"]


def test_topological_order_refuses_a_cycle() -> None:
    with pytest.raises(ValueError, match="cycle"):
        topological_order(["a", "b"], {"a": ["b"], "b": ["a"]})
