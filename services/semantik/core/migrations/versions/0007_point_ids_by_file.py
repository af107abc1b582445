"""point ids by file: new store collections make ids that carry their file

Existing collections keep scheme 1 (uuid5 of collection, path and chunk index) for as long as their store
collection lives: their chunks are found, replaced and deleted by those ids. A reindex builds a new store
collection, and with it the collection moves to scheme 2.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 15:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("collections", schema=None) as batch_op:
        batch_op.add_column(sa.Column("point_ids", sa.Integer(), nullable=False, server_default="1"))
    with op.batch_alter_table("collections", schema=None) as batch_op:
        batch_op.alter_column("point_ids", server_default=None)


def downgrade() -> None:
    # Earlier versions make scheme 1 ids only: a collection on scheme 2 needs a reindex after downgrading.
    with op.batch_alter_table("collections", schema=None) as batch_op:
        batch_op.drop_column("point_ids")
