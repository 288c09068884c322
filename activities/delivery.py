"""The delivery loop: sends the pending deliveries of the email and webhook channels.

It runs in the worker process beside the Temporal worker (an asyncio task, `run`), never in
workflow code: each round (`run_once`, on a thread) claims due deliveries under a lease
(`store.deliveries.claim_due`), renders each with its template (`domain.alert_templates`,
chosen by indicator and escalation rule from the configuration in force), sends it, and
records the outcome: sent, or a reason and the next attempt (backoff doubling up to a cap),
or failed for good after the last attempt or on a permanent refusal.

Any number of loops may run (one per worker process): a claimed row is theirs alone until
its lease runs out. Ambers held for a daily digest go out as one email per recipient when
their time comes.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import Engine

from activities.channels import DeliveryFailed, DeliverySettings, Outgoing, Sender, takes
from activities.recipients import Contact, RecipientDirectory, directory_for
from domain import alert_templates
from models.config import Configuration
from store import repository
from store.deliveries import (
    Delivery,
    claim_due,
    due_digest_recipients,
    idempotency_key,
    mark_retry,
    mark_sent,
    renew_lease,
)

log = structlog.get_logger("delivery")


class DeliveryLoop:
    def __init__(
        self,
        engine: Engine,
        senders: Mapping[str, Sender],
        settings: DeliverySettings | None = None,
        *,
        directory: Callable[[], RecipientDirectory] | None = None,
        owner: str | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._engine = engine
        self._senders = dict(senders)
        self.settings = settings or DeliverySettings()
        self._directory = directory or directory_for(engine)
        # Names this loop's claims; unique per loop, so a restarted worker is another owner.
        self.owner = owner or f"loop-{uuid.uuid4().hex[:16]}"
        self._now = now
        self._config: tuple[int, Configuration] | None = None

    # ------------------------------------------------------------------ one round

    def run_once(self) -> int:
        """Claim and send what is due now; returns how many deliveries were sent."""
        if not self._senders:
            return 0
        sent = 0
        now = self._now()
        for d in claim_due(
            self._engine,
            self.owner,
            now,
            self.settings.lease,
            channels=list(self._senders),
        ):
            sent += self._deliver([d])
        if "email" in self._senders:
            for recipient in due_digest_recipients(self._engine, now, "email"):
                batch = claim_due(
                    self._engine,
                    self.owner,
                    now,
                    self.settings.lease,
                    channels=["email"],
                    digest=True,
                    recipient=recipient,
                    limit=200,
                )
                if batch:
                    sent += self._deliver(batch)
        return sent

    async def run(self, stop: asyncio.Event) -> None:
        """Rounds every `settings.poll_seconds` until `stop` is set. A round that fails (the
        store unavailable) is logged and the next one tries again."""
        log.info("delivery loop started", channels=sorted(self._senders), owner=self.owner)
        while not stop.is_set():
            try:
                await asyncio.to_thread(self.run_once)
            except Exception as e:
                log.warning("delivery round failed", error=type(e).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.poll_seconds)
        log.info("delivery loop stopped", owner=self.owner)

    # ------------------------------------------------------------------ sending

    def _configuration(self) -> Configuration:
        version = repository.latest_configuration_version(self._engine)
        if version is None:
            raise repository.NoConfigurationError(repository.NO_CONFIGURATION)
        if self._config is None or self._config[0] != version:
            self._config = (version, repository.configuration(self._engine, version))
        return self._config[1]

    def _deliver(self, batch: Sequence[Delivery]) -> int:
        """Send one claimed delivery, or a digest of several to one recipient."""
        first = batch[0]
        ids = [d.id for d in batch]
        sender = self._senders[first.channel]
        # Still ours? A round that took longer than the lease may have lost these rows to
        # another loop, which sends them itself.
        if not renew_lease(self._engine, ids, self.owner, self._now() + self.settings.lease):
            log.info("delivery taken over by another loop", key=idempotency_key(first.key))
            return 0
        try:
            directory = self._directory()
            contact = directory.contact(first.key.recipient)
            if not takes(contact, sender.channel):
                raise DeliveryFailed("recipient no longer takes this channel", permanent=True)
            assert contact is not None
            message = self._message(batch, contact, directory)
            sender.send(message)
        except DeliveryFailed as e:
            self._failed(batch, e.reason, permanent=e.permanent)
            return 0
        except Exception as e:
            self._failed(batch, f"error ({type(e).__name__})", permanent=False)
            return 0
        mark_sent(self._engine, ids, self.owner, self._now())
        log.info(
            "alert delivered",
            channel=first.channel,
            key=idempotency_key(first.key),
            items=len(batch),
            attempt=first.attempts,
        )
        return len(batch)

    def _failed(self, batch: Sequence[Delivery], reason: str, *, permanent: bool) -> None:
        first = batch[0]
        retry_at = None if permanent else self.settings.retry_at(first.attempts, self._now())
        mark_retry(self._engine, [d.id for d in batch], self.owner, reason, retry_at)
        log.warning(
            "alert delivery failed" if retry_at is None else "alert delivery will be retried",
            channel=first.channel,
            key=idempotency_key(first.key),
            attempt=first.attempts,
            reason=reason,
            **({"retry_at": retry_at.isoformat()} if retry_at else {}),
        )

    def _message(
        self, batch: Sequence[Delivery], contact: Contact, directory: RecipientDirectory
    ) -> Outgoing:
        config = self._configuration()
        rendered = []
        for d in batch:
            facts = self._facts(d, contact, directory, config)
            subject, body = alert_templates.choose(config.alert_templates, d.key.indicator, d.rule)
            rendered.append((facts, alert_templates.render(subject, body, facts)))
        if len(batch) == 1 and not batch[0].digest:
            facts, text = rendered[0]
            return Outgoing(idempotency_key(batch[0].key), contact, text.subject, text.body, facts)
        # A digest: one message listing each alert; its key names every alert in it.
        keys = sorted(idempotency_key(d.key) for d in batch)
        digest_key = f"digest/{contact.key}/" + alert_templates.digest_of(keys)
        subject = f"{len(batch)} amber warning(s) for {contact.display_name}"
        body = "\n\n".join(text.body.strip() for _, text in rendered) + "\n"
        facts = {"recipient": contact.key, "alerts": [f for f, _ in rendered]}
        return Outgoing(digest_key, contact, subject, body, facts)

    def _facts(
        self,
        d: Delivery,
        contact: Contact,
        directory: RecipientDirectory,
        config: Configuration,
    ) -> dict[str, Any]:
        alert = d.alert
        if alert is None:
            raise DeliveryFailed("the alert's inbox row is missing", permanent=True)
        owner_name = ""
        if alert.task_owner:
            kind, _, key = alert.task_owner.partition(":")
            if kind == "user":
                found = directory.contact(key)
                owner_name = found.display_name if found is not None else key
            else:
                roles = {r.key: r.name for r in config.roles}
                owner_name = roles.get(key, key)
        base = self.settings.link_base_url.rstrip("/")
        return {
            "case_reference": alert.case_reference,
            "case_topic": alert.case_topic,
            "task": alert.task_key or "",
            "task_name": alert.task_name,
            "indicator": alert.indicator,
            "indicator_label": alert_templates.INDICATOR_LABELS[alert.indicator],
            "occurrence": alert.occurrence,
            "indicator_at": alert_templates.uk_time(alert.indicator_at),
            "due_at": alert_templates.uk_time(alert.task_due_at),
            "due_at_iso": alert.task_due_at.isoformat() if alert.task_due_at else "",
            "owner": owner_name,
            "owner_key": alert.task_owner or "",
            "recipient": contact.key,
            "recipient_name": contact.display_name,
            "link": f"{base}/officer/cases/{alert.case_reference}",
            "rule": d.rule,
        }
