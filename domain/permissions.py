"""Who may send each message: the permission table, and the pure check against it.

The table is part of the configuration (`permissions.yaml`, `models.config.PermissionConfig`)
and is pinned with the case's rules: one row per message name (the row names of
`domain.messages`), each a list of grants:

- `case_owner`: the user who owns the case, or any member of the role that owns it;
- `task_owner`: the user who owns the task the message names;
- `owning_role_member`: any member of the role that owns the task the message names;
- `role:KEY`: any member of role KEY (team leaders, managers).

A message with no row gets `DEFAULT_GRANTS`: its owners (case owner, task owner, members of
the owning role), nobody else. For a message about the case itself (`close_case`, or
`add_task` of a task not yet on the case) there is no task, so `task_owner` and
`owning_role_member` grant nothing.

Definitions pinned before the table existed carry `permissions=None`; their table is derived
from the roles' legacy `permissions` (`close_any_case`, ...), which gives exactly the rules
those cases were raised under.

Membership ("member of role R") is a directory fact (`models.directory.StaffFacts.roles`), so a
role change reaches every case at once. Pure: the workflow sandbox imports it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from domain.errors import RequestRefused
from models.case import Owner
from models.config import ROLE_GRANT_PREFIX, Key, Permission, PermissionConfig, RoleConfig
from models.definition import CaseDefinition
from models.directory import StaffFacts

# What a message with no row in the table grants: its owners.
DEFAULT_GRANTS: tuple[str, ...] = ("case_owner", "task_owner", "owning_role_member")

# The legacy role permissions and the messages each let a role send on any case.
LEGACY_PERMISSIONS: dict[Permission, tuple[str, ...]] = {
    "add_task_any_case": ("add_task",),
    "reassign_any_task": ("reassign_task",),
    "complete_any_task": ("complete_task",),
    "close_any_case": ("close_case",),
    "hold_any_task": ("hold_task", "release_task"),
    "hold_any_case": ("hold_case", "release_case"),
    "revise_any_target": ("revise_target",),
    "cancel_any_task": ("cancel_task",),
}

# The legacy messages about the case itself (no task): their owner is the case owner.
CASE_MESSAGES = frozenset({"add_task", "close_case", "hold_case", "release_case"})

PermissionTable = Mapping[str, tuple[str, ...]]


def table_from_config(rows: Sequence[PermissionConfig]) -> dict[str, tuple[str, ...]]:
    """The table of a configuration's permission rows (message -> grants)."""
    return {row.message: tuple(row.grants) for row in rows}


def legacy_table(roles: Mapping[Key, RoleConfig]) -> dict[str, tuple[str, ...]]:
    """The table a definition pinned before the permission table implies: every message's
    owners, plus each role holding the message's legacy permission."""
    table: dict[str, tuple[str, ...]] = {}
    for permission, messages in LEGACY_PERMISSIONS.items():
        granted = sorted(k for k, r in roles.items() if permission in r.permissions)
        for message in messages:
            owners = ("case_owner",) if message in CASE_MESSAGES else DEFAULT_GRANTS
            table[message] = owners + tuple(f"{ROLE_GRANT_PREFIX}{k}" for k in granted)
    return table


def permission_table(defn: CaseDefinition) -> dict[str, tuple[str, ...]]:
    """The table a case runs on: its pinned one, or the legacy one of an older pin."""
    if defn.permissions is not None:
        return {message: tuple(grants) for message, grants in defn.permissions.items()}
    return legacy_table(defn.roles)


def grants_for(table: PermissionTable, message: str) -> tuple[str, ...]:
    """The grants of `message` (`DEFAULT_GRANTS` when the table has no row for it)."""
    return tuple(table.get(message, DEFAULT_GRANTS))


def _is_or_member(actor: StaffFacts, owner: Owner) -> bool:
    """The actor is the owner, or a member of the owning role (group ownership)."""
    if owner.kind == "user":
        return owner.key == actor.key
    return owner.key in actor.roles


def grant_applies(
    grant: str, actor: StaffFacts, *, case_owner: Owner, task_owner: Owner | None, has_task: bool
) -> bool:
    """Whether `grant` lets `actor` send the message (see the module docstring)."""
    if grant == "case_owner":
        return _is_or_member(actor, case_owner)
    if grant == "task_owner":
        return (
            has_task and task_owner is not None and task_owner == Owner(kind="user", key=actor.key)
        )
    if grant == "owning_role_member":
        return (
            has_task
            and task_owner is not None
            and task_owner.kind == "role"
            and task_owner.key in actor.roles
        )
    if grant.startswith(ROLE_GRANT_PREFIX):
        return grant[len(ROLE_GRANT_PREFIX) :] in actor.roles
    return False  # validation refuses any other grant; an unknown one grants nothing


def may_send(
    grants: Sequence[str],
    actor: StaffFacts,
    *,
    case_owner: Owner,
    task_owner: Owner | None,
    has_task: bool,
) -> bool:
    """Whether any of `grants` applies to `actor`."""
    return any(
        grant_applies(g, actor, case_owner=case_owner, task_owner=task_owner, has_task=has_task)
        for g in grants
    )


def describe_grants(
    grants: Sequence[str], *, case_owner: Owner, task_owner: Owner | None, has_task: bool
) -> str:
    """Who `grants` let send a message, in words, naming the owners of this case and task
    ("the case owner (user:alice), the task owner (none) or members of role team-leaders");
    a grant that cannot apply here (the owning role of a task a user owns) is left out."""
    parts: list[str] = []
    for g in grants:
        if g == "case_owner":
            parts.append(f"the case owner ({case_owner})")
        elif g == "task_owner" and has_task:
            who = task_owner if task_owner is not None and task_owner.kind == "user" else "none"
            parts.append(f"the task owner ({who})")
        elif g == "owning_role_member" and task_owner is not None and task_owner.kind == "role":
            parts.append(f"members of the owning role ({task_owner})")
        elif g.startswith(ROLE_GRANT_PREFIX):
            parts.append(f"members of role {g[len(ROLE_GRANT_PREFIX) :]}")
    if not parts:
        return "nobody"
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " or " + parts[-1]


def check_permitted(
    defn: CaseDefinition,
    message: str,
    actor: StaffFacts,
    *,
    case_owner: Owner,
    task_owner: Owner | None,
    has_task: bool,
    what: str,
) -> None:
    """Refuse (`not_permitted`) unless the case's permission table lets `actor` send `message`;
    the refusal names the rule (the message's row, or the default) and who may."""
    table = permission_table(defn)
    grants = grants_for(table, message)
    if may_send(grants, actor, case_owner=case_owner, task_owner=task_owner, has_task=has_task):
        return
    rule = f"permission rule {message}" if message in table else f"default rule for {message}"
    who = describe_grants(grants, case_owner=case_owner, task_owner=task_owner, has_task=has_task)
    listed = ", ".join(grants) or "none"
    raise RequestRefused(
        "not_permitted",
        f"user {actor.key!r} may not {what}: by the {rule} ({listed}) only {who} may",
    )
