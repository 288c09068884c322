"""The case workflow's activities: open a case (pin its definition and allocate its owners),
allocate owners later, send alerts, record the case. Each is idempotent (Temporal retries
activities) and synchronous: SQLAlchemy blocks, so the worker runs these on its thread pool
(`activity_executor`).

Logs carry case references, task keys, indicators and counts; never names or notes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from typing import Any

import structlog
from sqlalchemy import Engine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import allocation
from activities.alert_recipients import alert_recipients
from activities.metrics import CaseMetrics
from activities.notifiers import InboxNotifier, Notifier
from domain import case_rules
from domain.case_definition import DefinitionError, build_case_definition
from domain.errors import RequestRefused
from domain.planner import case_today, local_date, raise_allocation_requests
from domain.shared_definition import encode_pin, shared_definition_of
from models.activities import (
    Alert,
    AlertInput,
    AlertResult,
    AllocateInput,
    AllocateResult,
    CaseRecord,
    OpenCaseInput,
    OpenCaseResult,
    PinDefinitionInput,
)
from models.config import Configuration
from models.definition import CaseDefinition
from models.directory import DirectoryFacts, DirectoryQuery
from store import repository
from store.directory import DirectoryCache
from store.repository import NO_CONFIGURATION, NoConfigurationError

log = structlog.get_logger("activities")

# Stored configuration versions never change, so their parsed form is cached; a few suffice.
_CACHE_SIZE = 8
# Pins kept (each about 3 KB): every topic of a configuration or two, for a day.
_PIN_CACHE_SIZE = 256


class CaseworkActivities:
    """The activities, bound to one store. Register with `Worker(activities=acts.all(),
    activity_executor=ThreadPoolExecutor(...))`.

    `notifiers` are the channels alerts go out on (see `activities.notifiers`): exactly one
    of them is an `InboxNotifier`, which send_alert always runs first; the others run after
    it in the order given. By default, the inbox of `engine` alone."""

    def __init__(
        self,
        engine: Engine,
        version_ttl: float = 2.0,
        *,
        notifiers: Sequence[Notifier] | None = None,
        metrics: CaseMetrics | None = None,
        directory_ttl: float = 1.0,
        directory: DirectoryCache | None = None,
    ) -> None:
        self._engine = engine
        # The product's metrics (activities.metrics); None records none (tests, benchmarks).
        self._metrics = metrics
        # The staff directory, live: re-checked at most every `directory_ttl` seconds (one
        # indexed read of its version) and reloaded when it changed (`store.directory`).
        self.directory = directory or DirectoryCache(engine, ttl=directory_ttl)
        self._inbox, self._channels = _inbox_first(
            notifiers if notifiers is not None else [InboxNotifier(engine)]
        )
        self._configs: dict[int, Configuration] = {}
        # Pins already built, by (configuration version, topic, day): a pin is a pure function
        # of the three, and every case of a topic raised on a day pins the same bytes. Each
        # with the definition it holds, the one object the process's cases share.
        self._pins: dict[tuple[int, str, date], tuple[bytes, CaseDefinition]] = {}
        self._lock = threading.Lock()
        # The version in force is read at most every `version_ttl` seconds: on SQLite every
        # transaction takes the write lock, so a read per alert would queue behind every
        # recording. A newly loaded configuration reaches new cases within that time.
        self._version_ttl = version_ttl
        self._version: tuple[float, int] | None = None

    def _latest_version(self) -> int | None:
        now = time.monotonic()
        with self._lock:
            cached = self._version
        if cached is not None and now - cached[0] < self._version_ttl:
            return cached[1]
        version = repository.latest_configuration_version(self._engine)
        if version is not None:
            with self._lock:
                self._version = (now, version)
        return version

    def all(self) -> list[Callable[..., Any]]:
        """Every activity, for the worker."""
        return [
            self.open_case,
            self.pin_definition,
            self.allocate,
            self.send_alert,
            self.record_case,
            self.directory_facts,
        ]

    def latest_configuration(self) -> tuple[int, Configuration]:
        """The configuration in force (one cheap query; the parsed document is cached)."""
        version = self._latest_version()
        if version is None:
            raise NoConfigurationError(NO_CONFIGURATION)
        with self._lock:
            cached = self._configs.get(version)
        if cached is None:
            cached = repository.configuration(self._engine, version)
            with self._lock:
                if len(self._configs) >= _CACHE_SIZE:
                    self._configs.pop(next(iter(self._configs)))
                self._configs[version] = cached
        return version, cached

    @activity.defn(name="pin_definition")
    def pin_definition(self, input: PinDefinitionInput) -> bytes:
        """The definition a new case of `input.topic` runs on, from the latest configuration,
        as the case records it: compressed (`domain.shared_definition.encode_pin`; `bytes`, so
        a `binary/plain` payload, about a sixth of the JSON). An unknown or retired topic, or
        no configuration at all, fails the case at once (non-retryable): retrying cannot fix
        it, and the error says what to do. (Cases opened on 0.2.0 take `open_case`.)"""
        return self._pin(input.topic, input.on)[0]

    @activity.defn(name="allocate")
    def allocate(self, input: AllocateInput) -> AllocateResult:
        """Owners for the case and/or tasks (see `activities.allocation`), against the staff
        directory now and the latest configuration's roles. A retry returns the answers
        already given."""
        return self._allocate(input)

    @activity.defn(name="open_case")
    def open_case(self, input: OpenCaseInput) -> OpenCaseResult:
        """A new case's opening in one local activity: the definition pinned (as
        `pin_definition`), then, unless it refuses the raise's extra tasks, the raise's owners
        allocated by its rules with the raiser looked up first (as `allocate` with
        `check_raiser`). One marker in the case's history instead of two, and the rules are
        not sent to the activity: it has the definition it just pinned."""
        on = local_date(input.at)
        pin, definition = self._pin(input.topic, on)
        try:
            case_rules.check_extra_tasks(definition, input.extra_tasks)
        except RequestRefused:
            # The case refuses the raise from the pin (naming the raiser first when they
            # are wrong too); nothing is allocated for it.
            return OpenCaseResult(pin=pin, allocation=None)
        allocation = self._allocate(
            AllocateInput(
                case_reference=input.case_reference,
                raised_by=input.raised_by,
                on=case_today(definition, input.at),
                requests=raise_allocation_requests(definition, input.extra_tasks),
                first_run_id=input.first_run_id,
                check_raiser=True,
            )
        )
        return OpenCaseResult(pin=pin, allocation=allocation)

    def _pin(self, topic: str, on: date) -> tuple[bytes, CaseDefinition]:
        """The pin of `topic` on `on` from the latest configuration, and the definition it
        holds (the process's shared copy: the case that decodes the pin gets the same object)."""
        try:
            version, config = self.latest_configuration()
        except NoConfigurationError as e:
            raise ApplicationError(str(e), type="NoConfiguration", non_retryable=True) from e
        key = (version, topic, on)
        with self._lock:
            cached = self._pins.get(key)
        if cached is None:
            try:
                definition = build_case_definition(config, version, topic, on)
            except DefinitionError as e:
                log.warning("definition refused", topic=topic, config_version=version)
                raise ApplicationError(str(e), type="DefinitionError", non_retryable=True) from e
            pin = encode_pin(definition)
            cached = (pin, shared_definition_of(pin))
            with self._lock:
                if len(self._pins) >= _PIN_CACHE_SIZE:
                    self._pins.pop(next(iter(self._pins)))
                self._pins[key] = cached
        wt = cached[1].workflow_type
        log.info(
            "definition pinned",
            topic=topic,
            config_version=version,
            workflow_type=wt.key,
            workflow_version=wt.version,
        )
        return cached

    def _allocate(self, input: AllocateInput) -> AllocateResult:
        _, config = self.latest_configuration()
        # A raise checks its raiser against the directory as it is now (one indexed read of
        # its version), as the `directory_facts` activity does; later allocations may use a
        # copy up to `directory_ttl` old.
        snapshot = self.directory.snapshot(fresh=input.check_raiser)
        raiser = None
        if input.check_raiser:
            raiser = snapshot.facts([input.raised_by], input.on)
            facts = raiser.get(input.raised_by)
            if facts is None or facts.disabled:
                log.info("raise refused: raiser not active", case=input.case_reference)
                return AllocateResult(owners={}, raiser=raiser)
        users, roles = snapshot.users(), snapshot.roles(config.roles, input.on)
        now = datetime.now(UTC)
        with self._engine.begin() as conn:
            if input.first_run_id is not None and not repository.claim_reference(
                conn, input.case_reference, input.first_run_id, now
            ):
                log.warning("reference already used by another case", case=input.case_reference)
                raise ApplicationError(
                    f"case reference {input.case_reference} belongs to a case raised before; "
                    "a reference identifies one case: raise this one under a new reference",
                    type="reference_in_use",
                    non_retryable=True,
                )
            result = allocation.allocate(conn, users, roles, input, now)
        if raiser is not None:
            result = result.model_copy(update={"raiser": raiser})
        log.info(
            "allocated",
            case=input.case_reference,
            purpose=input.purpose,
            targets=len(input.requests),
            unallocated=sorted(result.unallocated),
        )
        return result

    @activity.defn(name="send_alert")
    def send_alert(self, input: AlertInput) -> AlertResult:
        """Alert the recipients of `input.rule` (see `activities.alert_recipients`): one inbox
        row each, insert-if-absent on (case, task, indicator, occurrence, recipient), then
        the same alert to every other notifier. A retry never alerts anyone twice."""
        snapshot = self.directory.snapshot()
        on = input.on or local_date(input.indicator_at)
        recipients = alert_recipients(
            input.rule,
            lambda role: snapshot.members_of(role, on),
            snapshot.disabled(),
            task_owner=input.task_owner,
            case_owner=input.case_owner,
        )
        alert = Alert.of(input, recipients)
        # The inbox first: it is the record the other channels deliver from. With it, in the
        # same transaction, the case's record as it stands once this alert has fired (a retry
        # finds both written, and delivers on the other channels what they have not taken).
        recorded = None
        if input.record is not None:
            created, recorded = self._inbox.notify_and_record(alert, input.record)
        else:
            created = self._inbox.notify(alert)
        if self._metrics is not None:
            self._metrics.alert_written(
                input.indicator, created, input.indicator_at, datetime.now(UTC)
            )
        notified = {n.name: n.notify(alert) for n in self._channels}
        log.info(
            "alert sent",
            case=input.case_reference,
            task=input.task,
            indicator=input.indicator,
            occurrence=input.occurrence,
            rule=input.rule.key,
            recipients=len(recipients),
            created=created,
            **({"notified": notified} if notified else {}),
        )
        if input.record is not None and recorded is not None:  # both or neither
            self._recorded(input.record, recorded)
        return AlertResult(recipients=recipients, created=created)

    @activity.defn(name="directory_facts")
    def directory_facts(self, input: DirectoryQuery) -> DirectoryFacts:
        """The directory facts a message's check needs (run as a local activity by the case):
        for each key asked about, disabled or not, roles and absence on `input.on`. Read from
        the worker's copy after one read of the directory's version (reloaded only when it
        moved), so a change committed before the message was sent is always seen."""
        return self.directory.snapshot(fresh=True).facts(input.keys, input.on)

    @activity.defn(name="record_case")
    def record_case(self, input: CaseRecord) -> None:
        """Write the reporting copy of the case; an older revision never overwrites a newer."""
        self._record(input)

    def _record(self, input: CaseRecord) -> None:
        self._recorded(input, repository.record_case_outcome(self._engine, input))

    def _recorded(self, input: CaseRecord, outcome: repository.RecordOutcome) -> None:
        if self._metrics is not None:
            self._metrics.case_recorded(
                input,
                opened=outcome.opened,
                finished=outcome.finished,
                new_audit=outcome.new_audit,
            )
        log.debug(
            "case recorded" if outcome.written else "case record skipped (not newer)",
            case=input.reference,
            revision=input.revision,
            status=input.status,
            tasks=len(input.tasks),
        )


def _inbox_first(notifiers: Sequence[Notifier]) -> tuple[InboxNotifier, list[Notifier]]:
    """The inbox notifier and the others (in order). Refuses a list without exactly one inbox
    (the other channels deliver from it) or with two notifiers of one name (the name keys a
    channel's delivery state)."""
    names = [n.name for n in notifiers]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"notifier names must be unique: {', '.join(duplicates)}")
    inboxes = [n for n in notifiers if isinstance(n, InboxNotifier)]
    if len(inboxes) != 1:
        raise ValueError(f"exactly one InboxNotifier is needed, not {len(inboxes)}")
    return inboxes[0], [n for n in notifiers if n is not inboxes[0]]
