"""Notifiers: send_alert writes the inbox first, then hands one `Alert` to the other channels;
the inbox's unique key is every channel's idempotency key.

The inbox's own behaviour (recipients, deduplication, retries) is in tests/test_activities.py.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine
from temporalio.testing import ActivityEnvironment

import worker
from activities import CaseworkActivities
from activities.notifiers import InboxNotifier, Notifier
from models.activities import Alert, AlertInput, AlertKey, AlertResult
from models.case import Owner
from models.config import Configuration, EscalationRuleConfig
from store.repository import AlertRow, inbox, save_configuration
from tests.helpers.store import seed_sample_staff

T0 = datetime(2026, 12, 22, 10, 0, tzinfo=UTC)


def alert_input(task: str | None = "assessment-and-php", occurrence: int = 1) -> AlertInput:
    return AlertInput(
        case_reference="HO-1",
        case_topic="homeless-tonight",
        task=task,
        task_name="Assessment",
        indicator="target_exceeded",
        occurrence=occurrence,
        indicator_at=T0,
        task_due_at=T0,
        task_owner=Owner(kind="user", key="adviser3"),
        case_owner=Owner(kind="user", key="adviser1"),
        rule=EscalationRuleConfig(key="leaders", name="Leaders", roles=["team-leaders"]),
    )


class Recording:
    """A channel that records what it was handed, and what the inbox held at that moment."""

    def __init__(self, store: Engine, name: str = "recording", fail: bool = False) -> None:
        self.name = name
        self.engine = store
        self.fail = fail
        self.calls: list[tuple[Alert, list[AlertRow]]] = []

    def notify(self, alert: Alert) -> int:
        rows = [row for r in alert.recipients for row in inbox(self.engine, r)]
        self.calls.append((alert, rows))
        if self.fail:
            raise RuntimeError("channel down")
        return len(alert.recipients)


def run(fn: Any, arg: Any) -> Any:
    return ActivityEnvironment().run(fn, arg)


@pytest.fixture
def stored(engine: Engine, sample_config: Configuration) -> Engine:
    save_configuration(engine, sample_config, "sample")
    seed_sample_staff(engine)
    return engine


def test_alert_value() -> None:
    alert = Alert.of(alert_input(), ["tl2", "tl1", "tl2"])
    assert alert.recipients == ("tl1", "tl2")
    assert alert.rule == "leaders"
    assert alert.keys() == [
        AlertKey("HO-1", "assessment-and-php", "target_exceeded", 1, "tl1"),
        AlertKey("HO-1", "assessment-and-php", "target_exceeded", 1, "tl2"),
    ]
    assert Alert.of(alert_input(task=None), ["tl1"]).keys()[0].task is None


def test_the_default_notifier_is_the_inbox(stored: Engine) -> None:
    acts = CaseworkActivities(stored, version_ttl=0.0)
    result: AlertResult = run(acts.send_alert, alert_input())
    assert result == AlertResult(recipients=["tl1", "tl2"], created=2)
    assert [r.key for r in inbox(stored, "tl1")] == [
        AlertKey("HO-1", "assessment-and-php", "target_exceeded", 1, "tl1")
    ]


def test_other_channels_get_the_alert_after_the_inbox_holds_it(stored: Engine) -> None:
    channel = Recording(stored)
    acts = CaseworkActivities(stored, version_ttl=0.0, notifiers=[channel, InboxNotifier(stored)])
    result: AlertResult = run(acts.send_alert, alert_input(task=None))
    # `created` counts the inbox rows, whatever the other channels report.
    assert result == AlertResult(recipients=["tl1", "tl2"], created=2)
    ((alert, rows),) = channel.calls
    assert list(alert.recipients) == result.recipients
    # The inbox rows existed when the channel was called, and carry the alert's keys.
    assert sorted(r.key for r in rows) == alert.keys()


def test_a_failing_channel_is_retried_and_the_inbox_writes_nothing_twice(
    stored: Engine,
) -> None:
    channel = Recording(stored, fail=True)
    acts = CaseworkActivities(stored, version_ttl=0.0, notifiers=[InboxNotifier(stored), channel])
    with pytest.raises(RuntimeError, match="channel down"):
        run(acts.send_alert, alert_input())
    channel.fail = False
    again: AlertResult = run(acts.send_alert, alert_input())
    assert again == AlertResult(recipients=["tl1", "tl2"], created=0)
    assert len(inbox(stored, "tl1")) == 1
    # The channel is handed the same keys again: not sending twice is its own job.
    first, second = (a for a, _ in channel.calls)
    assert first.keys() == second.keys()


def test_the_notifier_list_needs_one_inbox_and_unique_names(engine: Engine) -> None:
    with pytest.raises(ValueError, match="exactly one InboxNotifier"):
        CaseworkActivities(engine, notifiers=[Recording(engine)])
    with pytest.raises(ValueError, match="exactly one InboxNotifier"):
        CaseworkActivities(engine, notifiers=[])
    with pytest.raises(ValueError, match="unique: inbox"):
        CaseworkActivities(engine, notifiers=[InboxNotifier(engine), InboxNotifier(engine)])
    with pytest.raises(ValueError, match="unique: x"):
        CaseworkActivities(
            engine,
            notifiers=[InboxNotifier(engine), Recording(engine, "x"), Recording(engine, "x")],
        )


def test_the_worker_registers_the_inbox_first(engine: Engine) -> None:
    registered: list[Notifier] = worker.notifiers(engine)
    assert isinstance(registered[0], InboxNotifier)
    assert registered[0].name == "inbox"
    names = [n.name for n in registered]
    assert len(names) == len(set(names))
