"""hybrid search: the keyword index's language and the chunk-length statistics BM25 normalises by

Existing collections keep sparse_language NULL: their store holds only an unnamed dense vector until a
backfill copies it into the named layout with sparse vectors made from the stored chunk text.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 13:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("collections", schema=None) as batch_op:
        batch_op.add_column(sa.Column("language", sa.String(length=20), nullable=False, server_default="english"))
        batch_op.add_column(sa.Column("sparse_language", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("sparse_terms", sa.BigInteger(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("sparse_chunks", sa.BigInteger(), nullable=False, server_default="0"))
    with op.batch_alter_table("collections", schema=None) as batch_op:
        for column in ("language", "sparse_terms", "sparse_chunks"):
            batch_op.alter_column(column, server_default=None)


def downgrade() -> None:
    # The store collections stay in the named layout, which earlier versions cannot search: downgrading
    # past this revision needs the store restored from a backup taken before the upgrade.
    with op.batch_alter_table("collections", schema=None) as batch_op:
        for column in ("sparse_chunks", "sparse_terms", "sparse_language", "language"):
            batch_op.drop_column(column)
