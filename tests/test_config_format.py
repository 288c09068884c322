"""Stored configuration versions carry the format they were written in
(`config_versions.format_version`) and load after a model change through the upcasters of
store/config_format.py."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import Engine, update

from models.config import Configuration
from store import config_format
from store.config_format import CONFIG_FORMAT, UnknownConfigFormatError, upcast
from store.repository import configuration, latest_configuration, save_configuration
from store.schema import ConfigVersion


def _users_named_name(document: dict[str, Any]) -> dict[str, Any]:
    """An earlier format, for the test: each user's `display_name` was called `name`."""
    for user in document["users"]:
        user["name"] = user.pop("display_name")
    return document


def _display_name_moved(document: dict[str, Any]) -> dict[str, Any]:
    """The upcaster from that format: the field moved to `display_name`."""
    for user in document["users"]:
        user["display_name"] = user.pop("name")
    return document


def _store_as_older_format(engine: Engine, version: int, config: Configuration) -> None:
    old = _users_named_name(config.model_dump(mode="json"))
    with engine.begin() as conn:
        conn.execute(
            update(ConfigVersion)
            .where(ConfigVersion.id == version)
            .values(document=json.dumps(old), format_version=CONFIG_FORMAT - 1)
        )


def test_new_versions_are_written_in_the_current_format(
    engine: Engine, sample_config: Configuration
) -> None:
    version = save_configuration(engine, sample_config, "sample")
    with engine.connect() as conn:
        stored = conn.execute(
            ConfigVersion.__table__.select().where(ConfigVersion.id == version)
        ).one()
    assert stored.format_version == CONFIG_FORMAT
    assert configuration(engine, version) == sample_config


def test_a_version_of_an_older_format_loads_through_its_upcaster(
    engine: Engine, sample_config: Configuration, monkeypatch: pytest.MonkeyPatch
) -> None:
    version = save_configuration(engine, sample_config, "sample")
    _store_as_older_format(engine, version, sample_config)

    # Without the upcaster the old document is refused, saying which step is missing.
    with pytest.raises(UnknownConfigFormatError, match=f"from .* format {CONFIG_FORMAT - 1}"):
        configuration(engine, version)

    monkeypatch.setitem(config_format.UPCASTERS, CONFIG_FORMAT - 1, _display_name_moved)
    assert configuration(engine, version) == sample_config
    assert latest_configuration(engine) == (version, sample_config)


def test_a_document_of_a_newer_format_is_refused() -> None:
    with pytest.raises(UnknownConfigFormatError, match="newer than this code's"):
        upcast({}, CONFIG_FORMAT + 1)


def test_upcasters_chain_from_any_older_format() -> None:
    def rename(old: str, new: str) -> config_format.Upcaster:
        return lambda d: {new if k == old else k: v for k, v in d.items()}

    steps = {1: rename("a", "b"), 2: rename("b", "c")}
    assert upcast({"a": 1}, 1, current=3, upcasters=steps) == {"c": 1}
    assert upcast({"b": 1}, 2, current=3, upcasters=steps) == {"c": 1}
