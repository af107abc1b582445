"""Private PostgreSQL and Redis servers for tests, started by hack/ scripts, never by hand."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

HACK = Path(__file__).resolve().parents[2] / "hack"


def hack(script: str, command: str, directory: Path) -> str:
    result = subprocess.run(
        [str(HACK / script), command, str(directory)], capture_output=True, text=True, timeout=600
    )
    if result.returncode != 0:
        raise RuntimeError(f"hack/{script} {command} failed:\n{result.stderr}")
    return result.stdout.strip()


@contextmanager
def private_server(script: str, env_var: str) -> Iterator[str]:
    """The server `make test` started (its URL in env_var), or a new one for this session."""
    if url := os.environ.get(env_var):
        yield url
        return
    directory = Path(tempfile.mkdtemp(prefix=f"semantik-{script.removesuffix('.sh')}-"))
    directory.chmod(0o755)  # the postgres user must reach its data dir below
    try:
        yield hack(script, "start", directory / "server")
    finally:
        hack(script, "stop", directory / "server")
        shutil.rmtree(directory, ignore_errors=True)


def asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def fresh_postgres_database(server_url: str) -> str:
    """A new empty database on the server, so each test starts from nothing."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    connection = await asyncpg.connect(asyncpg_dsn(server_url))
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


async def drop_postgres_database(database_url: str) -> None:
    url = make_url(database_url)
    connection = await asyncpg.connect(asyncpg_dsn(url.set(database="semantik").render_as_string(False)))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')
    finally:
        await connection.close()
