"""service mode: planned batches, stage timings, one active operation per collection

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTIVE_OPERATION = sa.text("status IN ('pending', 'running')")


def upgrade() -> None:
    # Operations cut off before this revision can never finish; close them so the unique index holds.
    op.execute(
        "UPDATE operations SET status = 'failed', error = 'interrupted by an upgrade' "
        "WHERE status IN ('pending', 'running')"
    )
    with op.batch_alter_table("operations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("extract_seconds", sa.Float(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("embed_seconds", sa.Float(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("store_seconds", sa.Float(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("queue", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("batches_total", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("batches_done", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("removed_paths", sa.JSON(), nullable=False, server_default="[]"))
        batch_op.add_column(sa.Column("request_key", sa.String(length=100), nullable=True))
    with op.batch_alter_table("operations", schema=None) as batch_op:
        for column in ("extract_seconds", "embed_seconds", "store_seconds", "batches_done", "removed_paths"):
            batch_op.alter_column(column, server_default=None)
        batch_op.create_unique_constraint("uq_operations_request_key", ["request_key"])
        batch_op.create_index(
            "uq_operations_one_active",
            ["collection_id"],
            unique=True,
            postgresql_where=ACTIVE_OPERATION,
            sqlite_where=ACTIVE_OPERATION,
        )
    op.create_table(
        "operation_batches",
        sa.Column("operation_id", sa.String(length=36), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("files", sa.JSON(), nullable=False),
        sa.Column("done", sa.Boolean(), nullable=False),
        sa.Column("committed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["operation_id"], ["operations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("operation_id", "number"),
    )


def downgrade() -> None:
    op.drop_table("operation_batches")
    with op.batch_alter_table("operations", schema=None) as batch_op:
        batch_op.drop_index("uq_operations_one_active")
        batch_op.drop_constraint("uq_operations_request_key", type_="unique")
        for column in (
            "request_key",
            "removed_paths",
            "batches_done",
            "batches_total",
            "queue",
            "store_seconds",
            "embed_seconds",
            "extract_seconds",
        ):
            batch_op.drop_column(column)
