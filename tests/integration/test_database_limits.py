"""On PostgreSQL a client that dies inside a transaction cannot stall everyone else: the server ends its
idle session and releases its locks, and a statement waiting on a lock fails instead of hanging.

The dead client is played by a session that opens a transaction, locks a row and then says nothing, which
is what the server sees of a gateway pod force-deleted mid-commit whose connection it never saw close."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from semantik.core.db.engine import create_engine
from tests.support.servers import drop_postgres_database, fresh_postgres_database


@pytest.fixture
async def database_url(postgres_url: str) -> AsyncIterator[str]:
    url = await fresh_postgres_database(postgres_url)
    engine = create_engine(url)
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE counters (id int PRIMARY KEY, value int NOT NULL)"))
        await connection.execute(text("INSERT INTO counters VALUES (1, 0)"))
    await engine.dispose()
    try:
        yield url
    finally:
        await drop_postgres_database(url)


async def _increment(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.execute(text("UPDATE counters SET value = value + 1 WHERE id = 1"))


async def _backend_alive(engine: AsyncEngine, pid: int) -> bool:
    """Whether the server still runs the session ``pid``; its exit is reported a moment after it ends."""
    deadline = time.monotonic() + 10
    while True:
        async with engine.connect() as connection:
            query = text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid")
            alive = (await connection.execute(query, {"pid": pid})).scalar_one() > 0
        if not alive or time.monotonic() > deadline:
            return alive
        await asyncio.sleep(0.1)


async def test_a_session_left_idle_in_its_transaction_is_ended_and_its_lock_released(database_url: str) -> None:
    vanished = create_engine(database_url, idle_in_transaction_seconds=1)
    survivor = create_engine(database_url, lock_timeout_seconds=20)
    try:
        connection = await vanished.connect()
        await connection.begin()
        backend = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        await connection.execute(text("SELECT value FROM counters WHERE id = 1 FOR UPDATE"))
        started = time.monotonic()
        # The lock is held now; the other client's update waits for the server to end the idle session.
        await _increment(survivor)
        assert time.monotonic() - started < 15
        # Asked from the server's side: what asyncpg raises on a connection the server ended varies with
        # when the termination notice arrives, and is not what this test is about.
        assert not await _backend_alive(survivor, backend)
        await connection.invalidate()
        async with survivor.connect() as reader:
            assert (await reader.execute(text("SELECT value FROM counters"))).scalar_one() == 1
    finally:
        await vanished.dispose()
        await survivor.dispose()


async def test_a_statement_waiting_on_a_held_lock_fails_after_the_lock_timeout(database_url: str) -> None:
    holder = create_engine(database_url)
    waiter = create_engine(database_url, lock_timeout_seconds=0.5)
    try:
        async with holder.connect() as connection:
            await connection.begin()
            await connection.execute(text("SELECT value FROM counters WHERE id = 1 FOR UPDATE"))
            with pytest.raises(DBAPIError, match="lock timeout"):
                await asyncio.wait_for(_increment(waiter), timeout=15)
            await connection.rollback()
        await _increment(waiter)  # the lock gone, the same statement goes through
        async with waiter.connect() as reader:
            assert (await reader.execute(text("SELECT value FROM counters"))).scalar_one() == 1
    finally:
        await holder.dispose()
        await waiter.dispose()
