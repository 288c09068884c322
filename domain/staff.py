"""Directory facts for a message: which staff keys a check needs, and the facts a pinned
definition gives for them (cases whose history predates the live directory).

The live facts come from the `directory_facts` local activity (`store.directory`); both are
`models.directory.DirectoryFacts`, so the checks in `domain.case_rules` have one shape to
read. Pure: the workflow sandbox imports it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any

from models.case import Owner
from models.config import Key
from models.definition import CaseDefinition
from models.directory import DirectoryFacts, StaffFacts


def keys_to_look_up(req: Any) -> list[Key]:
    """The staff keys a message's check asks the directory about: its actor, and every user a
    field of the request would make an owner (`to`, `owner`, ... : any field holding an
    `Owner` of kind user). Sorted, each once."""
    keys: set[Key] = set()
    actor = getattr(req, "actor", None)
    if isinstance(actor, str):
        keys.add(actor)
    fields = getattr(type(req), "model_fields", {})
    for name in fields:
        value = getattr(req, name, None)
        if isinstance(value, Owner) and value.kind == "user":
            keys.add(value.key)
    return sorted(keys)


def pinned_facts(defn: CaseDefinition, keys: Iterable[Key], on: date) -> DirectoryFacts:
    """The facts the definition's pinned `users` and `roles` give for `keys` on `on`: how a
    case decided before the directory was live (its recorded history replays this way)."""
    staff: dict[Key, StaffFacts] = {}
    for key in keys:
        user = defn.users.get(key)
        if user is None:
            continue
        absence = next((a for a in user.absences if a.first_day <= on <= a.last_day), None)
        roles = sorted(k for k, r in defn.roles.items() if key in r.members)
        staff[key] = StaffFacts(key=key, disabled=user.disabled, roles=roles, absence=absence)
    return DirectoryFacts(on=on, staff=staff)
