"""Workflow definitions: deterministic code only (no I/O, no SQLAlchemy)."""
