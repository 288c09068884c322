"""How a case explains itself to an operator: the Web UI's current details (markdown). The
labels of timers and alert activities come from `domain.planner` (`describe_instant`,
`indicator_label`). Pure; no personal data (references and staff keys)."""

from __future__ import annotations

from datetime import datetime

from domain.planner import case_sla_status, pending_instants
from domain.planner.lookups import UK
from models.case import CaseState
from models.definition import CaseDefinition


def local(at: datetime | None) -> str:
    """An instant as UK wall-clock time with its zone, e.g. `Tue 07 Apr 2026 17:00 BST`."""
    if at is None:
        return "-"
    return at.astimezone(UK).strftime("%a %d %b %Y %H:%M %Z")


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


def case_details_markdown(defn: CaseDefinition, state: CaseState) -> str:
    """The Web UI's current details: the case at a glance, one line per task (a list rather
    than a table: the Web UI renders tables without cell padding)."""
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
    if state.hold is not None and state.status == "open":
        held_sla = "held" if sla is not None and sla.held else "statutory, running"
        lines[-1:] = [
            f"**On hold** until {local(state.hold.planned_release)} · reason "
            f"`{state.hold.reason}` · case target {held_sla}",
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
        elif (hold := t.hold) is not None:
            lines.append(
                f"- **{t.name}**: on hold until {local(hold.planned_release)} · `{hold.reason}` "
                f"· {owner} · target {local(t.due_at)} before release"
            )
        else:
            lines.append(f"- {t.name}: {t.status} · {owner}")
    nxt = pending_instants(state)
    if nxt and state.status == "open":
        lines += ["", f"Next: {nxt[0][1]} at {local(nxt[0][0])}"]
    return "\n".join(lines)
