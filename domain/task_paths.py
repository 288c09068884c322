"""Task paths: predecessor resolution, shared by configuration validation and the planner."""

from __future__ import annotations

from collections.abc import Sequence

from models.config import Key, PathStepConfig


def resolve_predecessors(path: Sequence[PathStepConfig]) -> dict[Key, list[Key]]:
    """Each path task's predecessors, with "all_earlier" spelled out as every earlier path
    task, in path order."""
    result: dict[Key, list[Key]] = {}
    earlier: list[Key] = []
    for step in path:
        preds = step.predecessors
        result[step.task] = list(earlier) if preds == "all_earlier" else list(preds)
        earlier.append(step.task)
    return result
