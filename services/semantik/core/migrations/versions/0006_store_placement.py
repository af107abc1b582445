"""store placement: shards, replicas and on-disk storage of a collection's store collections

Existing collections keep NULL in all three: the Qdrant server's defaults, which they were made with.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 20:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("collections", schema=None) as batch_op:
        batch_op.add_column(sa.Column("shards", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("replication_factor", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("on_disk", sa.Boolean(), nullable=True))


def downgrade() -> None:
    # The store collections keep the layout they were made with; only the record of it goes.
    with op.batch_alter_table("collections", schema=None) as batch_op:
        for column in ("on_disk", "replication_factor", "shards"):
            batch_op.drop_column(column)
