"""collection owner: the namespaced Collection a cluster-mode collection belongs to

Two Collections in different namespaces can map to one store name (`team` + `a-docs` and `team-a` +
`docs` both make `team-a-docs`). The owner, `<namespace>/<name>`, is set by the operator's first ensure and
checked on every later call, so the second Collection is refused instead of sharing, or dropping, the
first one's index. Existing collections have none until the operator next ensures them.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 01:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("collections", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("collections", schema=None) as batch_op:
        batch_op.drop_column("owner")
