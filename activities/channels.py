"""Alert channels besides the inbox: email over SMTP and a signed webhook.

Each channel has two halves:

- a `ChannelNotifier` (a `activities.notifiers.Notifier`), run by send_alert right after the
  inbox: it records one pending delivery per recipient who takes alerts on the channel
  (`store.deliveries`), and sends nothing itself, so a slow mail server never holds up a case;
- a sender (`EmailSender`, `WebhookSender`), used by the delivery loop
  (`activities.delivery`) to send what it has claimed.

Settings come from the environment (`ChannelSettings.from_env`); a channel whose settings
are absent is off. Logs carry alert keys, channels and error classes; never an address.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import smtplib
import ssl
import time as clock
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import Engine

from activities.recipients import Contact, RecipientDirectory
from models.activities import Alert
from models.config import Channel
from store.deliveries import NewDelivery, add_deliveries

UK = ZoneInfo("Europe/London")

SIGNATURE_HEADER = "X-Casework-Signature"
TIMESTAMP_HEADER = "X-Casework-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"


class SettingsError(ValueError):
    """A channel setting is missing or malformed; the message names the variable."""


def _flag(env: Mapping[str, str], name: str, default: bool = False) -> bool:
    value = env.get(name, "").strip().lower()
    if not value:
        return default
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be on or off")


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    value = env.get(name, "").strip()
    if not value:
        return default
    try:
        number = float(value)
    except ValueError:
        raise SettingsError(f"{name} must be a number of seconds") from None
    if number <= 0:
        raise SettingsError(f"{name} must be positive")
    return number


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int = 25
    starttls: bool = False  # STARTTLS on a plain connection (port 587)
    tls: bool = False  # TLS from the first byte (port 465)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    sender: str = "casework-alerts@localhost"
    timeout: float = 30.0


@dataclass(frozen=True)
class WebhookSettings:
    url: str
    secret: bytes = field(repr=False)
    timeout: float = 10.0


@dataclass(frozen=True)
class DeliverySettings:
    """How the delivery loop retries: the nth failed attempt waits `backoff * 2**(n-1)`
    seconds (at most `backoff_cap`); after `max_attempts` the delivery is failed for good."""

    poll_seconds: float = 2.0
    lease: timedelta = timedelta(minutes=2)
    backoff: float = 10.0
    backoff_cap: float = 3600.0
    max_attempts: int = 12
    # The case's page in alerts: `<link_base_url>/officer/cases/<reference>`.
    link_base_url: str = "http://127.0.0.1:8000"

    def retry_at(self, attempts: int, now: datetime) -> datetime | None:
        if attempts >= self.max_attempts:
            return None
        wait = min(self.backoff * 2 ** max(attempts - 1, 0), self.backoff_cap)
        return now + timedelta(seconds=wait)


@dataclass(frozen=True)
class ChannelSettings:
    smtp: SmtpSettings | None
    webhook: WebhookSettings | None
    delivery: DeliverySettings

    @property
    def channels(self) -> list[Channel]:
        on: list[Channel] = []
        if self.smtp is not None:
            on.append("email")
        if self.webhook is not None:
            on.append("webhook")
        return on

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ChannelSettings:
        """SMTP_HOST (unset: no email), SMTP_PORT, SMTP_STARTTLS, SMTP_TLS, SMTP_USERNAME,
        SMTP_PASSWORD, SMTP_FROM; WEBHOOK_URL (unset: no webhook), WEBHOOK_SECRET or
        WEBHOOK_SECRET_FILE; ALERT_LINK_BASE_URL; DELIVERY_POLL_SECONDS,
        DELIVERY_BACKOFF_SECONDS, DELIVERY_MAX_ATTEMPTS, DELIVERY_LEASE_SECONDS."""
        env = os.environ if env is None else env
        smtp = None
        host = env.get("SMTP_HOST", "").strip()
        if host:
            tls = _flag(env, "SMTP_TLS")
            starttls = _flag(env, "SMTP_STARTTLS")
            if tls and starttls:
                raise SettingsError("SMTP_TLS and SMTP_STARTTLS: choose one")
            port_text = env.get("SMTP_PORT", "").strip() or ("465" if tls else "25")
            if not port_text.isdigit() or not 0 < int(port_text) < 65536:
                raise SettingsError("SMTP_PORT must be a port number")
            username = env.get("SMTP_USERNAME", "").strip() or None
            password = env.get("SMTP_PASSWORD") or None
            if (username is None) != (password is None):
                raise SettingsError("SMTP_USERNAME and SMTP_PASSWORD go together")
            smtp = SmtpSettings(
                host=host,
                port=int(port_text),
                starttls=starttls,
                tls=tls,
                username=username,
                password=password,
                sender=env.get("SMTP_FROM", "").strip() or SmtpSettings.sender,
                timeout=_number(env, "SMTP_TIMEOUT_SECONDS", 30.0),
            )
        webhook = None
        url = env.get("WEBHOOK_URL", "").strip()
        if url:
            if not url.startswith(("https://", "http://")):
                raise SettingsError("WEBHOOK_URL must be an http(s) URL")
            secret = env.get("WEBHOOK_SECRET", "")
            secret_file = env.get("WEBHOOK_SECRET_FILE", "").strip()
            if not secret and secret_file:
                with open(secret_file, encoding="utf-8") as f:
                    secret = f.read().strip()
            if len(secret) < 16:
                raise SettingsError(
                    "WEBHOOK_URL needs WEBHOOK_SECRET (or WEBHOOK_SECRET_FILE) of 16+ characters"
                )
            webhook = WebhookSettings(
                url=url,
                secret=secret.encode(),
                timeout=_number(env, "WEBHOOK_TIMEOUT_SECONDS", 10.0),
            )
        attempts = env.get("DELIVERY_MAX_ATTEMPTS", "").strip() or "12"
        if not attempts.isdigit() or int(attempts) < 1:
            raise SettingsError("DELIVERY_MAX_ATTEMPTS must be a whole number, 1 or more")
        delivery = DeliverySettings(
            poll_seconds=_number(env, "DELIVERY_POLL_SECONDS", 2.0),
            backoff=_number(env, "DELIVERY_BACKOFF_SECONDS", 10.0),
            max_attempts=int(attempts),
            lease=timedelta(seconds=_number(env, "DELIVERY_LEASE_SECONDS", 120.0)),
            link_base_url=(env.get("ALERT_LINK_BASE_URL", "").strip() or "http://127.0.0.1:8000"),
        )
        # One send must end well within its lease, or another loop could send it too.
        longest = max([x.timeout for x in (smtp, webhook) if x is not None], default=0.0)
        if delivery.lease.total_seconds() < 2 * longest:
            raise SettingsError(
                "DELIVERY_LEASE_SECONDS must be at least twice the longest send timeout "
                f"({longest:.0f} s: SMTP_TIMEOUT_SECONDS, WEBHOOK_TIMEOUT_SECONDS)"
            )
        return cls(smtp=smtp, webhook=webhook, delivery=delivery)


# ------------------------------------------------------------------ taking deliveries


def next_digest(now: datetime, at: time) -> datetime:
    """The first instant at or after `now` that is `at` o'clock UK time."""
    local = now.astimezone(UK)
    candidate = datetime.combine(local.date(), at, tzinfo=UK)
    if candidate < now:
        candidate = datetime.combine(local.date() + timedelta(days=1), at, tzinfo=UK)
    return candidate.astimezone(UTC)


