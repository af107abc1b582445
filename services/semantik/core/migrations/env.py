"""Alembic environment: runs on the connection the caller hands over (see semantik.core.db.migrate)."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from semantik.core.db.models import Base

connection: Connection | None = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through semantik.core.db.migrate, which passes a connection")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
