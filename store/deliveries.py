"""Alert delivery state per (alert key, channel): the outbox the delivery loop works from.

Exactly once per channel rests on three things:

- a delivery row is written once per (alert key, channel): insert-if-absent on that unique
  key, so a retried send_alert adds nothing;
- a loop sends only what it has **claimed**: one conditional UPDATE moves due rows to
  `sending` under its name with a lease (`claim_due`); a row another loop holds under a
  live lease is not due, so two loops never send the same row;
- finishing (`mark_sent`, `mark_retry`) is conditional on still holding the claim.

A loop that dies after its server accepted a message but before `mark_sent` leaves the row
`sending`; when the lease runs out another loop sends it again, with the same idempotency
key (the email's Message-ID, the webhook's `Idempotency-Key`), so the receiver can drop the
repeat. That window is one SMTP or HTTP reply long.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, or_, select, update
from sqlalchemy.orm import Session

from models.activities import AlertKey
from models.config import Indicator
from store.repository import CASE_TASK_KEY, AlertRow, _alert_from_row, _insert
from store.schema import AlertDelivery, InboxAlert

PENDING, SENDING, SENT, FAILED = "pending", "sending", "sent", "failed"
_KEY_COLUMNS = ("case_reference", "task_key", "indicator", "occurrence", "recipient")


@dataclass(frozen=True)
class NewDelivery:
    """A delivery to take: `key` on `channel`, first due at `due_at` (a digest's time)."""

    key: AlertKey
    channel: str
    rule: str
    due_at: datetime
    digest: bool = False


@dataclass(frozen=True)
class Delivery:
    """A delivery row, with the inbox row it delivers (None if that row is gone)."""

    id: int
    key: AlertKey
    channel: str
    rule: str
    state: str
    digest: bool
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    sent_at: datetime | None
    alert: AlertRow | None


def idempotency_key(key: AlertKey) -> str:
    """The alert's unique key as one string: the same on every attempt and every channel."""
    return "/".join(
        (key.case_reference, key.task or "-", key.indicator, str(key.occurrence), key.recipient)
    )


def _values(d: NewDelivery, now: datetime) -> dict[str, Any]:
    return {
        "case_reference": d.key.case_reference,
        "task_key": d.key.task if d.key.task is not None else CASE_TASK_KEY,
        "indicator": d.key.indicator,
        "occurrence": d.key.occurrence,
        "recipient": d.key.recipient,
        "channel": d.channel,
        "rule": d.rule,
        "state": PENDING,
        "digest": d.digest,
        "attempts": 0,
        "next_attempt_at": d.due_at,
        "created_at": now,
    }


def add_deliveries(engine: Engine, deliveries: Sequence[NewDelivery], now: datetime) -> int:
    """Write the deliveries not written yet; returns how many were new."""
    if not deliveries:
        return 0
    with Session(engine) as session, session.begin():
        stmt = (
            _insert(session, AlertDelivery)
            .values([_values(d, now) for d in deliveries])
            .on_conflict_do_nothing(index_elements=[*_KEY_COLUMNS, "channel"])
            .returning(AlertDelivery.id)
        )
        return len(session.execute(stmt).all())


def _due(now: datetime) -> Any:
    return or_(
        and_(AlertDelivery.state == PENDING, AlertDelivery.next_attempt_at <= now),
        and_(AlertDelivery.state == SENDING, AlertDelivery.lease_until < now),
    )


def _key_of(row: AlertDelivery) -> AlertKey:
    indicator: Indicator = row.indicator  # type: ignore[assignment]  # written from one
    return AlertKey(
        row.case_reference, row.task_key or None, indicator, row.occurrence, row.recipient
    )


def _load(session: Session, ids: Iterable[int]) -> list[Delivery]:
    ids = list(ids)
    if not ids:
        return []
    joined = select(AlertDelivery, InboxAlert).outerjoin(
        InboxAlert,
        and_(*(getattr(InboxAlert, c) == getattr(AlertDelivery, c) for c in _KEY_COLUMNS)),
    )
    rows = session.execute(joined.where(AlertDelivery.id.in_(ids)).order_by(AlertDelivery.id))
    return [
        Delivery(
            id=d.id,
            key=_key_of(d),
            channel=d.channel,
            rule=d.rule,
            state=d.state,
            digest=d.digest,
            attempts=d.attempts,
            next_attempt_at=d.next_attempt_at,
            last_error=d.last_error,
            sent_at=d.sent_at,
            alert=_alert_from_row(a) if a is not None else None,
        )
        for d, a in rows
    ]


def claim_due(
    engine: Engine,
    owner: str,
    now: datetime,
    lease: timedelta,
    *,
    channels: Sequence[str],
    digest: bool = False,
    recipient: str | None = None,
    limit: int = 50,
) -> list[Delivery]:
    """Claim up to `limit` due deliveries on `channels` for loop `owner` until `now + lease`
    (their attempts counted), and return them. Due: pending and its next attempt reached, or
    sending under a lease that has run out. `digest` picks digest rows or single ones."""
    where = and_(
        _due(now),
        AlertDelivery.channel.in_(list(channels)),
        AlertDelivery.digest.is_(digest),
        *([AlertDelivery.recipient == recipient] if recipient is not None else []),
    )
    with Session(engine) as session, session.begin():
        candidates = list(
            session.scalars(
                select(AlertDelivery.id)
                .where(where)
                .order_by(AlertDelivery.next_attempt_at, AlertDelivery.id)
                .limit(limit)
            )
        )
        if not candidates:
            return []
        # Conditional on still being due: a racing loop that claimed a row first wins it.
        claimed = session.scalars(
            update(AlertDelivery)
            .where(AlertDelivery.id.in_(candidates), where)
            .values(
                state=SENDING,
                lease_owner=owner,
                lease_until=now + lease,
                attempts=AlertDelivery.attempts + 1,
            )
            .returning(AlertDelivery.id)
            .execution_options(synchronize_session=False)
        ).all()
        return _load(session, claimed)


def due_digest_recipients(engine: Engine, now: datetime, channel: str) -> list[str]:
    """Recipients with digest deliveries on `channel` due now."""
    with Session(engine) as session:
        return list(
            session.scalars(
                select(AlertDelivery.recipient)
                .where(_due(now), AlertDelivery.channel == channel, AlertDelivery.digest.is_(True))
                .distinct()
                .order_by(AlertDelivery.recipient)
            )
        )


def renew_lease(engine: Engine, ids: Sequence[int], owner: str, until: datetime) -> bool:
    """Extend `owner`'s claim on deliveries `ids` to `until`, just before sending them. False
    (nothing changed) unless `owner` still holds every one of them: a loop whose lease ran
    out while it worked through a batch, and whose rows another loop took, must not send."""
    with Session(engine) as session, session.begin():
        result = session.execute(
            update(AlertDelivery)
            .where(
                AlertDelivery.id.in_(list(ids)),
                AlertDelivery.lease_owner == owner,
                AlertDelivery.state == SENDING,
            )
            .values(lease_until=until)
            .execution_options(synchronize_session=False)
        )
        if int(result.rowcount) != len(ids):  # type: ignore[attr-defined]
            session.rollback()
            return False
    return True


def mark_sent(engine: Engine, ids: Sequence[int], owner: str, now: datetime) -> int:
    """Record deliveries `owner` claimed as sent; returns how many it still held."""
    with Session(engine) as session, session.begin():
        result = session.execute(
            update(AlertDelivery)
            .where(
                AlertDelivery.id.in_(list(ids)),
                AlertDelivery.lease_owner == owner,
                AlertDelivery.state == SENDING,
            )
            .values(state=SENT, sent_at=now, lease_owner=None, lease_until=None, last_error=None)
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]


def mark_retry(
    engine: Engine,
    ids: Sequence[int],
    owner: str,
    reason: str,
    next_attempt_at: datetime | None,
) -> int:
    """Record a failed attempt with its reason: pending again at `next_attempt_at`, or failed
    for good when that is None. Only rows `owner` still holds."""
    with Session(engine) as session, session.begin():
        result = session.execute(
            update(AlertDelivery)
            .where(
                AlertDelivery.id.in_(list(ids)),
                AlertDelivery.lease_owner == owner,
                AlertDelivery.state == SENDING,
            )
            .values(
                state=PENDING if next_attempt_at is not None else FAILED,
                last_error=reason[:500],
                lease_owner=None,
                lease_until=None,
                **({"next_attempt_at": next_attempt_at} if next_attempt_at is not None else {}),
            )
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]


def deliveries(
    engine: Engine,
    *,
    case_reference: str | None = None,
    recipient: str | None = None,
    state: str | None = None,
    limit: int = 10_000,
) -> list[Delivery]:
    """Delivery rows (for operators and tests), oldest first."""
    query = select(AlertDelivery.id).limit(limit)
    if state is not None:
        query = query.where(AlertDelivery.state == state)
    if case_reference is not None:
        query = query.where(AlertDelivery.case_reference == case_reference)
    if recipient is not None:
        query = query.where(AlertDelivery.recipient == recipient)
    with Session(engine) as session:
        return _load(session, session.scalars(query.order_by(AlertDelivery.id)))
