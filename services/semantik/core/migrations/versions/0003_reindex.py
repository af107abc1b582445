"""reindex: per-collection generation, quantization, query embedder and hidden shadow rows

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 18:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("collections", schema=None) as batch_op:
        batch_op.add_column(sa.Column("quantization", sa.String(length=20), nullable=False, server_default="float32"))
        batch_op.add_column(sa.Column("generation", sa.Integer(), nullable=False, server_default="1"))
        batch_op.add_column(sa.Column("embedder_url", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("reindex_of_id", sa.Integer(), nullable=True))
        batch_op.create_unique_constraint("uq_collections_reindex_of_id", ["reindex_of_id"])
        batch_op.create_foreign_key(
            "fk_collections_reindex_of_id", "collections", ["reindex_of_id"], ["id"], ondelete="CASCADE"
        )
    with op.batch_alter_table("collections", schema=None) as batch_op:
        batch_op.alter_column("quantization", server_default=None)
        batch_op.alter_column("generation", server_default=None)


def downgrade() -> None:
    op.execute("DELETE FROM collections WHERE reindex_of_id IS NOT NULL")
    with op.batch_alter_table("collections", schema=None) as batch_op:
        batch_op.drop_constraint("fk_collections_reindex_of_id", type_="foreignkey")
        batch_op.drop_constraint("uq_collections_reindex_of_id", type_="unique")
        for column in ("reindex_of_id", "embedder_url", "generation", "quantization"):
            batch_op.drop_column(column)
