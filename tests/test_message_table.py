"""The message table drives the workflow's handlers: every row is a signal and a validated
update of its name, described for the Web UI, decoding its own request model."""

from __future__ import annotations

from temporalio.common import RawValue
from temporalio.workflow import _Definition

from domain.messages import MESSAGES
from workflows.case_workflow import HousingOptionsCase


def test_every_message_is_a_signal_and_a_validated_update_of_its_name() -> None:
    defn = _Definition.must_from_class(HousingOptionsCase)
    names = [m.name for m in MESSAGES]
    assert len(set(names)) == len(names)
    assert set(defn.signals) == set(names)
    assert set(defn.updates) == set(names)
    for msg in MESSAGES:
        signal, update = defn.signals[msg.name], defn.updates[msg.name]
        assert signal.description == update.description == msg.description
        assert update.validator is not None
        # The handlers take the raw payload and decode it into the row's request model
        # themselves, so a payload that does not fit is refused in the audit trail.
        assert signal.arg_types == [RawValue]
        assert update.arg_types == [RawValue]


def test_every_request_carries_an_actor_and_a_request_id() -> None:
    for msg in MESSAGES:
        assert {"request_id", "actor"} <= set(msg.request.model_fields), msg.name
    commands = [m.command for m in MESSAGES]
    assert len(set(commands)) == len(commands)
