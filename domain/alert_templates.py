"""The text of an alert: Jinja2 templates per indicator, overridable per escalation rule.

A template is checked when the configuration loads (`template_problem`): it must parse, and
it may name only the variables in `VARIABLES`, so a typo is refused on load rather than
discovered in the first alert at 17:00. Rendering is sandboxed (`SandboxedEnvironment`) with
strict undefined variables, so a template cannot reach Python internals.

The variables say which case, task and deadline an alert is about and whose it is; none is
personal data of the applicant (the store and the alerts hold none).

Pure: no I/O; the delivery loop (`activities.delivery`) gathers the variables and renders.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from jinja2 import StrictUndefined, Template, TemplateSyntaxError, meta
from jinja2.sandbox import SandboxedEnvironment

from models.config import AlertTemplateConfig, Indicator, Key

UK = ZoneInfo("Europe/London")

# Every variable a template may name, with what it holds.
VARIABLES: dict[str, str] = {
    "case_reference": "the council's case reference",
    "case_topic": "the enquiry topic key",
    "task": "the task key ('' for the case's own SLA)",
    "task_name": "the task's name",
    "indicator": "amber, target_exceeded or follow_on",
    "indicator_label": "the indicator in words: 'Amber warning', 'Target exceeded', ...",
    "occurrence": "1 for the first follow-on, 2 for the next, ...",
    "indicator_at": "when the indicator fell due, UK time ('Tue 1 Dec 2026, 17:00 GMT')",
    "due_at": "the task's due instant, UK time ('' when it has none)",
    "due_at_iso": "the due instant as ISO 8601 UTC ('' when none)",
    "owner": "who owns the task: a staff member's or a role's name ('' when nobody)",
    "owner_key": "the owner as user:KEY or role:KEY ('' when nobody)",
    "recipient": "the staff key of the person alerted",
    "recipient_name": "the display name of the person alerted",
    "link": "the case's page on the officers' service",
    "rule": "the escalation rule that chose the recipients",
}

INDICATOR_LABELS: dict[Indicator, str] = {
    "amber": "Amber warning",
    "target_exceeded": "Target exceeded",
    "follow_on": "Follow-on escalation",
}

_BODY = """\
{{ indicator_label }}: {{ task_name }} on case {{ case_reference }}
{% if due_at %}Due: {{ due_at }}
{% endif %}Owner: {{ owner or 'unallocated' }}
Raised: {{ indicator_at }}

{{ link }}
"""

DEFAULTS: dict[Indicator, tuple[str, str]] = {
    "amber": ("Amber: {{ task_name }} on {{ case_reference }} due {{ due_at }}", _BODY),
    "target_exceeded": (
        "Target exceeded: {{ task_name }} on {{ case_reference }}",
        _BODY,
    ),
    "follow_on": (
        "Follow-on {{ occurrence }}: {{ task_name }} on {{ case_reference }} still outstanding",
        _BODY,
    ),
}

_ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


def template_problem(source: str) -> str | None:
    """Why `source` is not a usable template (it does not parse, or names a variable an
    alert does not have), or None when it is."""
    try:
        parsed = _ENV.parse(source)
    except TemplateSyntaxError as e:
        return f"does not parse (line {e.lineno}): {e.message}"
    unknown = sorted(meta.find_undeclared_variables(parsed) - set(VARIABLES))
    if unknown:
        return (
            f"names unknown variable(s) {', '.join(unknown)}; "
            f"an alert has: {', '.join(sorted(VARIABLES))}"
        )
    return None


@dataclass(frozen=True)
class Rendered:
    subject: str
    body: str


def choose(
    templates: Sequence[AlertTemplateConfig], indicator: Indicator, rule: Key
) -> tuple[str, str]:
    """The (subject, body) sources for an alert of `indicator` chosen by escalation rule
    `rule`: the rule's override, else the configured default, else the built-in one."""
    default: tuple[str, str] | None = None
    for t in templates:
        if t.indicator != indicator:
            continue
        if t.escalation_rule == rule:
            return t.subject, t.body
        if t.escalation_rule is None:
            default = (t.subject, t.body)
    return default or DEFAULTS[indicator]


def render(subject: str, body: str, variables: Mapping[str, object]) -> Rendered:
    """Render a chosen template. The subject is one line (line breaks become spaces)."""
    values = {name: variables.get(name, "") for name in VARIABLES}
    line = " ".join(_compiled(subject).render(values).split())
    return Rendered(subject=line, body=_compiled(body).render(values))


@lru_cache(maxsize=256)
def _compiled(source: str) -> Template:
    return _ENV.from_string(source)


def uk_time(instant: datetime | None) -> str:
    """An instant as an officer reads it: 'Tue 1 Dec 2026, 17:00 GMT' ('' for None)."""
    if instant is None:
        return ""
    local = instant.astimezone(UK)
    return f"{local:%a} {local.day} {local:%b %Y, %H:%M} {local.tzname()}"


def digest_of(keys: Sequence[str]) -> str:
    """A short stable name for a set of alert keys (a digest email's idempotency key)."""
    import hashlib

    return hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()[:32]
