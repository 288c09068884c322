"""The format of a stored configuration document, and the upcasters that bring a document of
an older format up to today's `models.config.Configuration`.

A case pins its configuration version for months, and `config_versions` keeps every version,
so a document stored by an earlier release must load after the models change. Each row
records the `format_version` it was written in (`CONFIG_FORMAT` when written). When a change
to `models.config` would stop an older document validating (a field moved or renamed, a
shape changed), raise `CONFIG_FORMAT` and register one upcaster from the previous format:
a pure function from the old document (parsed JSON) to the next format's document. Reading a
row applies the upcasters from its format up to `CONFIG_FORMAT`, then validates.

Format 1 is the document as every release so far wrote it; no field has moved yet, so the
registry is empty (tests/test_config_format.py shows an upcaster at work on a stored row).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from models.config import Configuration

Document = dict[str, Any]
Upcaster = Callable[[Document], Document]

CONFIG_FORMAT = 1

# format N -> the function that turns a format-N document into a format-(N+1) document.
UPCASTERS: dict[int, Upcaster] = {}


class UnknownConfigFormatError(ValueError):
    """A stored document of a format this code cannot read."""


def upcast(
    document: Document,
    stored_format: int,
    *,
    current: int = CONFIG_FORMAT,
    upcasters: Mapping[int, Upcaster] = UPCASTERS,
) -> Document:
    """`document`, written in `stored_format`, brought up to `current`."""
    if stored_format > current:
        raise UnknownConfigFormatError(
            f"configuration document format {stored_format} is newer than this code's "
            f"({current}): a newer release stored it"
        )
    for version in range(stored_format, current):
        step = upcasters.get(version)
        if step is None:
            raise UnknownConfigFormatError(
                f"no upcaster from configuration document format {version} to {version + 1}"
            )
        document = step(document)
    return document


def decode_configuration(
    document: str,
    stored_format: int,
    *,
    current: int = CONFIG_FORMAT,
    upcasters: Mapping[int, Upcaster] = UPCASTERS,
) -> Configuration:
    """The Configuration a stored row holds, whatever format it was written in."""
    if stored_format == current:
        return Configuration.model_validate_json(document)
    parsed = json.loads(document)
    return Configuration.model_validate(
        upcast(parsed, stored_format, current=current, upcasters=upcasters)
    )
