"""Notifiers: the channels an alert goes out on. The inbox is the first and is always there.

The inbox is both the record of every alert and the outbox the other channels deliver from:
send_alert writes the inbox first, then hands the same `Alert` to each other notifier. An
inbox row's unique key (case, task, indicator, occurrence, recipient), `AlertKey`, is the
idempotency key of that alert's delivery on every channel.

A new channel (email, webhook) is one module defining a class that satisfies `Notifier`, plus
one line in `worker.notifiers`. Its rules:
- `notify` runs again on every retry of send_alert (a retry follows any failure, including
  another channel's), so it must do nothing twice for a key it has already handled: record
  its delivery state per (`AlertKey`, its `name`), and report only what it newly recorded.
- It runs inside the activity, before the workflow moves on: record the delivery as pending
  and deliver from that record elsewhere, rather than wait on a slow remote server here.
- It must not log personal data (names, addresses): keys and counts only.
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy import Engine

from models.activities import Alert, CaseRecord
from store import repository


class Notifier(Protocol):
    """One channel alerts go out on."""

    # Stable and unique among the worker's notifiers: it names the channel in logs and in
    # any per-channel delivery state, so renaming it re-delivers.
    name: str

    def notify(self, alert: Alert) -> int:
        """Take `alert` for delivery to each of `alert.recipients` on this channel, at most
        once per `alert.keys()` entry. Returns how many deliveries were newly taken (0 on a
        retry that finds them all)."""
        ...


class InboxNotifier:
    """The inbox: one row per recipient in the store's `inbox` table, insert-if-absent on
    its unique key, which is the `AlertKey` every channel's delivery is idempotent on."""

    name = "inbox"

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def notify(self, alert: Alert) -> int:
        """Write the inbox rows not written yet; returns how many were new."""
        return repository.insert_alerts(self._engine, alert)

    def notify_and_record(
        self, alert: Alert, record: CaseRecord
    ) -> tuple[int, repository.RecordOutcome]:
        """`notify`, and the case's record written in the same transaction."""
        return repository.insert_alerts_and_record(self._engine, alert, record)
