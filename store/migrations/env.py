"""Alembic's environment for the store: run by `store.migrate`, which hands it a connection
(`config.attributes["connection"]`); there is no alembic.ini and no offline mode."""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from sqlalchemy.engine import Connection

from store.schema import Base, UtcDateTime


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | Literal[False]:
    """A migration is frozen when written: it spells the store's own column types in plain
    SQLAlchemy rather than importing today's store.schema."""
    if type_ == "type" and isinstance(obj, UtcDateTime):
        return "sa.DateTime(timezone=True)"
    return False


connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("run the store's migrations through store.migrate, which gives a connection")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite alters a table by copying it: migrations written with batch_alter_table work
    # on both backends.
    render_as_batch=True,
    compare_type=True,
    render_item=render_item,
)
with context.begin_transaction():
    context.run_migrations()
