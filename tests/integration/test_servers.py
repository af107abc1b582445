"""The private servers the tests rely on are real, and behave as the fault tests will need."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import asyncpg
import pytest

from tests.support.servers import (
    asyncpg_dsn,
    drop_postgres_database,
    fresh_postgres_database,
    hack,
    private_server_directory,
)


async def test_postgres_is_real_and_gives_fresh_databases(postgres_url: str) -> None:
    url = await fresh_postgres_database(postgres_url)
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        assert "PostgreSQL" in await connection.fetchval("select version()")
        assert await connection.fetchval("select count(*) from pg_tables where schemaname = 'public'") == 0
        name = await connection.fetchval("select current_database()")
    finally:
        await connection.close()
    await drop_postgres_database(url)
    server = await asyncpg.connect(asyncpg_dsn(postgres_url))
    try:
        assert await server.fetchval("select count(*) from pg_database where datname = $1", name) == 0
    finally:
        await server.close()


async def test_postgres_keeps_committed_rows_through_a_crash_and_a_restart() -> None:
    with private_server_directory("postgres.sh") as directory:
        url = hack("postgres.sh", "start", directory)
        assert hack("postgres.sh", "start", directory) == url  # idempotent
        connection = await asyncpg.connect(asyncpg_dsn(url))
        await connection.execute("create table jobs (id int primary key)")
        await connection.execute("insert into jobs values (1)")
        await connection.close()

        hack("postgres.sh", "kill9", directory)
        with pytest.raises(ConnectionRefusedError):
            await asyncpg.connect(asyncpg_dsn(url))
        assert hack("postgres.sh", "start", directory) == url
        assert hack("postgres.sh", "restart", directory) == url

        connection = await asyncpg.connect(asyncpg_dsn(url))
        try:
            assert await connection.fetchval("select count(*) from jobs") == 1
        finally:
            await connection.close()


def redis_command(url: str, *words: str, authenticate: bool = True) -> bytes:
    """The raw reply to one command, sent after AUTH with the URL's password (unless told not to)."""
    parts = urlsplit(url)
    assert parts.hostname and parts.port
    commands = [("AUTH", parts.password)] if authenticate and parts.password else []
    commands.append(words)
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        reply = b""
        for command in commands:
            request = f"*{len(command)}\r\n" + "".join(f"${len(w)}\r\n{w}\r\n" for w in command)
            sock.sendall(request.encode())
            reply = sock.recv(1024)
        return reply


def test_redis_is_real(redis_url: str) -> None:
    assert redis_command(redis_url, "PING") == b"+PONG\r\n"
    assert redis_command(redis_url, "SET", "semantik:test", "1") == b"+OK\r\n"
    assert redis_command(redis_url, "GET", "semantik:test") == b"$1\r\n1\r\n"


def test_redis_refuses_a_client_without_the_password(redis_url: str) -> None:
    # The test server is set up as the chart's: requirepass and protected mode, the URL carries the password.
    assert urlsplit(redis_url).password
    assert redis_command(redis_url, "GET", "semantik:test", authenticate=False).startswith(b"-NOAUTH")
    wrong = redis_url.replace(f":{urlsplit(redis_url).password}@", ":wrong@")
    assert redis_command(wrong, "PING").startswith(b"-NOAUTH")  # the AUTH before it was refused


def test_redis_keeps_queued_jobs_through_a_restart_and_a_crash() -> None:
    with private_server_directory("redis.sh") as directory:
        url = hack("redis.sh", "start", directory)
        assert redis_command(url, "SET", "queued", "job-1") == b"+OK\r\n"
        assert hack("redis.sh", "restart", directory) == url
        assert redis_command(url, "GET", "queued") == b"$5\r\njob-1\r\n"

        hack("redis.sh", "kill9", directory)
        with pytest.raises((ConnectionRefusedError, ConnectionResetError)):
            redis_command(url, "PING")
        assert hack("redis.sh", "start", directory) == url
        assert redis_command(url, "GET", "queued") == b"$5\r\njob-1\r\n"
