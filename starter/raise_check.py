"""The check a service or the command line runs before starting a case: the same rule the
case applies when it opens (`domain.case_rules.check_raise`), against the configuration in
force in the store and the staff directory, so a mistyped topic or raiser is refused before
anything reaches Temporal.

    cases = CaseClient(client, check_raise=store_raise_check(engine))
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from sqlalchemy import Engine

from domain.case_definition import DefinitionError, build_case_definition
from domain.case_rules import check_raise
from domain.errors import RequestRefused
from domain.planner import case_today, local_date
from models.messages import RaiseCase
from store.directory import load_directory
from store.repository import NoConfigurationError, latest_configuration

# How many valid keys a refusal lists before "and N more".
SHOWN_KEYS = 15


def listed(keys: Iterable[str]) -> str:
    """Keys for an error message: sorted, at most SHOWN_KEYS of them."""
    ordered = sorted(keys)
    shown = ", ".join(ordered[:SHOWN_KEYS]) or "none"
    more = len(ordered) - SHOWN_KEYS
    return shown + (f" and {more} more" if more > 0 else "")


def store_raise_check(engine: Engine) -> Callable[[RaiseCase], None]:
    """A raise check reading the latest stored configuration on each call. Raises
    RequestRefused: `unknown_topic` (naming the topics in force), `unknown_actor` (naming the
    active staff), `unknown_task` / `task_not_allowed` (naming the optional tasks),
    `no_configuration` when none is stored."""

    def check(case: RaiseCase) -> None:
        try:
            version, config = latest_configuration(engine)
        except NoConfigurationError as e:
            raise RequestRefused("no_configuration", str(e)) from None
        today = local_date(datetime.now(UTC))
        try:
            defn = build_case_definition(config, version, case.topic, today)
        except DefinitionError as e:
            in_force = {t.key for t in config.topics if t.in_force_on(today)}
            raise RequestRefused(
                "unknown_topic", f"{e}; topics in force today: {listed(in_force)}"
            ) from None
        directory = load_directory(engine)
        facts = directory.facts([case.raised_by], case_today(defn, datetime.now(UTC)))
        try:
            check_raise(defn, case, facts)
        except RequestRefused as refused:
            if refused.code != "unknown_actor":
                raise
            active = {m.key for m in directory.staff.values() if not m.disabled}
            raise RequestRefused(
                refused.code, f"{refused}; active staff: {listed(active)}"
            ) from None

    return check
