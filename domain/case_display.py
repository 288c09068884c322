"""How a case explains itself to an operator: the Web UI's current details (markdown), the
labels on timers and alert activities. Pure; no personal data (references and staff keys)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from models.case import CaseState, CaseTask
from models.config import Indicator
from models.definition import CaseDefinition

_LONDON = ZoneInfo("Europe/London")
_INDICATOR_NAMES: dict[Indicator, str] = {
    "amber": "amber",
    "target_exceeded": "target exceeded",
    "follow_on": "follow-on",
}


def local(at: datetime | None) -> str:
    """An instant as UK wall-clock time with its zone, e.g. `Tue 07 Apr 2026 17:00 BST`."""
    if at is None:
        return "-"
    return at.astimezone(_LONDON).strftime("%a %d %b %Y %H:%M %Z")


_SLA_WORDS = {
    "on_track": "on track",
    "amber": "amber",
    "breached": "breached",
    "escalated": "escalated",
}


def _sla(status: str | None) -> str:
    """On track in plain text; anything worse in bold, so it stands out."""
    if status is None:
        return "no SLA"
    word = _SLA_WORDS.get(status, status)
    return word if status == "on_track" else f"**{word}**"


def indicator_label(indicator: Indicator, occurrence: int = 1) -> str:
    name = _INDICATOR_NAMES[indicator]
    return f"{name} #{occurrence}" if indicator == "follow_on" and occurrence > 1 else name


def _pending(task: CaseTask) -> list[tuple[datetime, str]]:
    out: list[tuple[datetime, str]] = []
    if task.status == "lagging" and task.starts_at is not None:
        out.append((task.starts_at, f"start: {task.name}"))
    if task.status == "open":
        fired = {f.indicator for f in task.fired}
        if task.amber_at is not None and "amber" not in fired:
            out.append((task.amber_at, f"amber: {task.name}"))
        if task.due_at is not None and "target_exceeded" not in fired:
            out.append((task.due_at, f"target: {task.name}"))
        if task.next_follow_on_at is not None:
            out.append((task.next_follow_on_at, f"follow-on: {task.name}"))
    return out


def pending_instants(state: CaseState) -> list[tuple[datetime, str]]:
    """Every instant the case is waiting for, with a short label, earliest first."""
    out: list[tuple[datetime, str]] = []
    for task in state.tasks:
        out.extend(_pending(task))
    sla = state.case_sla
    if sla is not None and state.status == "open":
        fired = {f.indicator for f in sla.fired}
        if sla.amber_at is not None and "amber" not in fired:
            out.append((sla.amber_at, "amber: case target"))
        if "target_exceeded" not in fired:
            out.append((sla.due_at, "case target"))
        if sla.next_follow_on_at is not None:
            out.append((sla.next_follow_on_at, "follow-on: case target"))
    out.sort(key=lambda p: p[0])
    return out


def describe_instant(defn: CaseDefinition, state: CaseState, at: datetime) -> str:
    """What the case's timer for `at` is waiting for ("amber: Housing options interview")."""
    labels = [label for when, label in pending_instants(state) if when == at]
    if not labels:
        return ""
    return labels[0] + (f" (+{len(labels) - 1} more)" if len(labels) > 1 else "")


def case_details_markdown(defn: CaseDefinition, state: CaseState) -> str:
    """The Web UI's current details: the case at a glance, one line per task (a list rather
    than a table: the Web UI renders tables without cell padding)."""
    from domain.planner import case_sla_status

    wt = defn.workflow_type
    sla = state.case_sla
    overall = case_sla_status(state) if state.status == "open" else None
    lines = [
        f"**Case {state.reference}** · {wt.name} v{wt.version} · topic `{state.topic}` · "
        f"**{state.status}**" + (f" · SLA {_sla(overall)}" if overall else ""),
        "",
        f"Owner `{state.owner}` · case target {local(sla.due_at if sla else None)} "
        f"({_sla(sla.sla_status) if sla else 'none'})",
        "",
    ]
    for t in state.tasks:
        owner = f"`{t.owner}`" if t.owner else "unallocated"
        if t.status == "open":
            lines.append(
                f"- **{t.name}**: open · {owner} · due {local(t.due_at)} · {_sla(t.sla_status)}"
            )
        elif t.status == "completed":
            lines.append(f"- {t.name}: completed {local(t.completed_at)} · {owner}")
        elif t.status == "lagging":
            lines.append(f"- {t.name}: starts {local(t.starts_at)} · {owner}")
        else:
            lines.append(f"- {t.name}: {t.status} · {owner}")
    nxt = pending_instants(state)
    if nxt and state.status == "open":
        lines += ["", f"Next: {nxt[0][1]} at {local(nxt[0][0])}"]
    return "\n".join(lines)
