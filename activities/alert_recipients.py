"""Who receives an alert: the resolution of an escalation rule against the staff directory.

Pure: the caller passes the directory as of the alert (`store.directory.DirectorySnapshot`:
the members of a role on the day the alert fires, and the disabled accounts), so a role's
membership is as of the alert, not as of the case's start.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Set

from models.case import Owner
from models.config import EscalationRuleConfig, Key


def alert_recipients(
    rule: EscalationRuleConfig,
    members_of: Callable[[Key], Collection[Key]],
    disabled: Set[Key],
    *,
    task_owner: Owner | None,
    case_owner: Owner,
) -> list[Key]:
    """The staff keys to alert, deduplicated and sorted: every member of each role in
    `rule.roles`, the users in `rule.users`, the task owner when `rule.task_owner` and the
    case owner when `rule.case_owner` (an owner that is a role stands for its members).

    Disabled users are left out. Absent users are not: the alert waits in their inbox, and
    a rule that must reach someone today names a role. A key the directory does not know is
    kept: an alert to a stale key costs nothing, a missing alert can cost a deadline."""

    def members(role: Key) -> set[Key]:
        return set(members_of(role))

    def owned_by(owner: Owner) -> set[Key]:
        return {owner.key} if owner.kind == "user" else members(owner.key)

    keys: set[Key] = set(rule.users)
    for role in rule.roles:
        keys |= members(role)
    if rule.task_owner and task_owner is not None:
        keys |= owned_by(task_owner)
    if rule.case_owner:
        keys |= owned_by(case_owner)
    return sorted(keys - disabled)
