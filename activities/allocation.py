"""Allocation: who owns a case or a task, by an allocation rule.

Rule kinds (docs/domain.md, "Allocation"): a named user; the case creator; a role (group
ownership); or one member of a role chosen by a strategy (least open work, round robin).
Unavailable users (disabled, or absent on the day) are never chosen; when nobody is available
the target is reported unallocated with the reason, and the workflow falls back.

Two tables, both of pure functions:
- `RULE_KINDS`: per rule kind, the answer from the staff directory alone, or for
  "role_member" a `Pick` (choose one of these available members) for a strategy.
- `STRATEGIES`: per strategy name, the facts it needs and its choice among a role's members.
  Adding a strategy is one pure function, one row here and its name in the Literal of
  `AllocationRuleConfig.strategy` (models/config.py).

`allocate` does the store I/O around them, inside one transaction that also records each
answer, so a retried activity returns the answer already given instead of choosing again
(and never advances a round-robin position twice).

"The day" is `AllocateInput.on`, as the caller gives it: this module never asks the clock
for a date (availability must use one definition of today, the caller's).

Two decisions worth knowing:
- Within one request, targets allocated by the same rule get the same answer: a case raised
  under "least open work" and its tasks go to one adviser, and a round-robin turn is one
  case, not one task.
- "Open work" counts the tasks recorded as open, waiting or lagging on open cases, plus the
  tasks allocated in the last `PENDING_WINDOW` to cases not recorded yet, so a burst of
  cases raised together is spread over the team.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence, Set
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

from models.activities import AllocateInput, AllocateResult
from models.case import Owner
from models.config import AllocationRuleConfig, Key, RoleConfig, UserConfig
from store.repository import (
    AllocationAnswer,
    Bind,
    lock_role,
    open_task_counts,
    save_allocation,
    set_round_robin,
    stored_allocations,
)

# How long an allocated case may go unrecorded and still count as its owner's open work.
PENDING_WINDOW = timedelta(hours=1)


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


# ------------------------------------------------------------------ strategies

# A fact a strategy may need; `allocate` gathers only the facts some strategy asks for.
Fact = Literal["open_work", "position"]


@dataclass(frozen=True)
class RoleFacts:
    """What a strategy knows when it chooses: each fact it declared, None otherwise."""

    # Per available member, their open work (see the module docstring).
    open_work: Mapping[Key, int] | None = None
    # The role's round-robin position to try next (modulo the membership).
    position: int | None = None


@dataclass(frozen=True)
class Choice:
    """A strategy's choice, and the role's new round-robin position when it moves it."""

    user: Key
    position: int | None = None


# members (in key order), the available ones (never empty), the facts -> the choice.
Choose = Callable[[Sequence[Key], Set[Key], RoleFacts], Choice]


@dataclass(frozen=True)
class Strategy:
    needs: frozenset[Fact]
    choose: Choose


def least_open_work(members: Sequence[Key], available: Set[Key], facts: RoleFacts) -> Choice:
    """The available member with the fewest open tasks; ties go to the first key in order."""
    assert facts.open_work is not None  # declared in STRATEGIES
    open_work = facts.open_work
    candidates = [m for m in members if m in available]
    return Choice(min(candidates, key=lambda k: (open_work.get(k, 0), k)))


def round_robin(members: Sequence[Key], available: Set[Key], facts: RoleFacts) -> Choice:
    """Starting at `facts.position` (modulo the membership) of `members`, the first available
    member, and the position after it (where the next turn starts)."""
    assert facts.position is not None  # declared in STRATEGIES
    n = len(members)
    for step in range(n):
        position = (facts.position + step) % n
        if members[position] in available:
            return Choice(members[position], position + 1)
    raise ValueError("round_robin needs an available member")


# Keyed by the names of `AllocationRuleConfig.strategy` (a test checks they agree).
STRATEGIES: dict[str, Strategy] = {
    "least_open_work": Strategy(frozenset({"open_work"}), least_open_work),
    "round_robin": Strategy(frozenset({"position"}), round_robin),
}


# ------------------------------------------------------------------ rule kinds


@dataclass(frozen=True)
class Directory:
    """What the rule kinds read: the staff directory, the day and who raised the case."""

    users: Mapping[Key, UserConfig]
    roles: Mapping[Key, RoleConfig]
    on: date
    raised_by: Key


@dataclass(frozen=True)
class Pick:
    """A role_member rule's question for its strategy: choose one of `available` (never
    empty) among the role's `members` (in key order)."""

    role: Key
    strategy: str
    members: tuple[Key, ...]
    available: frozenset[Key]


Outcome = AllocationAnswer | Pick
KindRule = Callable[[AllocationRuleConfig, Directory], Outcome]


