"""Alembic's migrations of the store's schema (store/schema.py): `store.migrate` runs them;
docs/operations.md says how to add one."""
