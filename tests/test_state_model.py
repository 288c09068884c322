"""The case's state models are compact in memory (one shared set of fields set per model,
tuples for collections that are mostly empty, one object per owner) and unchanged on the
wire: a carried state or a query answer reads and writes the same JSON as before."""

from __future__ import annotations

import copy
import gc
from datetime import UTC, datetime

from domain import planner
from domain.planner.construction import shared_owner
from models.case import CaseState, CaseTask, Hold, Owner
from tests.helpers.factories import OFFICERS, definition, p, sla, step, task

AT = datetime(2026, 4, 7, 9, tzinfo=UTC)


def _state() -> CaseState:
    defn = definition(
        [task("a", sla(p(2, "days"))), task("b", sla(p(1, "days")))],
        [step("a"), step("b", ["a"])],
    )
    return planner.new_case_state(
        defn,
        reference="HOC-1",
        created_by="alice",
        created_at=AT,
        case_owner=Owner(kind="user", key="alice"),
        task_owners={"a": OFFICERS, "b": Owner(kind="role", key="officers")},
    )


def test_every_instance_of_a_model_shares_one_set_of_fields_set() -> None:
    state = _state()
    first, second = state.tasks
    assert first.model_fields_set is second.model_fields_set
    assert first.model_fields_set == set(CaseTask.model_fields)
    first.status = "open"  # assigning a field neither fails nor changes the shared set
    assert second.model_fields_set == set(CaseTask.model_fields)
    assert copy.deepcopy(first).model_fields_set is first.model_fields_set
    assert first.model_copy(update={"round": 2}).model_fields_set is first.model_fields_set
    # exclude_unset (which the case never uses) keeps every field: nothing is left out.
    assert first.model_dump(exclude_unset=True) == first.model_dump()


def test_empty_collections_are_no_objects_and_a_change_replaces_the_tuple() -> None:
    state = _state()
    t = state.tasks[0]
    assert (t.holds, t.revisions, t.fired) == ((), (), ())
    assert not gc.is_tracked(t.holds)  # the empty tuple: no object of the task's own
    hold = Hold(begun_at=AT, planned_release=AT, reason="r", by="alice")
    planner.working.begin_hold(t, hold)
    assert t.holds == (hold,) and state.tasks[1].holds == ()


def test_the_json_is_as_before_and_a_state_written_with_lists_reads() -> None:
    state = _state()
    data = state.model_dump(mode="json")
    # Collections are JSON arrays, as a state carried by an earlier release has them.
    assert data["tasks"][1]["predecessors"] == ["a"] and data["tasks"][0]["holds"] == []
    again = CaseState.model_validate_json(state.model_dump_json())
    assert again == state
    assert again.tasks[1].predecessors == ("a",)
    assert again.model_dump_json() == state.model_dump_json()


def test_equal_owners_are_one_object() -> None:
    state = _state()
    a, b = state.tasks
    assert a.owner == b.owner and a.owner is b.owner  # two equal owners given, one kept
    assert a.owner_history[0].owner is a.owner
    assert shared_owner(Owner(kind="role", key="officers")) is a.owner


def test_the_tasks_of_a_new_case_share_one_allocation_record_per_owner() -> None:
    state = _state()
    a, b = state.tasks
    assert a.owner_history == b.owner_history
    assert a.owner_history[0] is b.owner_history[0]
    assert a.owner_history[0].model_config.get("frozen")
