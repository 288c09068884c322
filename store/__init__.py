"""The relational store (SQLAlchemy 2): configuration versions, the alert inbox, the reporting
copy of cases and tasks, and allocation answers. SQLite by default, PostgreSQL in production.

Never imported by workflow code (tests/test_workflow_imports.py guards it).
"""
