"""Alembic migrations run on SQLite and PostgreSQL, go down and up again, and match the models."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, Table, insert, inspect, select, text
from sqlalchemy.engine import Connection, make_url

from semantik.core.db.engine import _alembic_config, create_engine, migrate
from semantik.core.db.models import Base, Collection
from semantik.core.pipeline.ids import LATEST_SCHEME, PointIdScheme
from semantik.core.settings import Settings
from tests.support.servers import drop_postgres_database, fresh_postgres_database

TABLES = {"alembic_version", "api_keys", "audit_events", "collections", "documents", "operation_batches", "operations"}


async def test_migrations_upgrade_downgrade_and_match_the_models(settings: Settings) -> None:
    engine = create_engine(settings.resolved_database_url)
    try:
        await migrate(engine)
        await migrate(engine)  # a second start finds nothing to do

        async with engine.connect() as connection:
            assert set(await connection.run_sync(lambda c: inspect(c).get_table_names())) == TABLES
            diff = await connection.run_sync(lambda c: compare_metadata(MigrationContext.configure(c), Base.metadata))
            assert diff == [], "the models changed without a migration"

        def downgrade(connection: Connection) -> None:
            command.downgrade(_alembic_config(connection), "base")

        async with engine.begin() as connection:
            await connection.run_sync(downgrade)
            assert set(await connection.run_sync(lambda c: inspect(c).get_table_names())) == {"alembic_version"}
        await migrate(engine)
        async with engine.connect() as connection:
            assert set(await connection.run_sync(lambda c: inspect(c).get_table_names())) == TABLES
    finally:
        await engine.dispose()


async def test_collections_from_before_id_schemes_keep_their_named_ids_and_new_ones_get_ids_by_file(
    settings: Settings,
) -> None:
    engine = create_engine(settings.resolved_database_url)
    now = datetime.now(UTC)
    row = {
        "name": "old",
        "description": "",
        "include": [],
        "exclude": [],
        "model_name": "m",
        "dimension": 384,
        "chunk_strategy": "tokens",
        "chunk_size": 200,
        "chunk_overlap": 20,
        "quantization": "float32",
        "qdrant_collection": "semantik-old",
        "generation": 1,
        "language": "english",
        "sparse_terms": 0,
        "sparse_chunks": 0,
        "created_at": now,
        "updated_at": now,
    }

    def before_schemes(connection: Connection) -> None:
        command.upgrade(_alembic_config(connection), "0006")
        table = Table("collections", MetaData(), autoload_with=connection)
        assert "point_ids" not in table.c
        connection.execute(table.insert().values({k: v for k, v in row.items() if k in table.c}))

    try:
        async with engine.begin() as connection:
            await connection.run_sync(before_schemes)
        await migrate(engine)
        async with engine.begin() as connection:
            await connection.execute(
                insert(Collection).values({**row, "name": "new", "qdrant_collection": "semantik-new"})
            )
            schemes = dict((await connection.execute(select(Collection.name, Collection.point_ids))).all())
        assert schemes == {"old": PointIdScheme.NAMED, "new": LATEST_SCHEME}
    finally:
        await engine.dispose()


async def test_migrations_run_as_an_ordinary_owner_of_the_database(postgres_url: str) -> None:
    # The tests' role is what production's is: no superuser, so a permission mistake shows here.
    database_url = await fresh_postgres_database(postgres_url)
    engine = create_engine(database_url)
    try:
        await migrate(engine)
        async with engine.connect() as connection:
            role = (
                await connection.execute(
                    text("SELECT rolsuper, rolcreaterole FROM pg_roles WHERE rolname = current_user")
                )
            ).one()
            assert tuple(role) == (False, False)
            owners = set(
                (await connection.execute(text("SELECT tableowner FROM pg_tables WHERE schemaname = 'public'")))
                .scalars()
                .all()
            )
            assert owners == {make_url(database_url).username}
    finally:
        await engine.dispose()
        await drop_postgres_database(database_url)
