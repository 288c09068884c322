"""The indicator kinds of a service level, as data.

A task's SLA (and the case's own) has three indicators: the amber warning, target exceeded and
the follow-on escalation that may repeat. Each kind is one row of `INDICATORS`: which instant of
its holder it fires at, which escalation rule of the SLA names who is alerted, the SLA status it
leaves behind, its order among simultaneous indicators and how it reads to an operator. The
planner, the display and the alert labels all read these rows, so a new kind of indicator is a
row here (plus its instant on the holder), not an if-chain in six modules.

Pure: the workflow sandbox imports it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

from models.case import SLA_SEVERITY, CaseSla, CaseTask, SlaStatus
from models.config import Indicator, Key, SlaConfig

# What carries indicators: a task, or the case SLA.
Holder = CaseTask | CaseSla


@dataclass(frozen=True)
class IndicatorSpec:
    """One kind of indicator."""

    kind: Indicator
    # How an operator reads it ("target exceeded") and what a case waiting for it waits for,
    # for a task ("target: {task}") and for the case SLA ("case target").
    name: str
    waiting_for_task: str
    waiting_for_case: str
    # Order of simultaneous indicators of one holder (a task's start is 0).
    rank: int
    status_after: SlaStatus
    # Whether it fires again (occurrence 2, 3, ...) at its holder's next instant.
    repeats: bool
    instant: Callable[[Holder], datetime | None]
    escalation_rule: Callable[[SlaConfig], Key | None]


def _follow_on_rule(sla: SlaConfig) -> Key | None:
    return sla.follow_on.escalation_rule if sla.follow_on is not None else None


INDICATORS: tuple[IndicatorSpec, ...] = (
    IndicatorSpec(
        kind="amber",
        name="amber",
        waiting_for_task="amber: {task}",
        waiting_for_case="amber: case target",
        rank=1,
        status_after="amber",
        repeats=False,
        instant=lambda holder: holder.amber_at,
        escalation_rule=lambda sla: sla.amber_escalation,
    ),
    IndicatorSpec(
        kind="target_exceeded",
        name="target exceeded",
        waiting_for_task="target: {task}",
        waiting_for_case="case target",
        rank=2,
        status_after="breached",
        repeats=False,
        instant=lambda holder: holder.due_at,
        escalation_rule=lambda sla: sla.target_exceeded_escalation,
    ),
    IndicatorSpec(
        kind="follow_on",
        name="follow-on",
        waiting_for_task="follow-on: {task}",
        waiting_for_case="follow-on: case target",
        rank=3,
        status_after="escalated",
        repeats=True,
        instant=lambda holder: holder.next_follow_on_at,
        escalation_rule=_follow_on_rule,
    ),
)
SPECS: dict[Indicator, IndicatorSpec] = {spec.kind: spec for spec in INDICATORS}


def fired_counts(holder: Holder) -> dict[Indicator, int]:
    """How many occurrences of each kind the holder has fired in its current round (kinds
    never fired in it: absent)."""
    counts: dict[Indicator, int] = {}
    for fired in holder.fired:
        if fired.round == holder.round:
            counts[fired.indicator] = counts.get(fired.indicator, 0) + 1
    return counts


def _occurrence(holder: Holder, kind: Indicator) -> int:
    """The occurrence number the next `kind` of the holder gets: counted over every round, so
    an alert of a revised target is never taken for one of an earlier round."""
    return sum(1 for f in holder.fired if f.indicator == kind) + 1


def _still_to_fire(holder: Holder) -> Iterator[tuple[datetime, IndicatorSpec, int]]:
    counts = fired_counts(holder) if holder.fired else {}
    for spec in INDICATORS:
        at = spec.instant(holder)
        if at is None:
            continue
        count = counts.get(spec.kind, 0)
        if count and not spec.repeats:
            continue
        yield at, spec, _occurrence(holder, spec.kind) if holder.fired else 1


def pending_indicators(holder: Holder) -> list[tuple[datetime, IndicatorSpec, int]]:
    """Every indicator of the holder still to fire: instant, kind and occurrence, in the order
    of `INDICATORS` (which is also the order of their instants: amber <= target <= follow-on)."""
    return list(_still_to_fire(holder))


def next_indicator(holder: Holder) -> tuple[datetime, IndicatorSpec, int] | None:
    """The holder's next indicator (the first still to fire), or None. The planner's hot
    path (every activation of every case asks it for every open task): the same rule as
    `pending_indicators`, stopping at the first, without building the others."""
    fired = holder.fired
    for spec in INDICATORS:
        at = spec.instant(holder)
        if at is None:
            continue
        if not fired:
            return at, spec, 1
        kind, round_ = spec.kind, holder.round
        count = sum(1 for f in fired if f.indicator == kind and f.round == round_)
        if count and not spec.repeats:
            continue
        return at, spec, sum(1 for f in fired if f.indicator == kind) + 1
    return None


def indicator_label(indicator: Indicator, occurrence: int = 1) -> str:
    """How an alert or a timer names an indicator: "amber", "follow-on #2"."""
    spec = SPECS[indicator]
    return f"{spec.name} #{occurrence}" if spec.repeats and occurrence > 1 else spec.name


def worse(current: SlaStatus | None, new: SlaStatus) -> SlaStatus:
    """The worse of two SLA statuses (None: none yet)."""
    if current is None or SLA_SEVERITY[new] > SLA_SEVERITY[current]:
        return new
    return current
