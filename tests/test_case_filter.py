"""The typed case filter (`CaseFilter`): what it renders, what it refuses, and how
`CaseClient` decides whether new cases carry the search attributes
(TEMPORAL_SEARCH_ATTRIBUTES). Unit tests: fakes stand in for the Temporal client."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any, cast

import pytest
from pydantic import ValidationError
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from starter.client import CaseClient, CaseFilter, visibility_literal
from starter.connection import TemporalSettings, search_attributes_mode


def test_an_empty_filter_filters_nothing() -> None:
    assert CaseFilter().query() is None


def test_every_field_renders_quoted_and_anded() -> None:
    f = CaseFilter(
        reference="HO-2026-000123",
        sla_status="breached",
        owner="adviser1",
        topic="private-tenancy-ending",
        workflow_type="prevention-duty",
        status="open",
    )
    assert f.query() == (
        "CaseReference = 'HO-2026-000123' AND SlaStatus = 'breached' AND "
        "OpenTaskOwners = 'adviser1' AND CaseTopic = 'private-tenancy-ending' AND "
        "CaseWorkflowType = 'prevention-duty' AND CaseStatus = 'open' AND "
        "ExecutionStatus = 'Running'"
    )
    # A case that ended without recording it (terminated, ...) keeps CaseStatus "open".
    assert CaseFilter(status="closed").query() == (
        "(CaseStatus = 'closed' OR "
        "ExecutionStatus IN ('Terminated', 'TimedOut', 'Failed', 'Canceled'))"
    )
    assert CaseFilter(owner="team-leaders").query() == "OpenTaskOwners = 'team-leaders'"


def test_literals_escape_quotes_and_backslashes() -> None:
    assert visibility_literal("adviser1") == "'adviser1'"
    assert visibility_literal("O'Brien") == "'O\\'Brien'"
    assert visibility_literal("a\\b") == "'a\\\\b'"
    # An attempt to close the literal stays inside it.
    assert visibility_literal("x' OR 'a' = 'a") == "'x\\' OR \\'a\\' = \\'a'"


@pytest.mark.parametrize(
    "field",
    [
        {"owner": "x' OR WorkflowType != '"},
        {"owner": "adviser1 OR 1=1"},
        {"owner": ""},
        {"topic": 'a"b'},
        {"topic": "a\\b"},
        {"workflow_type": "-starts-with-a-dash"},
        {"reference": "HO 1"},
        {"sla_status": "red"},
        {"status": "completed"},  # CaseStatus is open or closed (a completed case is closed)
        {"SlaStatus": "amber"},  # no other fields
    ],
)
def test_values_that_cannot_be_keys_are_refused(field: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        CaseFilter.model_validate(field)


class FakeClient:
    """Just enough of temporalio's Client for CaseClient.list_cases and
    has_search_attributes."""

    namespace = "default"

    def __init__(self, operator_answer: Exception | None = None) -> None:
        self.queries: list[str] = []
        self.asked = 0
        self.operator_answer = operator_answer
        self.operator_service = self

    def list_workflows(self, query: str) -> AsyncIterator[Any]:
        self.queries.append(query)

        async def none() -> AsyncIterator[Any]:
            return
            yield

        return none()

    async def list_search_attributes(self, request: Any) -> Any:
        self.asked += 1
        if self.operator_answer is not None:
            raise self.operator_answer

        return SimpleNamespace(custom_attributes={"CaseReference": 2})  # one of eight: unusable


async def test_list_cases_sends_the_rendered_filter() -> None:
    fake = FakeClient()
    cases = CaseClient(cast(Client, fake), "q")
    assert [r async for r in cases.list_cases()] == []
    assert [r async for r in cases.list_cases(CaseFilter(sla_status="amber", owner="tl1"))] == []
    assert [r async for r in cases.list_cases(raw_query="OpenTasks > 1")] == []
    assert fake.queries == [
        "WorkflowType = 'HousingOptionsCase'",
        "WorkflowType = 'HousingOptionsCase' AND (SlaStatus = 'amber' AND OpenTaskOwners = 'tl1')",
        "WorkflowType = 'HousingOptionsCase' AND (OpenTasks > 1)",
    ]


def _rpc(status: RPCStatusCode) -> RPCError:
    return RPCError(f"{status.name} from the fake", status, b"")


@pytest.mark.parametrize("status", [RPCStatusCode.PERMISSION_DENIED, RPCStatusCode.UNIMPLEMENTED])
async def test_auto_without_permission_means_no_attributes_with_one_warning(
    status: RPCStatusCode, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeClient(_rpc(status))
    cases = CaseClient(cast(Client, fake), "q", "auto")
    with caplog.at_level(logging.WARNING, logger="starter.client"):
        assert await cases.has_search_attributes() is False
        assert await cases.has_search_attributes() is False
    assert fake.asked == 1
    warnings = [r for r in caplog.records if r.name == "starter.client"]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert "TEMPORAL_SEARCH_ATTRIBUTES" in warnings[0].getMessage()


@pytest.mark.parametrize(
    "status", [RPCStatusCode.UNAVAILABLE, RPCStatusCode.INTERNAL, RPCStatusCode.DEADLINE_EXCEEDED]
)
async def test_auto_raises_any_other_error(status: RPCStatusCode) -> None:
    cases = CaseClient(cast(Client, FakeClient(_rpc(status))), "q")
    with pytest.raises(RPCError) as raised:
        await cases.has_search_attributes()
    assert raised.value.status == status


async def test_auto_with_attributes_missing_means_no(caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeClient()
    with caplog.at_level(logging.WARNING, logger="starter.client"):
        assert await CaseClient(cast(Client, fake)).has_search_attributes() is False
    assert "SlaStatus" in caplog.text


@pytest.mark.parametrize(("mode", "expected"), [("on", True), ("off", False)])
async def test_on_and_off_never_ask(mode: Any, expected: bool) -> None:
    fake = FakeClient(AssertionError("asked"))
    cases = CaseClient(cast(Client, fake), "q", mode)
    assert await cases.has_search_attributes() is expected
    assert fake.asked == 0


def test_the_setting_is_read_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    assert search_attributes_mode(None) == "auto"
    assert search_attributes_mode("") == "auto"
    assert search_attributes_mode(" ON ") == "on"
    with pytest.raises(ValueError, match="TEMPORAL_SEARCH_ATTRIBUTES must be one of"):
        search_attributes_mode("yes")
    monkeypatch.setenv("TEMPORAL_SEARCH_ATTRIBUTES", "off")
    assert TemporalSettings.from_env().search_attributes == "off"
    monkeypatch.delenv("TEMPORAL_SEARCH_ATTRIBUTES")
    assert TemporalSettings.from_env().search_attributes == "auto"
