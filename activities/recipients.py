"""How to reach a member of staff: the one place alert channels look people up.

Every lookup the channels make (email address, which channels, the digest time, the name an
alert greets them by) goes through `RecipientDirectory.contact`. Today the directory is the
configuration's `users` section (`ConfigDirectory`); a directory kept in the store replaces
it by implementing the same one method and being returned by `directory_for`.
"""

from __future__ import annotations

import time as clock
from collections.abc import Callable
from dataclasses import dataclass
from datetime import time
from typing import Protocol

from sqlalchemy import Engine

from models.config import Channel, Configuration, Key
from store import repository


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


class ConfigDirectory:
    """The staff directory of a configuration."""

    def __init__(self, config: Configuration) -> None:
        self._users = {u.key: u for u in config.users}

    def contact(self, user_key: Key) -> Contact | None:
        user = self._users.get(user_key)
        if user is None:
            return None
        return Contact(
            key=user.key,
            display_name=user.display_name,
            email=user.email,
            channels=frozenset(user.channels),
            digest_at=user.digest_at,
            disabled=user.disabled,
        )


def directory_for(engine: Engine, ttl: float = 2.0) -> Callable[[], RecipientDirectory]:
    """The directory to consult for each batch of alerts, from the store behind `engine`:
    today the configuration in force. Which version is in force is read at most every `ttl`
    seconds (every alert asks; on SQLite each read queues for the write lock); a stored
    configuration never changes, so the parsed one is kept per version."""
    cache: dict[int, ConfigDirectory] = {}
    checked: list[tuple[float, int | None]] = []

    def version_in_force() -> int | None:
        now = clock.monotonic()
        if checked and now - checked[0][0] < ttl:
            return checked[0][1]
        version = repository.latest_configuration_version(engine)
        checked[:] = [(now, version)]
        return version

    def current() -> RecipientDirectory:
        version = version_in_force()
        if version is None:
            raise repository.NoConfigurationError(repository.NO_CONFIGURATION)
        found = cache.get(version)
        if found is None:
            cache.clear()
            found = cache[version] = ConfigDirectory(repository.configuration(engine, version))
        return found

    return current
