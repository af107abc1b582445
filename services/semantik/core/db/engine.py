"""Engine, sessions and migrations for the metadata database (SQLite or PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.ext.asyncio import AsyncSession as AsyncSession

from semantik.core.settings import IDLE_IN_TRANSACTION_SECONDS, LOCK_TIMEOUT_SECONDS

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def create_engine(
    url: str,
    *,
    lock_timeout_seconds: float = LOCK_TIMEOUT_SECONDS,
    idle_in_transaction_seconds: float = IDLE_IN_TRANSACTION_SECONDS,
) -> AsyncEngine:
    """An engine for `url`. On PostgreSQL every session carries two limits, so a client killed inside a
    transaction (a gateway pod force-deleted, its connection never seen to close) cannot stall the rest:
    the server ends that session once it has sat idle in its transaction for `idle_in_transaction_seconds`,
    releasing its locks, and a statement waiting on a lock fails after `lock_timeout_seconds` (a 500 the
    worker retries) instead of hanging."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
            # WAL lets a reader (the gateway) work while the indexer writes; foreign keys make
            # ON DELETE CASCADE real.
            cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    limits = {
        "lock_timeout": str(round(lock_timeout_seconds * 1000)),
        "idle_in_transaction_session_timeout": str(round(idle_in_transaction_seconds * 1000)),
    }
    return create_async_engine(
        url, pool_pre_ping=True, pool_size=10, max_overflow=10, connect_args={"server_settings": limits}
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def _alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


async def migrate(engine: AsyncEngine) -> None:
    """Bring the schema to the newest revision; safe to call on every start."""

    def upgrade(connection: Connection) -> None:
        command.upgrade(_alembic_config(connection), "head")

    async with engine.begin() as connection:
        await connection.run_sync(upgrade)