class ChannelNotifier:
    """The notifier of one channel: records a pending delivery per recipient who takes
    alerts on it (by `RecipientDirectory`), insert-if-absent on (alert key, channel).
    Ambers by email to someone with a digest time wait for that time."""

    def __init__(
        self,
        engine: Engine,
        channel: Channel,
        directory: Callable[[], RecipientDirectory],
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.name: str = channel
        self.channel: Channel = channel
        self._engine = engine
        self._directory = directory
        self._now = now

    def notify(self, alert: Alert) -> int:
        now = self._now()
        directory = self._directory()
        taken: list[NewDelivery] = []
        for key in alert.keys():  # noqa: SIM118 (Alert.keys is not a mapping's)
            contact = directory.contact(key.recipient)
            if not takes(contact, self.channel):
                continue
            assert contact is not None
            digest = (
                self.channel == "email" and alert.indicator == "amber" and contact.digest_at
            ) or None
            due = next_digest(now, digest) if digest is not None else now
            taken.append(NewDelivery(key, self.channel, alert.rule, due, digest is not None))
        return add_deliveries(self._engine, taken, now)


def takes(contact: Contact | None, channel: Channel) -> bool:
    """Whether `contact` takes alerts on `channel`."""
    if contact is None or contact.disabled or channel not in contact.channels:
        return False
    return channel != "email" or contact.email is not None


# ------------------------------------------------------------------ sending


@dataclass(frozen=True)
class Outgoing:
    """One message to send: to `contact`, with the rendered text and the alert's facts."""

    idempotency_key: str
    contact: Contact
    subject: str
    body: str
    facts: dict[str, Any]


class DeliveryFailed(Exception):
    """A send that did not succeed: `reason` is stored (no address, no body); `permanent`
    means retrying cannot help (a refused address, a 4xx answer)."""

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


class Sender(Protocol):
    channel: Channel

    def send(self, message: Outgoing) -> None:
        """Send `message` or raise DeliveryFailed."""
        ...


def message_id(idempotency_key: str, sender: str) -> str:
    """The email's Message-ID: derived from the alert's key, so every attempt carries the
    same one and a receiving system can drop a repeat."""
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:40]
    domain = sender.rpartition("@")[2] or "localhost"
    return f"<alert-{digest}@{domain}>"


