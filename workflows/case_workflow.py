"""`HousingOptionsCase`: one housing options case as a durable workflow.

A thin shell over the pure core. The loop is: plan (domain.planner) -> carry out the due
actions (alerts, follow-on reassignments, added tasks) -> record -> wait until a message
changes something or the next instant comes. One durable timer at a time: it is replaced only
when the next instant moves, so a message that does not move it costs no timer events.

Messages (`add_task`, `reassign_task`, `complete_task`, `close_case`) arrive as signals or as
updates. Both go through the same validators (domain.case_rules); an update is refused before
anything reaches history, a bad signal is refused in the audit trail and never breaks the case.

Only the standard library, temporalio, pydantic and the project's pure modules are imported
here (tests/test_workflow_imports.py guards it): the sandbox re-imports them for every run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from domain import audit, case_rules, planner
    from domain.case_display import case_details_markdown, describe_instant, indicator_label
    from domain.case_rules import RequestRefused
    from models.activities import (
        AlertInput,
        AlertResult,
        AllocateInput,
        AllocateResult,
        AllocationRequest,
        CaseRecord,
        PinDefinitionInput,
        TaskRecord,
    )
    from models.case import CaseState, Owner
    from models.definition import CaseDefinition
    from models.messages import (
        AddTask,
        CarriedCase,
        CaseInput,
        CloseCase,
        CompleteTask,
        ReassignTask,
        TaskView,
    )
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
_ALERT_TIMEOUT = timedelta(seconds=30)

M = TypeVar("M", AddTask, ReassignTask, CompleteTask, CloseCase)


def case_workflow_id(reference: str) -> str:
    """The workflow ID of a case: the council's reference, never personal data."""
    return f"case-{reference}"


