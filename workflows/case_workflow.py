"""`HousingOptionsCase`: one housing options case as a durable workflow.

A thin shell over the pure core. The loop is: plan (domain.planner) -> carry out the due
actions (alerts, follow-on reassignments, added tasks) -> record -> wait until a message
changes something or the next instant comes. One durable timer at a time: it is replaced only
when the next instant moves, so a message that does not move it costs no timer events.

Messages arrive as signals or as updates, one of each per row of the message table
(`domain.messages.MESSAGES`, installed by `_install_message_handlers`). Both go through the
row's check; an update is refused before anything reaches history, a bad signal is refused in
the audit trail and never breaks the case.

Only the standard library, temporalio, pydantic and the project's pure modules are imported
here (tests/test_workflow_imports.py guards it): the sandbox re-imports them for every run.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RawValue, RetryPolicy
from temporalio.exceptions import ApplicationError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from domain import case_rules, compact_payload, planner
    from domain.case_display import case_details_markdown
    from domain.errors import RequestRefused, describe_invalid, is_key, is_request_id
    from domain.messages import MESSAGES, Message
    from domain.planner import audit
    from domain.shared_definition import shared_copy, shared_definition, shared_definition_of
    from domain.staff import keys_to_look_up, pinned_facts
    from models.activities import (
        AlertInput,
        AlertResult,
        AllocateInput,
        AllocateResult,
        AllocationRequest,
        CaseRecord,
        OpenCaseInput,
        OpenCaseResult,
        PinDefinitionInput,
        TaskRecord,
    )
    from models.case import CASE_TARGET, CaseState, Owner, pack_state, target_task, unpack_state
    from models.definition import CaseDefinition
    from models.directory import DirectoryFacts, DirectoryQuery
    from models.messages import CarriedCase, CaseInput, TaskView
    from workflows import search

TASK_QUEUE = "housing-options"
WORKFLOW_TYPE = "HousingOptionsCase"

# Store activities are short; retry them for a long time (a database restart must not lose
# an alert) with backoff capped at a minute.
_STORE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    non_retryable_error_types=["DefinitionError"],
)
_LOCAL_TIMEOUT = timedelta(seconds=30)
# The patch that moved "who may act" from the pinned staff directory to the live one: with it,
# a message's actor and the users it names are looked up by the `directory_facts` local
# activity. A run that replayed messages handled before it (its first check of the patch came
# back False) takes it from its next live message, under `LIVE_DIRECTORY-from-<revision>`.
LIVE_DIRECTORY = "live-directory"
# Refusals are recorded at once (0.1.0); decided at a case's first refusal, or with the live
# directory (`HousingOptionsCase._live_directory`).
RECORD_REFUSALS = "record-refusals"
_ALERT_TIMEOUT = timedelta(seconds=30)
# Alerts as local activities (issue 13): the alert writes its rows from the workflow task that
# fired it, so an alert costs one workflow task and its marker rather than an activity's three
# events and a second workflow task. Runs that started before keep the activity to their end.
LOCAL_ALERTS = "alerts-as-local-activities"
# One patch for what release 0.2.0 does from the start of a run: the case opens with one local
# activity (`open_case`: the pin and the raise's allocation), alerts run as local activities
# (`LOCAL_ALERTS`), people are checked against the live directory (`LIVE_DIRECTORY`) and
# refusals are recorded at once (`RECORD_REFUSALS`). A run that starts on 0.2.0 or later takes
# them all with this one marker, decided at the start of the run: a marker per change, each
# with a search attribute upsert (the SDK's TemporalChangeVersion), costs a case history events
# and, since the SDK's core keeps a buffer sized for the most commands a workflow task ever
# sent, worker memory for as long as it is cached. Runs that started before take each one as
# they did. A later release that changes commands for new runs adds its patch the same way:
# one id per release, checked first, the older ids after it.
RELEASE_0_2_0 = "release-0.2.0-b"
# Runs of a development build of 0.2.0: all the above but the opening (they opened with the
# `pin_definition` and `allocate` local activities).
RELEASE_0_2_0_DEVELOPMENT = "release-0.2.0"
# A record lists only the tasks changed since the case's previous record, except the first
# record of each run and every tenth, which list every task (so a store that lost a record, or
# a run reset to an earlier point, is put right within ten records). Local activity inputs are
# not in the history, so what a record lists can change without a patch.
_COMPLETE_RECORD_EVERY = 10


def _print(task: TaskRecord) -> int:
    """A fingerprint of a task's record: equal records, equal prints; different records,
    different prints but with a chance of 2**-64. Only compared within one worker process
    (Python's string hashes differ between processes), and only to leave a task out of a
    record of changes: a record lists every task at least every tenth time."""
    return hash(task.model_dump_json())


def case_workflow_id(reference: str) -> str:
    """The workflow ID of a case: the council's reference, never personal data."""
    return f"case-{reference}"


def _decode(msg: Message[Any], raw: RawValue) -> Any:
    """The request of `msg` in `raw`, or RequestRefused `invalid_request` naming each field
    and the rule it breaks, never the value sent (it may be personal data, or huge)."""
    try:
        req = workflow.payload_converter().from_payload(raw.payload, msg.request)
    except Exception as err:  # a ValidationError, or a payload that is not JSON at all
        raise RequestRefused("invalid_request", describe_invalid(msg.request, err)) from None
    if not isinstance(req, msg.request):  # JSON null decodes to None, not a refusal
        raise RequestRefused("invalid_request", describe_invalid(msg.request, TypeError()))
    return req


def _local_input(value: Any) -> RawValue:
    """`value` as a local activity's input: its JSON compressed when big (domain.compact_payload;
    the SDK's core keeps every local activity's input while the case is cached)."""
    return RawValue(compact_payload.compact(workflow.payload_converter().to_payload(value)))


def _raw_fields(raw: RawValue) -> dict[str, Any]:
    """The top-level fields of a JSON object payload ({} for anything else)."""
    try:
        value = json.loads(raw.payload.data)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _claimed_identity(raw: RawValue) -> tuple[str, str | None]:
    """Who a message says it is from, and its request id, for the audit entry of a refusal:
    kept only when each is a well-formed key, so a refusal never stores what it refused."""
    fields = _raw_fields(raw)
    actor, request_id = fields.get("actor"), fields.get("request_id")
    return (
        actor if is_key(actor) else "(invalid)",
        request_id if is_request_id(request_id) else None,
    )


def _task_of(raw: RawValue) -> str | None:
    """The task a message names (None: the case itself, or not a well-formed key)."""
    task = _raw_fields(raw).get("task")
    return task if is_key(task) else None


def _install_message_handlers(cls: type[HousingOptionsCase]) -> type[HousingOptionsCase]:
    """Give the workflow a signal and a validated update for each row of the message table,
    both named after the message (`complete_task`), so the Web UI and `temporal workflow
    metadata` list them with their descriptions. A refused signal is audited; a refused
    update is refused before anything reaches history."""
    for msg in MESSAGES:
        _install(cls, msg)
    return cls


def _install(cls: type[HousingOptionsCase], msg: Message[Any]) -> None:
    async def signal(self: HousingOptionsCase, raw: RawValue) -> None:
        await self._handle(msg, raw, via="signal")

    async def update(self: HousingOptionsCase, raw: RawValue) -> TaskView | None:
        return await self._handle(msg, raw, via="update")

    def validate(self: HousingOptionsCase, raw: RawValue) -> None:
        self._validate(msg, raw)

    # The handlers take the raw payload and decode it themselves (`_decode`): a payload that
    # does not fit the request model is refused and audited rather than dropped by the SDK
    # with a log line quoting it.
    signal.__annotations__ = {"raw": RawValue, "return": None}
    update.__annotations__ = {"raw": RawValue, "return": TaskView | None}
    validate.__annotations__ = {"raw": RawValue, "return": None}
    for fn, name in ((signal, f"{msg.name}_signal"), (update, f"{msg.name}_update")):
        fn.__name__ = name
        fn.__qualname__ = f"{cls.__qualname__}.{name}"
    validate.__name__ = f"_validate_{msg.name}"
    update_handler = workflow.update(name=msg.name, description=msg.description)(update)
    update_handler.validator(validate)
    setattr(
        cls, signal.__name__, workflow.signal(name=msg.name, description=msg.description)(signal)
    )
    setattr(cls, update.__name__, update_handler)


# Input that does not decode (a bad reference sent with the `temporal` CLI, say) fails the case
# at once (`invalid_input`), rather than retrying a workflow task for ever; so does any other
# ValidationError in the case's own code.
@workflow.defn(name=WORKFLOW_TYPE, failure_exception_types=[ValidationError])
@_install_message_handlers
class HousingOptionsCase:
    @workflow.init
    def __init__(self, raw: RawValue) -> None:
        # The input is decoded here rather than by the SDK, so input that does not fit fails
        # the case naming each field and rule, never quoting the value (it may be personal
        # data): pydantic's own message would put it in the history and the Web UI.
        self._invalid_input: str | None = None
        try:
            input = workflow.payload_converter().from_payload(raw.payload, CaseInput)
        except Exception as err:
            self._invalid_input = describe_invalid(CaseInput, err)
            input = None
        if not isinstance(input, CaseInput):  # JSON null decodes to None
            self._invalid_input = self._invalid_input or describe_invalid(CaseInput, TypeError())
            input = None
        self._input: CaseInput | None = input
        self._defn: CaseDefinition | None = None
        # The state, live while the case works (`_require`), packed while it waits (`_park`):
        # a worker caches thousands of waiting cases. At most one of the two is set; neither
        # until the case has opened.
        self._state: CaseState | None = None
        self._packed: bytes | None = None
        carried: CarriedCase | None = None
        if input is not None and input.carried is not None:
            carried = input.carried
            self._defn = shared_copy(carried.definition)
            self._state = carried.state
            # The input without what was carried: the run keeps its input, and the decoded
            # definition is a private copy of the shared one (memory per cached case).
            self._input = input.model_copy(update={"carried": None})
        self._lock = asyncio.Lock()
        # Whether this run checks messages against the live directory (`_live_directory`).
        self._live = False
        # Whether a refusal is recorded at once (`RECORD_REFUSALS`; False: not decided yet).
        self._refusals_recorded = False
        # Whether alerts run as local activities (`LOCAL_ALERTS`), and whether the case opens
        # with the one `open_case` local activity (`RELEASE_0_2_0`); decided in `run`.
        self._local_alerts = False
        self._open_in_one = False
        # Set by every accepted message; the loop wakes, replans and records.
        self._changed = False
        self._timer: asyncio.Task[None] | None = None
        self._timer_at: Any = None
        # Counts changes over the case's whole life (carried across continue-as-new), so the
        # store can ignore a late retry of an older record.
        self._revision = carried.revision if carried is not None else 0
        self._recorded_revision = self._revision
        # A fingerprint of each task as the store has it from this run's records (`_print`;
        # fingerprints rather than the records themselves: memory per cached case), those of
        # the record being sent, and how many records the run has sent.
        self._recorded_tasks: dict[str, int] = {}
        self._sending_tasks: dict[str, int] = {}
        self._records_sent = 0
        # Audit entries numbered below this are in the store. A new run records everything
        # its state holds once (the store keeps each entry once, by its number).
        self._audit_recorded = 0
        if self._state is not None:
            self._audit_recorded = self._state.audit_total - len(self._state.audit)

    # ------------------------------------------------------------------ run

    @workflow.run
    async def run(self, raw: RawValue) -> CaseState:
        if self._input is None:
            raise ApplicationError(
                self._invalid_input or "invalid input", type="invalid_input", non_retryable=True
            )
        input = self._input
        # Decided at the start of the run (see `_live_directory` for why not later).
        if workflow.patched(RELEASE_0_2_0):
            self._open_in_one = self._local_alerts = self._live = self._refusals_recorded = True
        elif workflow.patched(RELEASE_0_2_0_DEVELOPMENT):
            self._local_alerts = self._live = self._refusals_recorded = True
        else:
            self._local_alerts = workflow.patched(LOCAL_ALERTS)
        try:
            return await self._run(input)
        except BaseException as err:
            # An operator's "Request Cancellation" (Web UI, `temporal workflow cancel`) arrives
            # as a cancellation of this coroutine, at whatever it awaits. The case closes as a
            # system close and records it, then ends as Cancelled. Cases cancelled before
            # this replay as they ran: they ended at once.
            if not (
                is_cancelled_exception(err)
                and workflow.cancellation_reason() is not None
                and workflow.patched("operator-cancellation")
            ):
                raise
            if await self._close_on_cancellation(input):
                raise
            state, _ = self._require()
            return state

    async def _run(self, input: CaseInput) -> CaseState:
        if not self._opened():
            await self._open_case(input)
        woke_by_timer = False
        # No local here holds the state across the wait: it is packed while the case waits
        # (`_park`), and each turn takes it anew (`_turn`).
        while await self._turn(input, woke_by_timer):
            self._changed = False
            self._park()
            await workflow.wait_condition(
                lambda: self._changed or (self._timer is not None and self._timer.done())
            )
            woke_by_timer = not self._changed
        self._cancel_timer()
        await workflow.wait_condition(workflow.all_handlers_finished)
        async with self._lock:
            await self._record_if_changed()
        state, _ = self._require()
        workflow.logger.info(
            "case finished", extra={"case": state.reference, "status": state.status}
        )
        return state

    async def _turn(self, input: CaseInput, woke_by_timer: bool) -> bool:
        """One turn of the loop: carry out what is due, finish the case if it may, record,
        and arm the timer for the next instant (or continue as new). False: it finished."""
        state, defn = self._require()
        async with self._lock:
            await self._carry_out_due_actions()
            p = planner.plan(defn, state, workflow.now())
            if state.status == "open" and p.case_may_finish:
                planner.finish_case(state, workflow.now())
                self._touch()
            await self._record_if_changed()
            self._refresh_display()
        if state.status != "open":
            return False
        if self._should_continue_as_new(input, woke_by_timer):
            # Finish handlers first: an update still running would be lost with this run.
            await workflow.wait_condition(workflow.all_handlers_finished)
            self._cancel_timer()
            workflow.logger.info("continuing as new", extra={"case": state.reference})
            workflow.continue_as_new(
                CaseInput(
                    case=input.case,
                    carried=CarriedCase(definition=defn, state=state, revision=self._revision),
                    history_event_limit=input.history_event_limit,
                )
            )
        self._arm_timer(p.next_instant)
        return True

    async def _close_on_cancellation(self, input: CaseInput) -> bool:
        """Close the case as the system after an operator's cancellation: every unfinished
        task cancelled, audited, recorded in the store, search attributes upserted, handlers
        finished. The activities here start after the cancellation was delivered, so they run
        to completion. True when the case was open (it closed: the workflow ends Cancelled);
        False when it had finished already (it ends as it would have, Completed)."""
        if not self._opened():  # cancelled while opening: open it, so the store has it
            await self._open_case(input)
        self._cancel_timer()
        state, defn = self._require()
        async with self._lock:  # a message being handled finishes its change first
            was_open = state.status == "open"
            if was_open:
                planner.system_close(defn, state, workflow.now(), planner.OPERATOR_CANCELLED)
                self._touch()
            await self._record_if_changed()
            self._refresh_display()
        # End in a later workflow task than the close's record: a workflow task that ends
        # the workflow is retried when messages arrive during it (UnhandledCommand), and the
        # local activities of the failed attempt would already have written to the store.
        await workflow.sleep(timedelta(milliseconds=1), summary="close recorded")
        await workflow.wait_condition(workflow.all_handlers_finished)
        async with self._lock:  # a refusal audited meanwhile
            await self._record_if_changed()
        workflow.logger.info(
            "case cancelled by an operator" if was_open else "case finished",
            extra={"case": state.reference, "status": state.status},
        )
        return was_open

    async def _check_raise(self, input: CaseInput, defn: CaseDefinition) -> None:
        """Refuse a case the definition cannot run: the case fails at once, naming why. The
        raiser must be an active member of staff in the live directory (cases raised before
        it: in the pinned one)."""
        keys, today = [input.case.raised_by], planner.case_today(defn, workflow.now())
        if self._live:
            facts = await self._directory_facts(keys, today)
        else:
            facts = pinned_facts(defn, keys, today)
        self._refuse_unless_raisable(input, defn, facts)

    @staticmethod
    def _refuse_unless_raisable(
        input: CaseInput, defn: CaseDefinition, facts: DirectoryFacts
    ) -> None:
        try:
            case_rules.check_raise(defn, input.case, facts)
        except RequestRefused as refused:
            raise ApplicationError(str(refused), type=refused.code, non_retryable=True) from None

    def _live_directory(self) -> bool:
        """Whether the case checks people against the live directory (see `LIVE_DIRECTORY`).

        Called only where a history event starts the workflow's work: the opening of the case
        and the entry of a message handler, before any local activity. A local activity's
        result can come back in a later workflow task than the one its marker is recorded in;
        a replay resolves it from the marker at once, so a `patched` call made after it could
        be answered in another workflow task on replay than when it ran (a nondeterminism
        error, seen when a worker was killed under load). For the same reason the refusal
        patch (`record-refusals`, decided at a case's first refusal, which now follows the
        directory's local activity) is decided here too once the case is live."""
        if not self._live and (
            workflow.patched(LIVE_DIRECTORY)
            or workflow.patched(f"{LIVE_DIRECTORY}-from-{self._revision}")
        ):
            self._live = True
            self._refusals_recorded = workflow.patched(RECORD_REFUSALS)
        return self._live

    async def _directory_facts(self, keys: list[str], on: Any) -> DirectoryFacts:
        """The live directory's facts about `keys` on `on` (one local activity, answered
        from the worker's cache of the directory)."""
        facts: DirectoryFacts = await workflow.execute_local_activity(
            "directory_facts",
            _local_input(DirectoryQuery(keys=keys, on=on)),
            result_type=DirectoryFacts,
            start_to_close_timeout=_LOCAL_TIMEOUT,
            retry_policy=_STORE_RETRY,
            summary=f"staff directory: {len(keys)} people",
        )
        return facts

    def _should_continue_as_new(self, input: CaseInput, woke_by_timer: bool) -> bool:
        """Continue as new when the server suggests it, or past our own limit at a quiet
        moment (a timer wake rather than a burst of messages), or at twice the limit."""
        info = workflow.info()
        length = info.get_current_history_length()
        return (
            info.is_continue_as_new_suggested()
            or (woke_by_timer and length >= input.history_event_limit)
            or length >= 2 * input.history_event_limit
        )

    async def _open_case(self, input: CaseInput) -> None:
        # Before the first local activity: see `_live_directory`.
        self._live_directory()
        now = workflow.now()
        if self._open_in_one:
            defn, allocated = await self._open_in_one_activity(input, now)
        else:
            defn, allocated = await self._open_as_before(input, now)
        case_owner, task_owners = planner.raise_owners(input.case, allocated)
        state = planner.new_case_state(
            defn,
            reference=input.case.reference,
            created_by=input.case.raised_by,
            created_at=now,
            case_owner=case_owner,
            task_owners=task_owners,
            extra_tasks=input.case.extra_tasks,
        )
        for target, why in sorted(allocated.unallocated.items()):
            audit.system(state, now, "allocation", target_task(target), why)
        self._defn, self._state = defn, state
        self._touch()
        workflow.logger.info(
            "case opened",
            extra={"case": state.reference, "topic": state.topic, "type": state.workflow_type},
        )

    async def _open_in_one_activity(
        self, input: CaseInput, now: Any
    ) -> tuple[CaseDefinition, AllocateResult]:
        """Pin and allocate with one local activity (`open_case`); refuse the raise when the
        raiser is not an active member of staff, or the definition refuses the extra tasks."""
        opened: OpenCaseResult = await workflow.execute_local_activity(
            "open_case",
            _local_input(
                OpenCaseInput(
                    case_reference=input.case.reference,
                    topic=input.case.topic,
                    raised_by=input.case.raised_by,
                    extra_tasks=input.case.extra_tasks,
                    at=now,
                    first_run_id=workflow.info().first_execution_run_id,
                )
            ),
            result_type=OpenCaseResult,
            start_to_close_timeout=_LOCAL_TIMEOUT,
            retry_policy=_STORE_RETRY,
            summary=f"open case: pin topic {input.case.topic}, allocate owners",
        )
        defn = shared_definition_of(opened.pin)
        allocated = opened.allocation
        if allocated is None:
            # The definition refuses the extra tasks: this refuses the raise, naming the
            # raiser first when they are wrong too (one lookup, only for a refused raise).
            await self._check_raise(input, defn)
            allocated = await self._allocate_raise(input, defn, now, check_raiser=True)
        await self._refuse_raise_unless_active(input, defn, allocated)
        return defn, allocated

    async def _open_as_before(
        self, input: CaseInput, now: Any
    ) -> tuple[CaseDefinition, AllocateResult]:
        """The opening of runs started before 0.2.0 and of 0.2.0's development builds: a
        `pin_definition` local activity, then `allocate` (with the raiser's lookup on the live
        directory; before it, the raiser checked against the pin first)."""
        # Decided once, here: a message handled while the case opens may turn `_live` on.
        raiser_with_allocation = self._live
        pinned: RawValue = await workflow.execute_local_activity(
            "pin_definition",
            _local_input(PinDefinitionInput(topic=input.case.topic, on=planner.local_date(now))),
            result_type=RawValue,
            start_to_close_timeout=_LOCAL_TIMEOUT,
            retry_policy=_STORE_RETRY,
            summary=f"pin definition for topic {input.case.topic}",
        )
        # The whole payload: a case opened before the pin was compressed recorded it as JSON
        # (`json/plain`), a newer one as `binary/plain` (domain.shared_definition).
        defn = shared_definition(pinned.payload)
        if not raiser_with_allocation:
            await self._check_raise(input, defn)
        else:
            # What the pin alone can refuse, before anything is allocated.
            try:
                case_rules.check_extra_tasks(defn, input.case.extra_tasks)
            except RequestRefused:
                await self._check_raise(input, defn)
        allocated = await self._allocate_raise(
            input, defn, now, check_raiser=raiser_with_allocation
        )
        if raiser_with_allocation:
            await self._refuse_raise_unless_active(input, defn, allocated)
        return defn, allocated

    async def _allocate_raise(
        self, input: CaseInput, defn: CaseDefinition, now: Any, *, check_raiser: bool
    ) -> AllocateResult:
        requests = planner.raise_allocation_requests(defn, input.case.extra_tasks)
        allocated: AllocateResult = await workflow.execute_local_activity(
            "allocate",
            _local_input(
                AllocateInput(
                    case_reference=input.case.reference,
                    raised_by=input.case.raised_by,
                    on=planner.case_today(defn, now),
                    requests=requests,
                    first_run_id=workflow.info().first_execution_run_id,
                    check_raiser=check_raiser,
                )
            ),
            result_type=AllocateResult,
            start_to_close_timeout=_LOCAL_TIMEOUT,
            retry_policy=_STORE_RETRY,
            summary=f"allocate case and {len(requests) - 1} tasks",
        )
        return allocated

    async def _refuse_raise_unless_active(
        self, input: CaseInput, defn: CaseDefinition, allocated: AllocateResult
    ) -> None:
        """Refuse the raise from the raiser's facts the allocation looked up (it allocated
        nothing when they are not active)."""
        if allocated.raiser is None:  # an allocation that did not look (never)
            await self._check_raise(input, defn)
        else:
            self._refuse_unless_raisable(input, defn, allocated.raiser)

    # ------------------------------------------------------------- the loop

    async def _carry_out_due_actions(self) -> None:
        """Plan, carry out what is due (alerts, follow-on actions), apply; until nothing is."""
        state, defn = self._require()
        while state.status == "open":
            actions = planner.plan(defn, state, workflow.now()).actions
            if not actions:
                return
            for action in actions:
                if isinstance(action, planner.StartTask | planner.ReleaseHold):
                    planner.apply_action(defn, state, action)
                elif await self._fire(action):
                    continue  # recorded with its alert
                self._touch()

    async def _fire(self, action: planner.FireIndicator) -> bool:
        """Carry out an indicator: alert, reassign or add as it says, and apply it. True when
        the case was also recorded (one local activity for the alert and the record: an
        indicator that only alerts, on a case alerting by local activity)."""
        state, defn = self._require()
        if not planner.action_is_current(state, action):
            return False
        task = state.task(action.task) if action.task is not None else None
        name = task.name if task is not None else f"Case target ({defn.workflow_type.name})"
        recipients: list[str] = []
        record = None
        if (
            self._local_alerts
            and action.escalation_rule is not None
            and action.reassign_rule is None
            and action.add_task is None
        ):
            # Applied first, so the record the alert's activity writes is the case after it;
            # who was alerted is filled in when the activity answers (not in the record).
            planner.apply_action(defn, state, action, fired_at=workflow.now())
            self._touch()
            record = planner.case_record(state, self._revision, audit_from=self._audit_recorded)
        if action.escalation_rule is not None:
            due = (
                task.due_at
                if task is not None
                else (state.case_sla.due_at if state.case_sla else None)
            )
            alert = AlertInput(
                case_reference=state.reference,
                case_topic=state.topic,
                task=action.task,
                task_name=name,
                indicator=action.indicator,
                occurrence=action.occurrence,
                indicator_at=action.at,
                task_due_at=due,
                task_owner=task.owner if task is not None else state.owner,
                case_owner=state.owner,
                rule=defn.escalation_rules[action.escalation_rule],
                on=planner.case_today(defn, workflow.now()),
                record=self._outgoing(record) if record is not None else None,
            )
            # A local activity's input is compressed (`_local_input`); an activity's is
            # recorded in the history, where an operator reads it as it is.
            run_alert = (
                workflow.execute_local_activity if self._local_alerts else workflow.execute_activity
            )
            alert_input: Any = _local_input(alert) if self._local_alerts else alert
            result = await run_alert(
                "send_alert",
                alert_input,
                result_type=AlertResult,
                start_to_close_timeout=_ALERT_TIMEOUT,
                retry_policy=_STORE_RETRY,
                summary=f"{planner.indicator_label(action.indicator, action.occurrence)}: {name}",
            )
            recipients = result.recipients
        if record is not None:
            planner.record_recipients(state, action, recipients)
            self._recorded(record)
            self._log_fired(action, recipients)
            return True
        new_owner = None
        if action.reassign_rule is not None:
            new_owner = await self._allocate_one(
                CASE_TARGET if action.task is None else action.task,
                action.reassign_rule,
                purpose=f"follow_on-{action.occurrence}",
            )
        added_owner = None
        if action.add_task is not None and state.task(action.add_task) is None:
            added_owner = await self._allocate_one(
                action.add_task,
                planner.task_allocation_rule(defn, action.add_task),
                purpose="follow_on",
            )
        planner.apply_action(
            defn,
            state,
            action,
            recipients=recipients,
            new_owner=new_owner,
            added_task_owner=added_owner,
            fired_at=workflow.now(),
        )
        self._log_fired(action, recipients)
        return False

    def _log_fired(self, action: planner.FireIndicator, recipients: list[str]) -> None:
        state, _ = self._require()
        # Debug: the alert activity logs each alert at info; a herd should not log twice.
        workflow.logger.debug(
            "indicator fired",
            extra={
                "case": state.reference,
                "task": action.task,
                "indicator": action.indicator,
                "occurrence": action.occurrence,
                "recipients": len(recipients),
            },
        )

    async def _allocate_one(self, target: str, rule_key: str, purpose: str) -> Owner | None:
        state, defn = self._require()
        result = await workflow.execute_local_activity(
            "allocate",
            _local_input(
                AllocateInput(
                    case_reference=state.reference,
                    raised_by=state.created_by,
                    on=planner.case_today(defn, workflow.now()),
                    purpose=purpose,
                    requests=[
                        AllocationRequest(target=target, rule=defn.allocation_rules[rule_key])
                    ],
                )
            ),
            result_type=AllocateResult,
            start_to_close_timeout=_LOCAL_TIMEOUT,
            retry_policy=_STORE_RETRY,
            summary=f"allocate {target}",
        )
        if target in result.unallocated:
            why = result.unallocated[target]
            audit.system(state, workflow.now(), "allocation", target_task(target), why)
        owner: Owner | None = result.owners.get(target)
        return owner

    def _arm_timer(self, at: Any) -> None:
        """Keep one timer, for the next instant; replace it only when that instant moved."""
        if at == self._timer_at and self._timer is not None and not self._timer.done():
            return
        self._cancel_timer()
        if at is None:
            return
        delay = max(at - workflow.now(), timedelta(milliseconds=1))
        self._timer_at = at
        self._timer = asyncio.create_task(workflow.sleep(delay, summary=self._timer_summary(at)))

    def _timer_summary(self, at: Any) -> str:
        state, _ = self._require()
        label = planner.describe_instant(state, at)
        return f"next: {label}" if label else "next deadline"

    def _cancel_timer(self) -> None:
        if self._timer is not None and not self._timer.done():
            self._timer.cancel()
        self._timer = None
        self._timer_at = None

    def _touch(self) -> None:
        self._revision += 1

    async def _record_if_changed(self) -> None:
        """Write the reporting copy (one local activity, so one history event)."""
        if self._revision == self._recorded_revision:
            return
        state, _ = self._require()
        record = planner.case_record(state, self._revision, audit_from=self._audit_recorded)
        await workflow.execute_local_activity(
            "record_case",
            _local_input(self._outgoing(record)),
            start_to_close_timeout=_LOCAL_TIMEOUT,
            retry_policy=_STORE_RETRY,
            summary="record case",
        )
        self._recorded(record)

    def _outgoing(self, record: CaseRecord) -> CaseRecord:
        """What is sent for `record`: every task (see `_COMPLETE_RECORD_EVERY`), or only those
        changed since the previous record. Less to write, and a smaller local activity input
        (core keeps each one in memory while the case is cached)."""
        self._sending_tasks = {t.key: _print(t) for t in record.tasks}
        if self._records_sent % _COMPLETE_RECORD_EVERY == 0:
            return record
        changed = [
            t for t in record.tasks if self._recorded_tasks.get(t.key) != self._sending_tasks[t.key]
        ]
        return record.model_copy(update={"tasks": changed, "tasks_complete": False})

    def _recorded(self, record: CaseRecord) -> None:
        """The store has the case as `record` (sent by `_outgoing`), and the trail up to here:
        the state keeps only the latest entries."""
        state, _ = self._require()
        self._recorded_revision = record.revision
        self._recorded_tasks = self._sending_tasks
        self._records_sent += 1
        self._audit_recorded = state.audit_total
        audit.trim(state)

    def _refresh_display(self) -> None:
        state, defn = self._require()
        workflow.set_current_details(case_details_markdown(defn, state))
        search.upsert(state)

    def _require(self) -> tuple[CaseState, CaseDefinition]:
        """The live state (unpacked if the case was waiting) and the definition. Code that
        holds the state across an await holds the lock, or runs where the loop cannot park it
        (it parks only just before it waits, and takes the state anew when it wakes)."""
        if self._defn is None or not self._opened():
            raise ApplicationError("the case has not opened yet", type="case_not_open_yet")
        if self._state is None:
            assert self._packed is not None
            self._state, self._packed = unpack_state(self._packed), None
        return self._state, self._defn

    def _opened(self) -> bool:
        return self._state is not None or self._packed is not None

    def _park(self) -> None:
        """Pack the state while the case waits (memory per cached case). Only the loop parks,
        just before it waits, outside the lock: nothing holds the live state then."""
        if self._state is not None:
            self._packed, self._state = pack_state(self._state), None

    def _peek(self) -> CaseState | None:
        """The state to read without changing anything (queries, update validators): a
        waiting case's is unpacked for the reader and stays packed."""
        if self._state is None and self._packed is not None:
            return unpack_state(self._packed)
        return self._state

    # ------------------------------------------------------------ messages

    async def _handle(self, msg: Message[Any], raw: RawValue, *, via: str) -> TaskView | None:
        """One path for every message: decode, dedupe, check, allocate if the row asks,
        change, audit. A message that does not decode, or fails its check, is refused: in the
        audit trail (a signal) or to the caller (an update), never by breaking the case."""
        live = self._live_directory()  # before any wait (see there)
        await workflow.wait_condition(self._opened)
        async with self._lock:
            state, defn = self._require()
            try:
                req = _decode(msg, raw)
                if case_rules.check_request_id(state, msg.name, req):
                    workflow.logger.info(
                        "duplicate request ignored", extra={"case": state.reference, "via": via}
                    )
                    return self._view(req, duplicate=True)
                # Fire anything due before the message's instant first, so the audit trail
                # and the alerts read in the order things happened.
                await self._carry_out_due_actions()
                keys, today = keys_to_look_up(req), planner.case_today(defn, workflow.now())
                if live:
                    # What depends only on the case's state first (no I/O for those), then
                    # the people, looked up now; the lock keeps other handlers and the loop
                    # out while the lookup runs, so the state checked is the state changed.
                    msg.check(defn, state, req, workflow.now(), None)
                    facts = await self._directory_facts(keys, today)
                else:
                    facts = pinned_facts(defn, keys, today)
                msg.check(defn, state, req, workflow.now(), facts)
            except RequestRefused as refused:
                actor, request_id = _claimed_identity(raw)
                audit.refused(
                    state, workflow.now(), actor, request_id, msg.name, _task_of(raw), refused
                )
                self._touch()
                # Record (and so trim) the trail at once: a flood of refused messages must not
                # grow the state. Cases started before this wait for their next change.
                if self._refusals_recorded or workflow.patched(RECORD_REFUSALS):
                    self._changed = True
                workflow.logger.info(
                    "request refused",
                    extra={"case": state.reference, "via": via, "code": refused.code},
                )
                if via == "update":
                    raise ApplicationError(
                        str(refused), type=refused.code, non_retryable=True
                    ) from None
                return None
            allocated = None
            need = msg.allocation(defn, state, req) if msg.allocation is not None else None
            if need is not None:
                allocated = await self._allocate_one(need.target, need.rule, purpose=need.purpose)
            msg.change(defn, state, req, workflow.now(), allocated)
            self._touch()
            self._changed = True
            return self._view(req, duplicate=False)

    def _view(self, req: Any, *, duplicate: bool) -> TaskView | None:
        state, _ = self._require()
        key = getattr(req, "task", None)
        if key is None or state.task(key) is None:
            return None
        return planner.task_view(state, key, duplicate=duplicate)

    def _validate(self, msg: Message[Any], raw: RawValue) -> None:
        """Update validator: refuse before anything is written to history what the case's own
        state and pinned rules refuse (the directory's part runs in the handler, after a
        lookup a validator may not make). Validators do not run on replay."""
        state = self._peek()
        if state is None or self._defn is None:
            raise ApplicationError(
                "the case has not opened yet; try again in a moment", type="case_not_open_yet"
            )
        try:
            req = _decode(msg, raw)
            if case_rules.check_request_id(state, msg.name, req):
                return
            msg.check(self._defn, state, req, workflow.now(), None)
        except RequestRefused as refused:
            raise ApplicationError(str(refused), type=refused.code, non_retryable=True) from None

    @workflow.query(
        name="state",
        description="The case: tasks with state, owner, instants and SLA status; alerts; audit.",
    )
    def state(self) -> CaseState | None:
        return self._peek()
