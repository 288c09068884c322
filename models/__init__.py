"""Shared data shapes (pydantic): configuration, case state, messages.

Nothing in this package performs I/O or imports SQLAlchemy: the workflow sandbox imports it.
"""
