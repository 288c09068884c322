"""Email and webhook alerts (issue 11), against real servers the tests start: an SMTP server
(aiosmtpd) receiving the mail and an HTTP receiver checking each webhook's HMAC signature.

send_alert writes the inbox, then one pending delivery per recipient and channel; the
delivery loop claims, renders and sends them. Exactly once: a retried send_alert adds no
delivery, a failed send is retried with backoff and sent once, two loops racing send each
alert once, and a loop that dies mid-send is succeeded after its lease with the same
Message-ID. The loop's clock is injected, so backoff and digests are checked at exact
instants without waiting.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from temporalio.testing import ActivityEnvironment

from activities import CaseworkActivities
from activities.channels import (
    ChannelNotifier,
    ChannelSettings,
    DeliverySettings,
    EmailSender,
    SettingsError,
    SmtpSettings,
    WebhookSender,
    WebhookSettings,
    message_id,
    next_digest,
    senders,
)
from activities.delivery import DeliveryLoop
from activities.notifiers import InboxNotifier
from activities.recipients import directory_for
from config_files import load_and_validate
from config_files.loader import ConfigurationError
from models.activities import AlertInput
from models.case import Owner
from models.config import Configuration, EscalationRuleConfig
from models.messages import RaiseCase
from starter.catchers import MailCatcher, WebhookCatcher
from store.db import create_schema, make_engine
from store.deliveries import claim_due, deliveries, idempotency_key
from store.repository import save_configuration
from tests.helpers import REPO
from tests.helpers.store import SAMPLE_DAY, seed_sample_staff
from tests.helpers.workflow_harness import case_engine, wait_open

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
SECRET = b"a-webhook-secret-of-some-length"


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture
def mail() -> Iterator[MailCatcher]:
    catcher = MailCatcher().start()
    yield catcher
    catcher.stop()


@pytest.fixture
def hooks() -> Iterator[WebhookCatcher]:
    catcher = WebhookCatcher(secret=SECRET).start()
    yield catcher
    catcher.stop()


@pytest.fixture
def stored(engine: Engine, sample_config: Configuration) -> Engine:
    save_configuration(engine, sample_config, "sample")
    seed_sample_staff(engine)
    return engine


def alert_input(
    indicator: Any = "target_exceeded",
    rule: str = "owner-and-team-leaders",
    task: str = "call-back",
) -> AlertInput:
    return AlertInput(
        case_reference="HO-2026-000123",
        case_topic="private-tenancy-ending",
        task=task,
        task_name="Call back",
        indicator=indicator,
        occurrence=1,
        indicator_at=T0,
        task_due_at=T0 + timedelta(hours=1),
        task_owner=Owner(kind="user", key="adviser1"),
        case_owner=Owner(kind="user", key="adviser1"),
        rule=EscalationRuleConfig(key=rule, name="Rule", users=["adviser1", "tl1"]),
    )


def send_alert(engine: Engine, clock: Clock, alert: AlertInput) -> None:
    directory = directory_for(engine)
    acts = CaseworkActivities(
        engine,
        version_ttl=0.0,
        notifiers=[
            InboxNotifier(engine),
            ChannelNotifier(engine, "email", directory, now=clock),
            ChannelNotifier(engine, "webhook", directory, now=clock),
        ],
    )
    ActivityEnvironment().run(acts.send_alert, alert)


def delivery_loop(
    engine: Engine, mail: MailCatcher, hooks: WebhookCatcher, clock: Clock, **kw: Any
) -> DeliveryLoop:
    return DeliveryLoop(
        engine,
        {
            "email": EmailSender(
                SmtpSettings(host="127.0.0.1", port=mail.port, sender="alerts@council.example.org")
            ),
            "webhook": WebhookSender(WebhookSettings(url=hooks.url, secret=SECRET)),
        },
        DeliverySettings(backoff=30.0, link_base_url="https://casework.council.example.org"),
        now=clock,
        **kw,
    )


def states(engine: Engine) -> list[tuple[str, str, str, int]]:
    return sorted((d.key.recipient, d.channel, d.state, d.attempts) for d in deliveries(engine))


def test_an_alert_goes_out_once_by_mail_and_webhook_with_its_template(
    stored: Engine, mail: MailCatcher, hooks: WebhookCatcher
) -> None:
    clock = Clock(T0)
    send_alert(stored, clock, alert_input())
    send_alert(stored, clock, alert_input())  # a retried activity adds nothing
    assert states(stored) == [
        ("adviser1", "email", "pending", 0),
        ("adviser1", "webhook", "pending", 0),
        ("tl1", "email", "pending", 0),
        ("tl1", "webhook", "pending", 0),
    ]
    loop = delivery_loop(stored, mail, hooks, clock)
    assert loop.run_once() == 4
    assert loop.run_once() == 0
    assert [s[2] for s in states(stored)] == ["sent"] * 4

    by_to = {m["To"]: m for m in mail.messages}
    assert sorted(by_to) == ["adviser1@council.example.org", "tl1@council.example.org"]
    tl1 = by_to["tl1@council.example.org"]
    # The rule's override in config/sample/alert_templates.yaml, in UK time, with the link.
    assert tl1["Subject"] == "[Breach] HO-2026-000123: Call back (Amira Bennett)"
    text = tl1.get_content()
    assert "due Tue 1 Dec 2026, 11:00 GMT" in text
    assert "https://casework.council.example.org/officer/cases/HO-2026-000123" in text
    key = "HO-2026-000123/call-back/target_exceeded/1/tl1"
    assert tl1["Message-ID"].strip() == message_id(key, "alerts@council.example.org")
    assert tl1["X-Casework-Alert"] == key

    assert hooks.rejected == []
    assert sorted(c.headers["Idempotency-Key"] for c in hooks.calls) == [
        "HO-2026-000123/call-back/target_exceeded/1/adviser1",
        key,
    ]
    payload = next(c.json for c in hooks.calls if c.json["recipient"] == "tl1")
    assert payload["case_reference"] == "HO-2026-000123"
    assert payload["owner"] == "Amira Bennett"
    assert payload["due_at_iso"] == "2026-12-01T11:00:00+00:00"
    assert payload["subject"] == tl1["Subject"]


def test_the_default_template_of_an_indicator_applies_without_an_override(
    stored: Engine, mail: MailCatcher, hooks: WebhookCatcher
) -> None:
    clock = Clock(T0)
    send_alert(stored, clock, alert_input(rule="task-owner"))
    delivery_loop(stored, mail, hooks, clock).run_once()
    subjects = {m["Subject"] for m in mail.messages}
    assert subjects == {"Target exceeded: Call back on HO-2026-000123"}


def test_a_failed_delivery_is_retried_with_backoff_and_sent_exactly_once(
    stored: Engine, mail: MailCatcher, hooks: WebhookCatcher
) -> None:
    clock = Clock(T0)
    send_alert(stored, clock, alert_input())
    mail.refuse_next = 1  # the mail server says "451 try again later" once
    hooks.refuse_next = 1  # the webhook answers 503 once
    loop = delivery_loop(stored, mail, hooks, clock)
    assert loop.run_once() == 2  # one of each channel failed, one went through
    failed = [d for d in deliveries(stored) if d.state == "pending"]
    assert len(failed) == 2 and {d.attempts for d in failed} == {1}
    assert {d.last_error for d in failed} == {"SMTP 451", "webhook answered HTTP 503"}
    assert {d.next_attempt_at for d in failed} == {T0 + timedelta(seconds=30)}

    clock.at = T0 + timedelta(seconds=29)
    assert loop.run_once() == 0  # not due yet
    clock.at = T0 + timedelta(seconds=30)
    assert loop.run_once() == 2
    assert sorted(s[2:] for s in states(stored)) == [
        ("sent", 1),
        ("sent", 1),
        ("sent", 2),
        ("sent", 2),
    ]
    assert sorted(m["To"] for m in mail.messages) == [
        "adviser1@council.example.org",
        "tl1@council.example.org",
    ]
    assert len(hooks.calls) == 2


def test_the_backoff_doubles_and_the_last_attempt_fails_for_good(
    stored: Engine, mail: MailCatcher, hooks: WebhookCatcher
) -> None:
    settings = DeliverySettings(backoff=10.0, backoff_cap=25.0, max_attempts=3)
    assert settings.retry_at(1, T0) == T0 + timedelta(seconds=10)
    assert settings.retry_at(2, T0) == T0 + timedelta(seconds=20)
    assert settings.retry_at(3, T0) is None
    clock = Clock(T0)
    send_alert(stored, clock, alert_input())
    dead = WebhookSender(WebhookSettings(url="http://127.0.0.1:9/alerts", secret=SECRET))
    loop = DeliveryLoop(stored, {"webhook": dead}, settings, now=clock)
    for _ in range(3):
        loop.run_once()
        clock.at += timedelta(seconds=25)
    webhook = [d for d in deliveries(stored) if d.channel == "webhook"]
    assert {(d.state, d.attempts) for d in webhook} == {("failed", 3)}
    assert {d.last_error for d in webhook} == {"webhook unreachable (ConnectError)"}


def test_a_permanent_refusal_is_not_retried(
    stored: Engine, mail: MailCatcher, hooks: WebhookCatcher
) -> None:
    clock = Clock(T0)
    send_alert(stored, clock, alert_input())
    # A receiver that refuses the signature (another secret): 401 is not worth retrying.
    wrong = WebhookSender(WebhookSettings(url=hooks.url, secret=b"not-the-receivers-secret"))
    DeliveryLoop(stored, {"webhook": wrong}, now=clock).run_once()
    webhook = [d for d in deliveries(stored) if d.channel == "webhook"]
    assert {(d.state, d.last_error) for d in webhook} == {("failed", "webhook answered HTTP 401")}
    assert hooks.calls == [] and len(hooks.rejected) == 2


def test_two_loops_racing_send_each_alert_once(
    stored: Engine, mail: MailCatcher, hooks: WebhookCatcher
) -> None:
    clock = Clock(T0)
    for n in range(10):
        send_alert(stored, clock, alert_input(task=f"task-{n}"))
    mail.delay_seconds = 0.02  # hold each send open, so the loops overlap
    loops = [delivery_loop(stored, mail, hooks, clock) for _ in range(2)]
    sent = [0, 0]

    def run(i: int) -> None:
        while (n := loops[i].run_once()) > 0:
            sent[i] += n

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(sent) == 40
    ids = [m["Message-ID"].strip() for m in mail.messages]
    assert len(ids) == 20 and len(set(ids)) == 20
    keys = [c.headers["Idempotency-Key"] for c in hooks.calls]
    assert len(keys) == 20 and len(set(keys)) == 20
    assert {s[2:] for s in states(stored)} == {("sent", 1)}


def test_a_loop_that_dies_mid_send_is_succeeded_after_its_lease_with_the_same_message_id(
    stored: Engine, mail: MailCatcher, hooks: WebhookCatcher
) -> None:
    clock = Clock(T0)
    send_alert(stored, clock, alert_input())
    # A loop claims everything and dies before recording anything.
    lease = timedelta(minutes=2)
    dead = claim_due(stored, "dead-loop", T0, lease, channels=["email", "webhook"])
    assert len(dead) == 4
    survivor = delivery_loop(stored, mail, hooks, clock)
    clock.at = T0 + lease - timedelta(seconds=1)
    assert survivor.run_once() == 0  # the dead loop's claim still holds
    clock.at = T0 + lease + timedelta(seconds=1)
    assert survivor.run_once() == 4
    assert {s[2:] for s in states(stored)} == {("sent", 2)}
    # What a receiver would dedupe on is the alert's own key, on every attempt.
    assert {m["Message-ID"].strip() for m in mail.messages} == {
        message_id(idempotency_key(d.key), "alerts@council.example.org")
        for d in dead
        if d.channel == "email"
    }


def test_a_loop_whose_lease_ran_out_mid_batch_does_not_send_what_another_loop_took(
    stored: Engine, mail: MailCatcher, hooks: WebhookCatcher
) -> None:
    clock = Clock(T0)
    for task in ("call-back", "housing-options-interview"):
        send_alert(stored, clock, alert_input(task=task))  # 4 emails, claimed in one batch
    slow = delivery_loop(stored, mail, hooks, clock)
    other = delivery_loop(stored, mail, hooks, clock)
    email = slow._senders["email"]
    taken_over: list[int] = []

    class Slow:
        """Each send takes three quarters of the lease: the batch outlasts it. While the
        slow loop sends, the other loop runs and takes the rows whose lease ran out."""

        channel = email.channel

        def send(self, message: Any) -> None:
            email.send(message)
            clock.at += slow.settings.lease * 3 / 4
            taken_over.append(other.run_once())

    slow._senders = {"email": Slow()}
    slow.run_once()
    assert sum(taken_over) > 0  # the other loop did take rows over
    ids = [m["Message-ID"].strip() for m in mail.messages]
    assert len(ids) == 4 and len(set(ids)) == 4  # yet each mail went once
    assert {s[2] for s in states(stored) if s[1] == "email"} == {"sent"}


def test_a_worker_process_killed_mid_send_is_succeeded_and_the_mail_goes_once(
    tmp_path: Path, sample_config: Configuration, mail: MailCatcher
) -> None:
    """A real process running the delivery loop is killed (SIGKILL) while its SMTP session
    is open, before the server has accepted the message; after its lease, another loop
    sends each mail once."""
    db = tmp_path / "store.db"
    engine = make_engine(f"sqlite:///{db}")
    create_schema(engine)
    save_configuration(engine, sample_config, "sample")
    seed_sample_staff(engine)
    send_alert(engine, Clock(datetime.now(UTC)), alert_input())
    mail.rcpt_delay_seconds = 30.0  # the first RCPT hangs: the process is mid-send
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{db}",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(mail.port),
        "SMTP_FROM": "alerts@council.example.org",
        "SMTP_TIMEOUT_SECONDS": "60",
        "DELIVERY_LEASE_SECONDS": "120",
    }
    script = (
        "from activities.channels import ChannelSettings, senders\n"
        "from activities.delivery import DeliveryLoop\n"
        "from store.db import database_url, make_engine\n"
        "s = ChannelSettings.from_env()\n"
        "DeliveryLoop(make_engine(database_url()), senders(s), s.delivery).run_once()\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, cwd=REPO)
    try:
        assert mail.in_rcpt.wait(60), "the loop never reached the mail server"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    mail.rcpt_delay_seconds = 0.0
    claimed = [d for d in deliveries(engine) if d.state == "sending"]
    assert len(claimed) == 2  # the dead loop claimed both mails; neither went
    clock = Clock(datetime.now(UTC))
    survivor = DeliveryLoop(
        engine,
        {"email": EmailSender(SmtpSettings(host="127.0.0.1", port=mail.port))},
        DeliverySettings(),
        now=clock,
    )
    assert survivor.run_once() == 0  # the dead loop's claim holds until its lease ends
    clock.at += timedelta(minutes=2, seconds=1)
    assert survivor.run_once() == 2
    assert sorted(m["To"] for m in mail.messages) == [
        "adviser1@council.example.org",
        "tl1@council.example.org",
    ]
    emails = [d for d in deliveries(engine) if d.channel == "email"]
    assert {(d.state, d.attempts) for d in emails} == {("sent", 2)}
    engine.dispose()


async def test_a_case_s_alerts_reach_mail_and_webhook_through_the_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mail: MailCatcher, hooks: WebhookCatcher
) -> None:
    """The worker's notifiers follow the channel settings: a real case on the time-skipping
    server fires its amber, and the delivery loop sends it by mail and webhook once."""
    for name, value in {
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(mail.port),
        "WEBHOOK_URL": hooks.url,
        "WEBHOOK_SECRET": SECRET.decode(),
    }.items():
        monkeypatch.setenv(name, value)
    async with case_engine(tmp_path) as eng:
        await eng.sleep_until(datetime(2028, 3, 20, 10, tzinfo=UTC))
        handle = await eng.client.raise_case(
            RaiseCase(reference="MAIL-2028-1", topic="private-tenancy-ending", raised_by="adviser1")
        )
        await wait_open(handle)
        await eng.sleep_until(datetime(2028, 3, 21, 13, 1, tzinfo=UTC))  # the call-back's amber
        for _ in range(200):
            if deliveries(eng.engine, case_reference="MAIL-2028-1"):
                break
            await asyncio.sleep(0.05)
        settings = ChannelSettings.from_env()
        loop = DeliveryLoop(eng.engine, senders(settings), settings.delivery)
        assert await asyncio.to_thread(loop.run_once) == 2
        assert await asyncio.to_thread(loop.run_once) == 0
    (amber,) = mail.messages
    assert amber["To"] == "adviser1@council.example.org"
    assert "Call the applicant back on MAIL-2028-1" in amber["Subject"]
    assert "Tue 21 Mar 2028, 17:00 GMT" in amber["Subject"]
    (call,) = hooks.calls
    assert call.json["idempotency_key"] == "MAIL-2028-1/call-back/amber/1/adviser1"


def test_ambers_for_a_digest_reader_go_out_as_one_email_at_the_digest_time(
    stored: Engine, mail: MailCatcher, hooks: WebhookCatcher
) -> None:
    # tl2 reads ambers as a digest at 08:30 UK time (config/sample/staff.csv).
    clock = Clock(T0)
    for n in range(3):
        alert = alert_input(indicator="amber", task=f"task-{n}")
        send_alert(
            stored,
            clock,
            alert.model_copy(update={"rule": alert.rule.model_copy(update={"users": ["tl2"]})}),
        )
    loop = delivery_loop(stored, mail, hooks, clock)
    assert loop.run_once() == 3  # the webhook does not wait for the digest
    assert mail.messages == []
    digest_at = next_digest(T0, time(8, 30))
    assert digest_at == datetime(2026, 12, 2, 8, 30, tzinfo=UTC)
    clock.at = digest_at - timedelta(seconds=1)
    assert loop.run_once() == 0
    clock.at = digest_at
    assert loop.run_once() == 3
    (digest,) = mail.messages
    assert digest["To"] == "tl2@council.example.org"
    assert digest["Subject"] == "3 amber warning(s) for Hannah Price"
    body = digest.get_content()
    assert all(f"task-{n}" not in body for n in range(3))  # task names, not keys, are shown
    assert body.count("Open the case: https://casework.council.example.org/officer/cases/") == 3
    assert loop.run_once() == 0


def test_next_digest_is_uk_wall_clock_across_the_clock_change() -> None:
    summer = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    assert next_digest(summer, time(8, 30)) == datetime(2026, 7, 2, 7, 30, tzinfo=UTC)
    early = datetime(2026, 7, 1, 7, 0, tzinfo=UTC)
    assert next_digest(early, time(8, 30)) == datetime(2026, 7, 1, 7, 30, tzinfo=UTC)


def _config_with_templates(tmp_path: Path, text: str) -> Path:
    folder = tmp_path / "config"
    shutil.copytree(REPO / "config" / "sample", folder)
    (folder / "alert_templates.yaml").write_text(text)
    return folder


def test_a_template_naming_an_unknown_variable_is_refused_on_load(tmp_path: Path) -> None:
    folder = _config_with_templates(
        tmp_path,
        "- key: t1\n  indicator: amber\n  subject: 'Amber {{ applicant_name }}'\n  body: x\n",
    )
    with pytest.raises(ConfigurationError) as e:
        load_and_validate(folder, SAMPLE_DAY)
    message = str(e.value)
    assert "alert_templates.yaml" in message and "t1" in message
    assert "subject: names unknown variable(s) applicant_name" in message


def test_a_template_that_does_not_parse_or_names_an_unknown_rule_is_refused(
    tmp_path: Path,
) -> None:
    folder = _config_with_templates(
        tmp_path,
        "- key: t1\n  indicator: amber\n  subject: ok\n  body: '{% if due_at %}no end'\n"
        "- key: t2\n  indicator: amber\n  escalation_rule: no-such-rule\n  subject: s\n"
        "  body: b\n",
    )
    with pytest.raises(ConfigurationError) as e:
        load_and_validate(folder, SAMPLE_DAY)
    message = str(e.value)
    assert "body: does not parse (line 1)" in message
    assert "escalation rule 'no-such-rule' is not defined" in message


def test_channel_settings_come_from_the_environment_and_are_checked() -> None:
    assert ChannelSettings.from_env({}).channels == []
    on = ChannelSettings.from_env(
        {
            "SMTP_HOST": "smtp.example.org",
            "SMTP_PORT": "587",
            "SMTP_STARTTLS": "on",
            "SMTP_USERNAME": "alerts",
            "SMTP_PASSWORD": "pw",
            "WEBHOOK_URL": "https://hooks.example.org/x",
            "WEBHOOK_SECRET": "s" * 32,
        }
    )
    assert on.channels == ["email", "webhook"]
    assert on.smtp is not None and on.smtp.starttls and on.smtp.port == 587
    assert "pw" not in repr(on)
    for bad, named in (
        ({"SMTP_HOST": "h", "SMTP_PORT": "x"}, "SMTP_PORT"),
        ({"SMTP_HOST": "h", "SMTP_USERNAME": "u"}, "SMTP_PASSWORD"),
        ({"SMTP_HOST": "h", "SMTP_TLS": "on", "SMTP_STARTTLS": "on"}, "SMTP_STARTTLS"),
        ({"WEBHOOK_URL": "https://x"}, "WEBHOOK_SECRET"),
        ({"SMTP_STARTTLS": "maybe", "SMTP_HOST": "h"}, "SMTP_STARTTLS"),
        ({"SMTP_HOST": "h", "DELIVERY_LEASE_SECONDS": "30"}, "DELIVERY_LEASE_SECONDS"),
    ):
        with pytest.raises(SettingsError, match=named):
            ChannelSettings.from_env(bad)


def test_the_command_line_lists_deliveries_and_their_state(
    tmp_path: Path,
    sample_config: Configuration,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    hooks: WebhookCatcher,
) -> None:
    import json

    from starter.cli import main

    db = tmp_path / "store.db"
    engine = make_engine(f"sqlite:///{db}")
    create_schema(engine)
    save_configuration(engine, sample_config, "sample")
    seed_sample_staff(engine)
    clock = Clock(T0)
    send_alert(engine, clock, alert_input())
    hooks.refuse_next = 1
    loop = DeliveryLoop(
        engine, {"webhook": WebhookSender(WebhookSettings(url=hooks.url, secret=SECRET))}, now=clock
    )
    loop.run_once()
    engine.dispose()
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{db}")
    capsys.readouterr()  # the activity's log lines
    assert main(["--json", "deliveries", "--case", "HO-2026-000123", "--state", "pending"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert sorted((r["channel"], r["attempts"], r["last_error"]) for r in rows) == [
        ("email", 0, None),
        ("email", 0, None),
        ("webhook", 1, "webhook answered HTTP 503"),
    ]
