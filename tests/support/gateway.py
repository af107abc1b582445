"""A service-mode gateway in the test's own process, as workers and the operator see it: over a fresh
PostgreSQL database and the test Redis, with an internal token, reached through ASGI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from semantik.core.context import Semantik
from semantik.core.embedding import Embedder
from semantik.core.settings import Settings
from semantik.gateway.app import create_app
from tests.support.servers import drop_postgres_database, fresh_postgres_database


@asynccontextmanager
async def service_gateway(
    tmp_path: Path, postgres_url: str, redis_url: str, embedder: Embedder, *, internal_token: str
) -> AsyncIterator[tuple[httpx.AsyncClient, Semantik]]:
    """A client of the gateway and the gateway's Semantik; sources may come from anywhere under `tmp_path`.
    The database is dropped after."""
    database = await fresh_postgres_database(postgres_url)
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=database,
        mode="service",
        redis_url=redis_url,
        internal_token=internal_token,
        source_roots=[tmp_path],
    )
    app = create_app(settings, embedder=embedder)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
                yield client, app.state.semantik
    finally:
        await drop_postgres_database(database)
