"""How to reach a member of staff: the one place alert channels look people up.

Every lookup the channels make (email address, which channels, the digest time, the name an
alert greets them by) goes through `RecipientDirectory.contact`, answered from the live staff
directory in the store (`store.directory`: `staff add --email --channels --digest-at`, or the
import's columns), so a changed address or preference applies to the next alert.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import time
from typing import Protocol

from sqlalchemy import Engine

from models.config import CHANNELS, Channel, Key
from store.directory import DirectoryCache, DirectorySnapshot


@dataclass(frozen=True)
class Contact:
    """How one person's alerts reach them besides the inbox."""

    key: Key
    display_name: str
    email: str | None
    channels: frozenset[Channel]
    # Ambers by email once a day at this UK local time, as one digest (None: one by one).
    digest_at: time | None
    disabled: bool = False


class RecipientDirectory(Protocol):
    def contact(self, user_key: Key) -> Contact | None:
        """The contact details of `user_key`, or None for a key the directory does not know
        (such an alert stays in the inbox only)."""
        ...


class StaffDirectoryContacts:
    """Contacts from a snapshot of the live staff directory (`store.directory`)."""

    def __init__(self, snapshot: DirectorySnapshot) -> None:
        self._staff = snapshot.staff

    def contact(self, user_key: Key) -> Contact | None:
        member = self._staff.get(user_key)
        if member is None:
            return None
        return Contact(
            key=member.key,
            display_name=member.display_name,
            email=member.email,
            channels=frozenset(c for c in CHANNELS if c in member.alert_channels()),
            digest_at=member.digest_time(),
            disabled=member.disabled,
        )


def directory_for(staff: DirectoryCache | Engine) -> Callable[[], RecipientDirectory]:
    """The directory to consult for each batch of alerts: the worker's copy of the live staff
    directory (`DirectoryCache`, re-checked at most every ttl seconds, so a herd of alerts
    costs no reads), as it is when the alert goes out."""
    cache = staff if isinstance(staff, DirectoryCache) else DirectoryCache(staff)
    built: dict[int, StaffDirectoryContacts] = {}

    def current() -> RecipientDirectory:
        snapshot = cache.snapshot()
        found = built.get(snapshot.version)
        if found is None:
            built.clear()
            found = built[snapshot.version] = StaffDirectoryContacts(snapshot)
        return found

    return current
