"""The private servers the tests rely on are real and behave as the fault tests will need."""

from __future__ import annotations

import socket
from pathlib import Path

import asyncpg

from tests.support.servers import asyncpg_dsn, drop_postgres_database, fresh_postgres_database, hack


async def test_postgres_is_real_and_gives_fresh_databases(postgres_url: str) -> None:
    url = await fresh_postgres_database(postgres_url)
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        assert "PostgreSQL" in await connection.fetchval("select version()")
        assert await connection.fetchval("select count(*) from pg_tables where schemaname = 'public'") == 0
    finally:
        await connection.close()
    await drop_postgres_database(url)


def redis_command(url: str, *words: str) -> bytes:
    host, port = url.removeprefix("redis://").split("/")[0].split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        request = f"*{len(words)}\r\n" + "".join(f"${len(w)}\r\n{w}\r\n" for w in words)
        sock.sendall(request.encode())
        return sock.recv(1024)


def test_redis_is_real(redis_url: str) -> None:
    assert redis_command(redis_url, "PING") == b"+PONG\r\n"
    assert redis_command(redis_url, "SET", "semantik:test", "1") == b"+OK\r\n"
    assert redis_command(redis_url, "GET", "semantik:test") == b"$1\r\n1\r\n"


def test_redis_restart_keeps_its_data(tmp_path: Path) -> None:
    directory = tmp_path / "redis"
    url = hack("redis.sh", "start", directory)
    try:
        redis_command(url, "SET", "queued", "job-1")
        assert hack("redis.sh", "restart", directory) == url
        assert redis_command(url, "GET", "queued") == b"$5\r\njob-1\r\n"
    finally:
        hack("redis.sh", "stop", directory)