# Input that does not decode (a bad reference sent with the `temporal` CLI, say) fails the case
# at once with the validation message, rather than retrying a workflow task for ever.
@workflow.defn(name=WORKFLOW_TYPE, failure_exception_types=[ValidationError])
class HousingOptionsCase:
    @workflow.init
    def __init__(self, input: CaseInput) -> None:
        self._input = input
        self._defn: CaseDefinition | None = None
        self._state: CaseState | None = None
        if input.carried is not None:
            self._defn = input.carried.definition
            self._state = input.carried.state
        self._lock = asyncio.Lock()
        # Set by every accepted message; the loop wakes, replans and records.
        self._changed = False
        self._timer: asyncio.Task[None] | None = None
        self._timer_at: Any = None
        # Counts changes over the case's whole life (carried across continue-as-new), so the
        # store can ignore a late retry of an older record.
        self._revision = input.carried.revision if input.carried is not None else 0
        self._recorded_revision = self._revision

    # ------------------------------------------------------------------ run

    @workflow.run
    async def run(self, input: CaseInput) -> CaseState:
        if self._state is None:
            await self._open_case(input)
        state, defn = self._require()
        woke_by_timer = False
        while True:
            async with self._lock:
                await self._carry_out_due_actions()
                p = planner.plan(defn, state, workflow.now())
                if state.status == "open" and p.case_may_finish:
                    planner.finish_case(state, workflow.now())
                    self._touch()
                await self._record_if_changed()
                self._refresh_display()
            if state.status != "open":
                break
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
            self._changed = False
            await workflow.wait_condition(
                lambda: self._changed or (self._timer is not None and self._timer.done())
            )
            woke_by_timer = not self._changed
        self._cancel_timer()
        await workflow.wait_condition(workflow.all_handlers_finished)
        async with self._lock:
            await self._record_if_changed()
        workflow.logger.info(
            "case finished", extra={"case": state.reference, "status": state.status}
        )
        return state

    @staticmethod
    def _check_raise(input: CaseInput, defn: CaseDefinition) -> None:
        """Refuse a case the definition cannot run: the case fails at once, naming why."""
        raiser = defn.users.get(input.case.raised_by)
        try:
            if raiser is None or raiser.disabled:
                raise RequestRefused(
                    "unknown_actor",
                    f"{input.case.raised_by!r} is not an active member of staff in "
                    f"configuration version {defn.config_version}",
                )
            case_rules.check_extra_tasks(defn, input.case.extra_tasks)
        except RequestRefused as refused:
            raise ApplicationError(str(refused), type=refused.code, non_retryable=True) from None

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
        now = workflow.now()
        defn = await workflow.execute_local_activity(
            "pin_definition",
            PinDefinitionInput(topic=input.case.topic, on=now.date()),
            result_type=CaseDefinition,
            start_to_close_timeout=_LOCAL_TIMEOUT,
            retry_policy=_STORE_RETRY,
            summary=f"pin definition for topic {input.case.topic}",
        )
        self._check_raise(input, defn)
        wt = defn.workflow_type
        rules = defn.allocation_rules
        requests = [AllocationRequest(target="case", rule=rules[wt.allocation.case_owner])]
        task_keys = [step.task for step in wt.path] + [
            k for k in input.case.extra_tasks if k not in {s.task for s in wt.path}
        ]
        for key in task_keys:
            rule_key = wt.allocation.tasks.get(key, wt.allocation.default_task)
            requests.append(AllocationRequest(target=key, rule=rules[rule_key]))
        allocated = await workflow.execute_local_activity(
            "allocate",
            AllocateInput(
                case_reference=input.case.reference,
                raised_by=input.case.raised_by,
                on=now.date(),
                requests=requests,
            ),
            result_type=AllocateResult,
            start_to_close_timeout=_LOCAL_TIMEOUT,
            retry_policy=_STORE_RETRY,
            summary=f"allocate case and {len(task_keys)} tasks",
        )
        case_owner = allocated.owners.get("case") or Owner(kind="user", key=input.case.raised_by)
        task_owners = {k: o for k, o in allocated.owners.items() if k != "case"}
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
            audit.system(state, now, "allocation", target, why)
        self._defn, self._state = defn, state
        self._touch()
        workflow.logger.info(
            "case opened",
            extra={"case": state.reference, "topic": state.topic, "type": state.workflow_type},
        )

    # ------------------------------------------------------------- the loop

    async def _carry_out_due_actions(self) -> None:
        """Plan, carry out what is due (alerts, follow-on actions), apply; until nothing is."""
        state, defn = self._require()
        while state.status == "open":
            actions = planner.plan(defn, state, workflow.now()).actions
            if not actions:
                return
            for action in actions:
                if isinstance(action, planner.StartTask):
                    planner.apply_action(defn, state, action)
                else:
                    await self._fire(action)
                self._touch()

    async def _fire(self, action: planner.FireIndicator) -> None:
        state, defn = self._require()
        if not planner.action_is_current(state, action):
            return
        task = state.task(action.task) if action.task is not None else None
        name = task.name if task is not None else f"Case target ({defn.workflow_type.name})"
        recipients: list[str] = []
        if action.escalation_rule is not None:
            due = (
                task.due_at
                if task is not None
                else (state.case_sla.due_at if state.case_sla else None)
            )
            result = await workflow.execute_activity(
                "send_alert",
                AlertInput(
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
                ),
                result_type=AlertResult,
                start_to_close_timeout=_ALERT_TIMEOUT,
                retry_policy=_STORE_RETRY,
                summary=f"{indicator_label(action.indicator, action.occurrence)}: {name}",
            )
            recipients = result.recipients
        new_owner = None
        if action.reassign_rule is not None:
            new_owner = await self._allocate_one(
                action.task or "case",
                action.reassign_rule,
                purpose=f"follow_on-{action.occurrence}",
            )
        added_owner = None
        if action.add_task is not None and state.task(action.add_task) is None:
            added_owner = await self._allocate_one(
                action.add_task, self._task_rule(action.add_task), purpose="follow_on"
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

    def _task_rule(self, task_key: str) -> str:
        wt = self._require()[1].workflow_type
        return wt.allocation.tasks.get(task_key, wt.allocation.default_task)

    async def _allocate_one(self, target: str, rule_key: str, purpose: str) -> Owner | None:
        state, defn = self._require()
        result = await workflow.execute_local_activity(
            "allocate",
            AllocateInput(
                case_reference=state.reference,
                raised_by=state.created_by,
                on=workflow.now().date(),
                purpose=purpose,
                requests=[AllocationRequest(target=target, rule=defn.allocation_rules[rule_key])],
            ),
            result_type=AllocateResult,
            start_to_close_timeout=_LOCAL_TIMEOUT,
            retry_policy=_STORE_RETRY,
            summary=f"allocate {target}",
        )
        if target in result.unallocated:
            audit.system(state, workflow.now(), "allocation", target, result.unallocated[target])
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
        state, defn = self._require()
        label = describe_instant(defn, state, at)
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
        await workflow.execute_local_activity(
            "record_case",
            _case_record(state, self._revision),
            start_to_close_timeout=_LOCAL_TIMEOUT,
            retry_policy=_STORE_RETRY,
            summary="record case",
        )
        self._recorded_revision = self._revision

    def _refresh_display(self) -> None:
        state, defn = self._require()
        workflow.set_current_details(case_details_markdown(defn, state))
        search.upsert(state)

    def _require(self) -> tuple[CaseState, CaseDefinition]:
        if self._state is None or self._defn is None:
            raise ApplicationError("the case has not opened yet", type="case_not_open_yet")
        return self._state, self._defn

    # ------------------------------------------------------------ messages

    async def _handle(
        self,
        req: M,
        check: Callable[[CaseDefinition, CaseState, M, Any], None],
        change: Callable[[CaseDefinition, CaseState, M], Awaitable[str | None]],
        *,
        name: str,
        via: str,
    ) -> TaskView | None:
        """One path for every message: dedupe, validate, change, audit."""
        await workflow.wait_condition(lambda: self._state is not None)
        async with self._lock:
            state, defn = self._require()
            if case_rules.is_duplicate(state, req.request_id):
                workflow.logger.info(
                    "duplicate request ignored", extra={"case": state.reference, "via": via}
                )
                return self._view(req, duplicate=True)
            # Fire anything due before the message's instant first, so the audit trail and
            # the alerts read in the order things happened.
            await self._carry_out_due_actions()
            try:
                check(defn, state, req, workflow.now())
            except RequestRefused as refused:
                audit.refused(state, workflow.now(), req, name, refused)
                self._touch()
                workflow.logger.info(
                    "request refused",
                    extra={"case": state.reference, "via": via, "code": refused.code},
                )
                if via == "update":
                    raise ApplicationError(
                        str(refused), type=refused.code, non_retryable=True
                    ) from None
                return None
            await change(defn, state, req)
            self._touch()
            self._changed = True
            return self._view(req, duplicate=False)

    def _view(
        self, req: AddTask | ReassignTask | CompleteTask | CloseCase, *, duplicate: bool
    ) -> TaskView | None:
        state, _ = self._require()
        key = getattr(req, "task", None)
        if key is None or state.task(key) is None:
            return None
        view = planner.task_view(state, key)
        return view.model_copy(update={"duplicate": duplicate})

    def _validate(self, req: M, check: Callable[[CaseDefinition, CaseState, M, Any], None]) -> None:
        """Update validator: refuse before anything is written to history."""
        if self._state is None or self._defn is None:
            raise ApplicationError(
                "the case has not opened yet; try again in a moment", type="case_not_open_yet"
            )
        if case_rules.is_duplicate(self._state, req.request_id):
            return
        try:
            check(self._defn, self._state, req, workflow.now())
        except RequestRefused as refused:
            raise ApplicationError(str(refused), type=refused.code, non_retryable=True) from None

    async def _change_add(self, defn: CaseDefinition, state: CaseState, req: AddTask) -> str | None:
        owner = req.owner
        if owner is None:
            owner = await self._allocate_one(req.task, self._task_rule(req.task), purpose="manual")
        planner.add_task(defn, state, req, workflow.now(), owner or state.owner)
        return None

    async def _change_reassign(
        self, defn: CaseDefinition, state: CaseState, req: ReassignTask
    ) -> str | None:
        planner.reassign_task(defn, state, req, workflow.now())
        return None

    async def _change_complete(
        self, defn: CaseDefinition, state: CaseState, req: CompleteTask
    ) -> str | None:
        planner.complete_task(defn, state, req, workflow.now())
        return None

    async def _change_close(
        self, defn: CaseDefinition, state: CaseState, req: CloseCase
    ) -> str | None:
        planner.close_case(defn, state, req, workflow.now())
        return None

    # Signals: fire and forget. A refusal is audited, never raised.

    @workflow.signal(name="add_task", description="Add an optional task to the case by hand.")
    async def add_task_signal(self, req: AddTask) -> None:
        await self._handle(
            req, case_rules.check_add_task, self._change_add, name="add_task", via="signal"
        )

    @workflow.signal(name="reassign_task", description="Reassign a task to a user or a role.")
    async def reassign_task_signal(self, req: ReassignTask) -> None:
        await self._handle(
            req,
            case_rules.check_reassign_task,
            self._change_reassign,
            name="reassign_task",
            via="signal",
        )

    @workflow.signal(name="complete_task", description="Complete an open task.")
    async def complete_task_signal(self, req: CompleteTask) -> None:
        await self._handle(
            req,
            case_rules.check_complete_task,
            self._change_complete,
            name="complete_task",
            via="signal",
        )

    @workflow.signal(name="close_case", description="Close the case with a reason.")
    async def close_case_signal(self, req: CloseCase) -> None:
        await self._handle(
            req, case_rules.check_close_case, self._change_close, name="close_case", via="signal"
        )

    # Updates: validated first; answer with the task's new state.

    @workflow.update(name="add_task", description="Add an optional task; returns the new task.")
    async def add_task_update(self, req: AddTask) -> TaskView | None:
        return await self._handle(
            req, case_rules.check_add_task, self._change_add, name="add_task", via="update"
        )

    @add_task_update.validator
    def _validate_add(self, req: AddTask) -> None:
        self._validate(req, case_rules.check_add_task)

    @workflow.update(name="reassign_task", description="Reassign a task; returns the task.")
    async def reassign_task_update(self, req: ReassignTask) -> TaskView | None:
        return await self._handle(
            req,
            case_rules.check_reassign_task,
            self._change_reassign,
            name="reassign_task",
            via="update",
        )

    @reassign_task_update.validator
    def _validate_reassign(self, req: ReassignTask) -> None:
        self._validate(req, case_rules.check_reassign_task)

    @workflow.update(name="complete_task", description="Complete an open task; returns it.")
    async def complete_task_update(self, req: CompleteTask) -> TaskView | None:
        return await self._handle(
            req,
            case_rules.check_complete_task,
            self._change_complete,
            name="complete_task",
            via="update",
        )

    @complete_task_update.validator
    def _validate_complete(self, req: CompleteTask) -> None:
        self._validate(req, case_rules.check_complete_task)

    @workflow.update(name="close_case", description="Close the case with a reason.")
    async def close_case_update(self, req: CloseCase) -> TaskView | None:
        return await self._handle(
            req, case_rules.check_close_case, self._change_close, name="close_case", via="update"
        )

    @close_case_update.validator
    def _validate_close(self, req: CloseCase) -> None:
        self._validate(req, case_rules.check_close_case)

    @workflow.query(
        name="state",
        description="The case: tasks with state, owner, instants and SLA status; alerts; audit.",
    )
    def state(self) -> CaseState | None:
        return self._state


def _case_record(state: CaseState, revision: int) -> CaseRecord:
    return CaseRecord(
        reference=state.reference,
        topic=state.topic,
        workflow_type=state.workflow_type,
        workflow_version=state.workflow_version,
        config_version=state.config_version,
        status=state.status,
        owner=state.owner,
        created_by=state.created_by,
        created_at=state.created_at,
        finished_at=state.finished_at,
        close_reason=state.close_reason,
        sla_status=planner.case_sla_status(state),
        case_due_at=state.case_sla.due_at if state.case_sla else None,
        revision=revision,
        tasks=[
            TaskRecord(
                key=t.key,
                name=t.name,
                status=t.status,
                mandatory=t.mandatory,
                owner=t.owner,
                started_at=t.started_at,
                due_at=t.due_at,
                completed_at=t.completed_at,
                sla_status=t.sla_status,
            )
            for t in state.tasks
        ],
    )
