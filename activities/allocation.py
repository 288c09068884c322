"""Allocation: who owns a case or a task, by an allocation rule.

Rule kinds (docs/domain.md, "Allocation"): a named user; the case creator; a role (group
ownership); or one member of a role chosen by least open work or round robin. Unavailable
users (disabled, or absent on the day) are never chosen; when nobody is available the target
is reported unallocated with the reason, and the workflow falls back.

The choices (`choose_*`) are pure. `allocate` runs them inside one store transaction that
also records each answer, so a retried activity returns the answer already given instead of
choosing again (and never advances a round-robin counter twice).

Two decisions worth knowing:
- Within one request, targets allocated by the same rule get the same answer: a case raised
  under "least open work" and its tasks go to one adviser, and a round-robin turn is one
  case, not one task.
- "Open work" counts the tasks recorded as open, waiting or lagging on open cases, plus the
  tasks allocated in the last `PENDING_WINDOW` to cases not recorded yet, so a burst of
  cases raised together is spread over the team.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta

from sqlalchemy.orm import Session

from models.activities import AllocateInput, AllocateResult
from models.case import Owner
from models.config import AllocationRuleConfig, Configuration, Key, UserConfig
from store.repository import (
    lock_role,
    open_task_counts,
    save_allocation,
    set_round_robin,
    stored_allocations,
)

# How long an allocated case may go unrecorded and still count as its owner's open work.
PENDING_WINDOW = timedelta(hours=1)

Answer = tuple[Owner | None, str | None]  # the owner, or None and the reason


def unavailable_reason(key: Key, users: Mapping[Key, UserConfig], on: date) -> str | None:
    """Why user `key` cannot be chosen on `on`, or None when they can."""
    user = users.get(key)
    if user is None:
        return f"user {key} is not in the staff directory"
    if user.disabled:
        return f"user {key} is disabled"
    if not user.available_on(on):
        return f"user {key} is absent on {on.isoformat()}"
    return None


def choose_least_open_work(available: Sequence[Key], open_work: Mapping[Key, int]) -> Key:
    """The member with the fewest open tasks; ties go to the first key in order."""
    return min(available, key=lambda k: (open_work.get(k, 0), k))


def choose_round_robin(
    members: Sequence[Key], available: set[Key], next_index: int
) -> tuple[Key, int] | None:
    """Starting at position `next_index` (modulo the membership) of `members` (in key order),
    the first available member and the position to start from next time; None when nobody
    is available."""
    n = len(members)
    for step in range(n):
        position = (next_index + step) % n
        if members[position] in available:
            return members[position], position + 1
    return None


def allocate(
    session: Session, directory: Configuration, request: AllocateInput, now: datetime
) -> AllocateResult:
    """Answer every allocation request of `request` inside the caller's transaction, reading
    users and roles from `directory` (the latest configuration) and recording each answer."""
    # Lock the round-robin rows of every role involved, in key order (no deadlocks), before
    # reading the answers already given: a concurrent retry then sees this one's answers.
    strategy_roles = sorted(
        {r.rule.role for r in request.requests if r.rule.kind == "role_member" and r.rule.role}
    )
    next_index = {role: lock_role(session, role) for role in strategy_roles}
    turned: set[Key] = set()
    targets = [r.target for r in request.requests]
    stored = stored_allocations(session, request.case_reference, request.purpose, targets)

    users = {u.key: u for u in directory.users}
    roles = {r.key: r for r in directory.roles}
    by_rule: dict[Key, Answer] = {}

    def decide(rule: AllocationRuleConfig) -> Answer:
        if rule.kind in ("named_user", "case_creator"):
            key = rule.user if rule.kind == "named_user" else request.raised_by
            assert key is not None  # the model requires `user` for a named_user rule
            reason = unavailable_reason(key, users, request.on)
            return (None, reason) if reason else (Owner(kind="user", key=key), None)
        assert rule.role is not None  # the model requires `role` for these kinds
        role = roles.get(rule.role)
        if role is None:
            return None, f"role {rule.role} is not configured"
        if rule.kind == "role":
            return Owner(kind="role", key=role.key), None
        members = sorted(set(role.members))
        available = [m for m in members if unavailable_reason(m, users, request.on) is None]
        if not available:
            return None, f"no member of role {role.key} is available on {request.on.isoformat()}"
        if rule.strategy == "least_open_work":
            counts = open_task_counts(session, available, pending_since=now - PENDING_WINDOW)
            return Owner(kind="user", key=choose_least_open_work(available, counts)), None
        chosen = choose_round_robin(members, set(available), next_index[role.key])
        assert chosen is not None  # someone is available
        next_index[role.key] = chosen[1]
        turned.add(role.key)
        return Owner(kind="user", key=chosen[0]), None

    owners: dict[str, Owner] = {}
    unallocated: dict[str, str] = {}
    for req in request.requests:
        row = stored.get(req.target)
        if row is not None:
            owner = (
                Owner(kind=row.owner_kind, key=row.owner_key)
                if row.owner_kind and row.owner_key
                else None
            )
            reason = row.reason
        else:
            if req.rule.key not in by_rule:
                by_rule[req.rule.key] = decide(req.rule)
            owner, reason = by_rule[req.rule.key]
            save_allocation(
                session, request.case_reference, req.target, request.purpose, owner, reason, now
            )
        if owner is not None:
            owners[req.target] = owner
        else:
            unallocated[req.target] = reason or "nobody available"
    for role_key in sorted(turned):
        set_round_robin(session, role_key, next_index[role_key])
    return AllocateResult(owners=owners, unallocated=unallocated)
