"""The pure core of a case: what is due, what changes it, and what it shows.

The facade over the modules that hold each part:

- `planning`: `plan(defn, state, now)`, what must happen now and the next instant to look;
- `actions`: what the case does by itself (start a task, fire an indicator) and
  `apply_action`, the one function that records it;
- `schedule`: the pending instants of a case (used by planning, the display and search);
- `indicators`: the indicator kinds of an SLA, as data;
- `construction`: building a case from its definition, and who is allocated what;
- `transitions`: how an accepted message changes a case;
- `views`: the update answer, the store's record, the overall SLA status;
- `lookups`: the SLA and calendar of a task or the case, and "today" for a case;
- `audit`: the case's audit trail.

Semantics (docs/domain.md, "Tasks and their states" and "SLA arithmetic"):

- A task is *waiting* while a predecessor is not completed, *lagging* once all are (it starts
  at `starts_at`: the lag counted from the last predecessor's completion on the task's SLA
  calendar, or the case SLA calendar when the task has no SLA), then *open* until completed or
  cancelled. Tasks with no predecessors are lagging from the case start (a lag, when
  configured, counts from the case start).
- An open task fires amber at `amber_at`, target exceeded at `due_at`, and follow-on occurrence
  k = 1..repeat_limit at the follow-on period after the previous instant (the target, then the
  previous follow-on). The case SLA does the same from the case start while the case is open.
  An indicator fires only while its task is open: completing or cancelling a task stops them.

Pure: standard library, pydantic models and project pure modules only. The Temporal workflow
sandbox imports this package; no clock reads, randomness or I/O.
"""

from domain.planner import working
from domain.planner.actions import (
    Action,
    FireIndicator,
    ReleaseHold,
    StartTask,
    action_is_current,
    apply_action,
    record_recipients,
)
from domain.planner.construction import (
    initial_task_keys,
    new_case_state,
    raise_allocation_requests,
    raise_owners,
    task_allocation_rule,
)
from domain.planner.indicators import INDICATORS, IndicatorSpec, indicator_label
from domain.planner.lookups import (
    case_calendar,
    case_today,
    case_zone,
    local_date,
    show_instant,
    sla_calendar_of,
    task_calendar,
    task_due_if_started,
    task_sla,
)
from domain.planner.planning import Plan, case_may_finish, plan
from domain.planner.schedule import describe_instant, next_deadline, pending_instants
from domain.planner.transitions import (
    OPERATOR_CANCELLED,
    add_task,
    close_case,
    complete_task,
    finish_case,
    reassign_task,
    require_task,
    system_close,
)
from domain.planner.views import (
    case_record,
    case_sla_status,
    open_task_owner_keys,
    open_tasks,
    task_view,
)
from domain.task_paths import resolve_predecessors
from models.case import SYSTEM

__all__ = [
    "INDICATORS",
    "OPERATOR_CANCELLED",
    "SYSTEM",
    "Action",
    "FireIndicator",
    "IndicatorSpec",
    "Plan",
    "ReleaseHold",
    "StartTask",
    "action_is_current",
    "add_task",
    "apply_action",
    "case_calendar",
    "case_may_finish",
    "case_record",
    "case_sla_status",
    "case_today",
    "case_zone",
    "close_case",
    "complete_task",
    "describe_instant",
    "finish_case",
    "indicator_label",
    "initial_task_keys",
    "local_date",
    "new_case_state",
    "next_deadline",
    "open_task_owner_keys",
    "open_tasks",
    "pending_instants",
    "plan",
    "raise_allocation_requests",
    "raise_owners",
    "reassign_task",
    "record_recipients",
    "require_task",
    "resolve_predecessors",
    "show_instant",
    "sla_calendar_of",
    "system_close",
    "task_allocation_rule",
    "task_calendar",
    "task_due_if_started",
    "task_sla",
    "task_view",
    "working",
]