def _user_answer(key: Key, d: Directory) -> AllocationAnswer:
    reason = unavailable_reason(key, d.users, d.on)
    return (
        AllocationAnswer(None, reason)
        if reason
        else AllocationAnswer(Owner(kind="user", key=key), None)
    )


def named_user(rule: AllocationRuleConfig, d: Directory) -> Outcome:
    """The named user, when available."""
    assert rule.user is not None  # the model requires `user` for a named_user rule
    return _user_answer(rule.user, d)


def case_creator(rule: AllocationRuleConfig, d: Directory) -> Outcome:
    """Whoever raised the case, when available."""
    return _user_answer(d.raised_by, d)


def role(rule: AllocationRuleConfig, d: Directory) -> Outcome:
    """The role itself (group ownership), when configured."""
    assert rule.role is not None  # the model requires `role` for this kind
    if rule.role not in d.roles:
        return AllocationAnswer(None, f"role {rule.role} is not configured")
    return AllocationAnswer(Owner(kind="role", key=rule.role), None)


def role_member(rule: AllocationRuleConfig, d: Directory) -> Outcome:
    """One available member of the role, chosen by the rule's strategy."""
    assert rule.role is not None and rule.strategy is not None  # required for this kind
    found = d.roles.get(rule.role)
    if found is None:
        return AllocationAnswer(None, f"role {rule.role} is not configured")
    members = tuple(sorted(set(found.members)))
    available = frozenset(m for m in members if unavailable_reason(m, d.users, d.on) is None)
    if not available:
        return AllocationAnswer(
            None, f"no member of role {found.key} is available on {d.on.isoformat()}"
        )
    return Pick(found.key, rule.strategy, members, available)


# Keyed by the names of `AllocationRuleConfig.kind` (a test checks they agree).
RULE_KINDS: dict[str, KindRule] = {
    "named_user": named_user,
    "case_creator": case_creator,
    "role": role,
    "role_member": role_member,
}


# ------------------------------------------------------------------ the transaction


def allocate(
    bind: Bind,
    users: Mapping[Key, UserConfig],
    roles: Mapping[Key, RoleConfig],
    request: AllocateInput,
    now: datetime,
) -> AllocateResult:
    """Answer every allocation request of `request` inside the caller's transaction, reading
    `users` (the staff directory now: disabled, absences) and `roles` (the configuration's
    roles with their directory members on `request.on`), and recording each answer."""
    # Lock the round-robin rows of every role a strategy chooses in, in key order (no
    # deadlocks), before reading the answers already given: a concurrent retry then sees
    # this one's answers, and choices among one role's members are serialised whatever the
    # strategy (two "least open work" choices must not both see the same emptiest member).
    strategy_roles = sorted(
        {r.rule.role for r in request.requests if r.rule.kind == "role_member" and r.rule.role}
    )
    positions = {role_key: lock_role(bind, role_key) for role_key in strategy_roles}
    turned: set[Key] = set()
    targets = [r.target for r in request.requests]
    stored = stored_allocations(bind, request.case_reference, request.purpose, targets)

    known = Directory(
        users=users,
        roles=roles,
        on=request.on,
        raised_by=request.raised_by,
    )

    def facts(pick: Pick, needs: frozenset[Fact]) -> RoleFacts:
        open_work = (
            open_task_counts(bind, sorted(pick.available), pending_since=now - PENDING_WINDOW)
            if "open_work" in needs
            else None
        )
        position = positions[pick.role] if "position" in needs else None
        return RoleFacts(open_work=open_work, position=position)

    def decide(rule: AllocationRuleConfig) -> AllocationAnswer:
        outcome = RULE_KINDS[rule.kind](rule, known)
        if isinstance(outcome, AllocationAnswer):
            return outcome
        strategy = STRATEGIES[outcome.strategy]
        choice = strategy.choose(outcome.members, outcome.available, facts(outcome, strategy.needs))
        if choice.position is not None:
            positions[outcome.role] = choice.position
            turned.add(outcome.role)
        return AllocationAnswer(Owner(kind="user", key=choice.user), None)

    by_rule: dict[Key, AllocationAnswer] = {}
    owners: dict[str, Owner] = {}
    unallocated: dict[str, str] = {}
    for req in request.requests:
        answer = stored.get(req.target)
        if answer is None:
            if req.rule.key not in by_rule:
                by_rule[req.rule.key] = decide(req.rule)
            answer = by_rule[req.rule.key]
            save_allocation(
                bind,
                request.case_reference,
                req.target,
                request.purpose,
                answer.owner,
                answer.reason,
                now,
            )
        if answer.owner is not None:
            owners[req.target] = answer.owner
        else:
            unallocated[req.target] = answer.reason or "nobody available"
    for role_key in sorted(turned):
        set_round_robin(bind, role_key, positions[role_key])
    return AllocateResult(owners=owners, unallocated=unallocated)
