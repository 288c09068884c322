"""The staff directory as the case sees it: the facts a check needs about the people a message
names, looked up when the message arrives (never pinned with the case's rules).

`DirectoryQuery` asks, `DirectoryFacts` answers: for each staff key asked about that the
directory knows, whether the account is disabled, the roles the person is a member of and the
absence (if any) that covers the day asked about. A key missing from `staff` is not in the
directory. "The day" is the case calendar's local date (`domain.planner.case_today`).

Pure pydantic: the workflow imports it (the local activity `directory_facts` returns it, and
`domain.staff.pinned_facts` builds the same facts from a pinned definition for cases whose
history predates the live directory).
"""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, Field

from models.bounds import MAX_ROLES, MAX_USERS, Key
from models.config import Absence


class _Shape(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DirectoryQuery(_Shape):
    """Who to look up (the actor, and any user a message would make an owner) and on which
    day (the case calendar's local date)."""

    keys: list[Key] = Field(max_length=MAX_USERS)
    on: date


class StaffFacts(_Shape):
    """One member of staff on `DirectoryFacts.on`."""

    key: Key
    disabled: bool = False
    # The roles this person is a member of on the day (key order).
    roles: list[Key] = Field(default_factory=list, max_length=MAX_ROLES)
    # The absence covering the day, if any.
    absence: Absence | None = None

    @property
    def available(self) -> bool:
        """Can be given work on the day: enabled and not absent."""
        return not self.disabled and self.absence is None


class DirectoryFacts(_Shape):
    """The answer to a `DirectoryQuery`: the known keys' facts (an unknown key is absent)."""

    on: date
    staff: dict[Key, StaffFacts] = Field(default_factory=dict, max_length=MAX_USERS)

    def get(self, key: Key) -> StaffFacts | None:
        return self.staff.get(key)
