"""The rules of a workflow type's task path, written once for the planner, the validator and
the case definition: what each task waits for, which task definitions a case can hold, and
the order the predecessors impose.

Pure: it reads configuration models only, so workflow code may import it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence

from models.config import Key, PathStepConfig, SlaConfig, TaskDefinitionConfig, WorkflowTypeConfig

__all__ = [
    "added_task",
    "find_cycles",
    "reachable_tasks",
    "resolve_predecessors",
    "topological_order",
]


def resolve_predecessors(path: Sequence[PathStepConfig]) -> dict[Key, list[Key]]:
    """Each path task's predecessors, in path order, with "all_earlier" spelled out as every
    task before it in the path.

    The predecessors are taken as written: a key that is not a task of the path, or one named
    twice, is kept (validation reports the first; `find_cycles` and `topological_order`
    ignore both). A task the path holds twice, which validation refuses, keeps the
    predecessors of its first step, so that the cycles reported alongside that error are
    those of the path as first written.
    """
    result: dict[Key, list[Key]] = {}
    earlier: list[Key] = []
    for step in path:
        preds = step.predecessors
        result.setdefault(step.task, list(earlier) if preds == "all_earlier" else list(preds))
        earlier.append(step.task)
    return result


def added_task(sla: SlaConfig | None) -> Key | None:
    """The task a follow-on of `sla` adds to the case, if any."""
    if sla is None or sla.follow_on is None:
        return None
    return sla.follow_on.add_task


def reachable_tasks(
    workflow_type: WorkflowTypeConfig, task_definitions: Mapping[Key, TaskDefinitionConfig]
) -> list[Key]:
    """Every task key a case of `workflow_type` can hold, each once: the path tasks, then the
    optional tasks, then the tasks follow-ons add (the case SLA's first, then those of the
    tasks already found, transitively), in the order they are discovered.

    A key missing from `task_definitions` is listed where it is found but adds nothing
    further (its SLA is unknown); callers look the keys up and report the missing ones.
    """
    wanted: deque[Key] = deque(s.task for s in workflow_type.path)
    wanted.extend(workflow_type.optional_tasks)
    case_added = added_task(workflow_type.case_sla)
    if case_added is not None:
        wanted.append(case_added)
    found: dict[Key, None] = {}  # an ordered set
    while wanted:
        key = wanted.popleft()
        if key in found:
            continue
        found[key] = None
        task = task_definitions.get(key)
        more = added_task(task.sla) if task is not None else None
        if more is not None:
            wanted.append(more)
    return list(found)


def find_cycles(order: Sequence[Key], preds: Mapping[Key, Sequence[Key]]) -> list[list[Key]]:
    """Cycles among the predecessors, each as the tasks in the order they would run, the first
    repeated at the end (["a", "b", "a"]: a before b before a). At least one cycle is found
    for each set of tasks that loop; each is reported once. Predecessors that are not keys
    of `preds` are ignored."""
    state: dict[Key, int] = {}  # 1 = on the stack, 2 = done
    stack: list[Key] = []
    found: list[list[Key]] = []
    seen: set[frozenset[Key]] = set()
    rank = {k: i for i, k in enumerate(order)}

    def visit(node: Key) -> None:
        state[node] = 1
        stack.append(node)
        for p in preds.get(node, ()):
            if p not in preds:
                continue
            if state.get(p, 0) == 0:
                visit(p)
            elif state[p] == 1:
                # stack[i:] waits for one another in turn and the last waits for p: reversed,
                # it is the order in which they would have to run.
                loop = list(reversed(stack[stack.index(p) :]))
                if frozenset(loop) not in seen:
                    seen.add(frozenset(loop))
                    first = min(range(len(loop)), key=lambda i: rank.get(loop[i], 0))
                    loop = loop[first:] + loop[:first]
                    found.append([*loop, loop[0]])
        stack.pop()
        state[node] = 2

    for node in order:
        if state.get(node, 0) == 0:
            visit(node)
    return found


def topological_order(order: Sequence[Key], preds: Mapping[Key, Sequence[Key]]) -> list[Key]:
    """The tasks of `order` with every task after its predecessors, ties in `order`'s order.
    Predecessors that are not in `order` are ignored. Raises ValueError when the
    predecessors form a cycle (check with `find_cycles` first to name it)."""
    remaining = list(dict.fromkeys(order))
    known = set(remaining)
    done: list[Key] = []
    placed: set[Key] = set()
    while remaining:
        for key in remaining:
            if all(p in placed or p not in known for p in preds.get(key, ())):
                done.append(key)
                placed.add(key)
                remaining.remove(key)
                break
        else:
            raise ValueError("the predecessors form a cycle")
    return done
