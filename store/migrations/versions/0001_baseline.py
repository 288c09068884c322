"""Baseline: the schema main created with `Base.metadata.create_all` before Alembic owned it.

Revision ID: 0001
Revises:
Create Date: 2026-12-01 12:05:39.573823
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A database made by create_all before migrations existed has these tables already
    # (with their indexes): create only the ones it lacks, so it joins the migrations.
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "allocations" not in existing:
        op.create_table(
            "allocations",
            sa.Column("case_reference", sa.String(length=200), nullable=False),
            sa.Column("target", sa.String(length=200), nullable=False),
            sa.Column("purpose", sa.String(length=200), nullable=False),
            sa.Column("owner_kind", sa.String(length=8), nullable=True),
            sa.Column("owner_key", sa.String(length=200), nullable=True),
            sa.Column("reason", sa.Text(), nullable=True),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("case_reference", "target", "purpose"),
        )
        with op.batch_alter_table("allocations", schema=None) as batch_op:
            batch_op.create_index(
                "ix_allocations_owner_created", ["owner_key", "created_at"], unique=False
            )

    if "case_audit" not in existing:
        op.create_table(
            "case_audit",
            sa.Column("case_reference", sa.String(length=200), nullable=False),
            sa.Column("seq", sa.Integer(), nullable=False),
            sa.Column("at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("actor", sa.String(length=200), nullable=False),
            sa.Column("action", sa.String(length=64), nullable=False),
            sa.Column("outcome", sa.String(length=16), nullable=False),
            sa.Column("request_id", sa.String(length=200), nullable=True),
            sa.Column("task_key", sa.String(length=200), nullable=True),
            sa.Column("detail", sa.Text(), nullable=False),
            sa.PrimaryKeyConstraint("case_reference", "seq"),
        )

    if "case_references" not in existing:
        op.create_table(
            "case_references",
            sa.Column("reference", sa.String(length=200), nullable=False),
            sa.Column("first_run_id", sa.String(length=64), nullable=False),
            sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("reference"),
        )

    if "cases" not in existing:
        op.create_table(
            "cases",
            sa.Column("reference", sa.String(length=200), nullable=False),
            sa.Column("topic", sa.String(length=200), nullable=False),
            sa.Column("workflow_type", sa.String(length=200), nullable=False),
            sa.Column("workflow_version", sa.Integer(), nullable=False),
            sa.Column("config_version", sa.Integer(), nullable=False),
            sa.Column("status", sa.String(length=32), nullable=False),
            sa.Column("owner_kind", sa.String(length=8), nullable=False),
            sa.Column("owner_key", sa.String(length=200), nullable=False),
            sa.Column("created_by", sa.String(length=200), nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
            sa.Column("close_reason", sa.Text(), nullable=True),
            sa.Column("sla_status", sa.String(length=32), nullable=False),
            sa.Column("case_due_at", sa.DateTime(timezone=True), nullable=True),
            sa.Column("revision", sa.Integer(), nullable=False),
            sa.PrimaryKeyConstraint("reference"),
        )
        with op.batch_alter_table("cases", schema=None) as batch_op:
            batch_op.create_index("ix_cases_owner", ["owner_kind", "owner_key"], unique=False)
            batch_op.create_index("ix_cases_status", ["status"], unique=False)

    if "config_versions" not in existing:
        op.create_table(
            "config_versions",
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("content_hash", sa.String(length=64), nullable=False),
            sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("source", sa.String(length=200), nullable=False),
            sa.Column("document", sa.Text(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("content_hash"),
        )
        with op.batch_alter_table("config_versions", schema=None) as batch_op:
            batch_op.create_index(
                batch_op.f("ix_config_versions_loaded_at"), ["loaded_at"], unique=False
            )

    if "inbox" not in existing:
        op.create_table(
            "inbox",
            sa.Column(
                "id",
                sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                autoincrement=True,
                nullable=False,
            ),
            sa.Column("recipient", sa.String(length=200), nullable=False),
            sa.Column("case_reference", sa.String(length=200), nullable=False),
            sa.Column("case_topic", sa.String(length=200), nullable=False),
            sa.Column("task_key", sa.String(length=200), nullable=False),
            sa.Column("task_name", sa.String(length=500), nullable=False),
            sa.Column("indicator", sa.String(length=32), nullable=False),
            sa.Column("occurrence", sa.Integer(), nullable=False),
            sa.Column("indicator_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("task_due_at", sa.DateTime(timezone=True), nullable=True),
            sa.Column("task_owner", sa.String(length=210), nullable=True),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint(
                "case_reference",
                "task_key",
                "indicator",
                "occurrence",
                "recipient",
                name="uq_inbox_alert",
            ),
        )
        with op.batch_alter_table("inbox", schema=None) as batch_op:
            batch_op.create_index("ix_inbox_recipient_read", ["recipient", "read_at"], unique=False)

    if "round_robin" not in existing:
        op.create_table(
            "round_robin",
            sa.Column("role", sa.String(length=200), nullable=False),
            sa.Column("next_index", sa.Integer(), nullable=False),
            sa.PrimaryKeyConstraint("role"),
        )

    if "case_tasks" not in existing:
        op.create_table(
            "case_tasks",
            sa.Column("case_reference", sa.String(length=200), nullable=False),
            sa.Column("task_key", sa.String(length=200), nullable=False),
            sa.Column("name", sa.String(length=500), nullable=False),
            sa.Column("status", sa.String(length=32), nullable=False),
            sa.Column("mandatory", sa.Boolean(), nullable=False),
            sa.Column("owner_kind", sa.String(length=8), nullable=True),
            sa.Column("owner_key", sa.String(length=200), nullable=True),
            sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
            sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
            sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
            sa.Column("sla_status", sa.String(length=32), nullable=True),
            sa.ForeignKeyConstraint(["case_reference"], ["cases.reference"], ondelete="CASCADE"),
            sa.PrimaryKeyConstraint("case_reference", "task_key"),
        )
        with op.batch_alter_table("case_tasks", schema=None) as batch_op:
            batch_op.create_index(
                "ix_case_tasks_owner_status", ["owner_kind", "owner_key", "status"], unique=False
            )


def downgrade() -> None:
    with op.batch_alter_table("case_tasks", schema=None) as batch_op:
        batch_op.drop_index("ix_case_tasks_owner_status")

    op.drop_table("case_tasks")
    op.drop_table("round_robin")
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.drop_index("ix_inbox_recipient_read")

    op.drop_table("inbox")
    with op.batch_alter_table("config_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_config_versions_loaded_at"))

    op.drop_table("config_versions")
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_index("ix_cases_status")
        batch_op.drop_index("ix_cases_owner")

    op.drop_table("cases")
    op.drop_table("case_references")
    op.drop_table("case_audit")
    with op.batch_alter_table("allocations", schema=None) as batch_op:
        batch_op.drop_index("ix_allocations_owner_created")

    op.drop_table("allocations")