class EmailSender:
    channel: Channel = "email"

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings

    def build(self, message: Outgoing) -> EmailMessage:
        s = self.settings
        mail = EmailMessage()
        mail["From"] = s.sender
        assert message.contact.email is not None
        mail["To"] = message.contact.email
        mail["Subject"] = message.subject
        mail["Date"] = formatdate(usegmt=True)
        mail["Message-ID"] = message_id(message.idempotency_key, s.sender)
        mail["X-Casework-Alert"] = message.idempotency_key
        mail.set_content(message.body)
        return mail

    def send(self, message: Outgoing) -> None:
        s = self.settings
        mail = self.build(message)
        try:
            smtp: smtplib.SMTP
            if s.tls:
                smtp = smtplib.SMTP_SSL(
                    s.host, s.port, timeout=s.timeout, context=ssl.create_default_context()
                )
            else:
                smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
            with smtp:
                if s.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if s.username is not None and s.password is not None:
                    smtp.login(s.username, s.password)
                smtp.send_message(mail)
        except smtplib.SMTPRecipientsRefused as e:
            codes = sorted({code for code, _ in e.recipients.values()})
            raise DeliveryFailed(
                f"recipient refused (SMTP {codes})", permanent=all(c >= 500 for c in codes)
            ) from None
        except smtplib.SMTPAuthenticationError as e:
            raise DeliveryFailed(f"SMTP authentication failed ({e.smtp_code})") from None
        except smtplib.SMTPResponseException as e:
            raise DeliveryFailed(
                f"SMTP {e.smtp_code}", permanent=500 <= e.smtp_code < 600 and e.smtp_code != 552
            ) from None
        except (smtplib.SMTPException, OSError) as e:
            raise DeliveryFailed(f"SMTP unreachable ({type(e).__name__})") from None


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The webhook signature: `sha256=` and the hex HMAC-SHA256 of `<timestamp>.<body>`."""
    mac = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(
    secret: bytes, timestamp: str, body: bytes, signature: str, *, tolerance: float = 300.0
) -> bool:
    """What a receiver checks: the signature matches, and the timestamp is recent (a replay
    of an old request is refused)."""
    try:
        age = abs(clock.time() - int(timestamp))
    except ValueError:
        return False
    return age <= tolerance and hmac.compare_digest(sign(secret, timestamp, body), signature)


class WebhookSender:
    channel: Channel = "webhook"

    def __init__(self, settings: WebhookSettings) -> None:
        self.settings = settings
        self._client = httpx.Client(timeout=settings.timeout)

    def request(self, message: Outgoing) -> tuple[bytes, dict[str, str]]:
        payload = {
            **message.facts,
            "idempotency_key": message.idempotency_key,
            "subject": message.subject,
            "text": message.body,
        }
        body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        timestamp = str(int(clock.time()))
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self.settings.secret, timestamp, body),
            IDEMPOTENCY_HEADER: message.idempotency_key,
        }
        return body, headers

    def send(self, message: Outgoing) -> None:
        body, headers = self.request(message)
        try:
            response = self._client.post(self.settings.url, content=body, headers=headers)
        except httpx.HTTPError as e:
            raise DeliveryFailed(f"webhook unreachable ({type(e).__name__})") from None
        status = response.status_code
        if 200 <= status < 300:
            return
        retry = status in (408, 409, 425, 429) or status >= 500
        raise DeliveryFailed(f"webhook answered HTTP {status}", permanent=not retry)

    def close(self) -> None:
        self._client.close()


def senders(settings: ChannelSettings) -> dict[str, Sender]:
    """The senders of the channels `settings` turns on."""
    found: dict[str, Sender] = {}
    if settings.smtp is not None:
        found["email"] = EmailSender(settings.smtp)
    if settings.webhook is not None:
        found["webhook"] = WebhookSender(settings.webhook)
    return found
