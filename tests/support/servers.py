"""Private PostgreSQL and Redis servers for tests, started by the hack/ scripts, never by hand.

`make test` starts one of each with hack/test-services.sh and passes their URLs in
SEMANTIK_TEST_POSTGRES_URL and SEMANTIK_TEST_REDIS_URL; a bare `pytest` starts its own for the session.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import asyncpg
import uvicorn
from sqlalchemy.engine import make_url
from starlette.types import ASGIApp

HACK = Path(__file__).resolve().parents[2] / "hack"


@contextmanager
def reaper(cleanup: str, *args: str, timeout: float = 120) -> Iterator[None]:
    """Run the bash `cleanup` (with `args` as $0, $1, ...) once this block ends or this process dies.

    The reaper waits for its stdin to close, which the kernel does when the test process ends however
    it ends (SIGKILL and a CI timeout included); it runs in a session of its own, so a Ctrl-C sent to
    pytest's process group leaves it alive to clean up.
    """
    process = subprocess.Popen(
        ["bash", "-c", f"cat >/dev/null; {cleanup}", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    assert process.stdin is not None
    try:
        yield
    finally:
        process.stdin.close()
        process.wait(timeout=timeout)


def hack(script: str, command: str, directory: Path) -> str:
    """Run `hack/<script> <command> <directory>` and return its stdout (a URL for start and restart)."""
    result = subprocess.run([str(HACK / script), command, str(directory)], capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"hack/{script} {command} {directory} failed:\n{result.stderr}")
    sys.stderr.write(result.stderr)  # install and start timings, shown by pytest with a failure
    return result.stdout.strip()


@contextmanager
def private_server_directory(script: str) -> Iterator[Path]:
    """A directory for one server of hack/<script>, stopped and removed when the block ends.

    The directory is made searchable by all (0755) because the postgres user runs PostgreSQL there,
    and pytest's own tmp_path (under a 0700 directory) is not.
    """
    root = Path(tempfile.mkdtemp(prefix=f"semantik-{script.removesuffix('.sh')}-"))
    root.chmod(0o755)
    directory = root / "server"
    with reaper('"$0" stop "$1" >/dev/null 2>&1; rm -rf "$2"', str(HACK / script), str(directory), str(root)):
        try:
            yield directory
        finally:
            hack(script, "stop", directory)


@contextmanager
def private_server(script: str, env_var: str) -> Iterator[str]:
    """URL of the server `make test` started (found in env_var), or of a new one for this block."""
    if url := os.environ.get(env_var):
        yield url
        return
    with private_server_directory(script) as directory:
        yield hack(script, "start", directory)


def asyncpg_dsn(url: str) -> str:
    """The SQLAlchemy URL `postgresql+asyncpg://...` as the plain `postgresql://...` asyncpg takes."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def fresh_postgres_database(server_url: str) -> str:
    """URL of a new empty database on the server, so each test module starts from nothing.

    Drop it with drop_postgres_database when done.
    """
    name = f"t_{uuid.uuid4().hex[:16]}"
    connection = await asyncpg.connect(asyncpg_dsn(server_url))
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


async def drop_postgres_database(database_url: str) -> None:
    """Drop a database made by fresh_postgres_database, closing any connection still open to it."""
    url = make_url(database_url)
    maintenance = url.set(database="postgres").render_as_string(hide_password=False)
    connection = await asyncpg.connect(asyncpg_dsn(maintenance))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')
    finally:
        await connection.close()


@asynccontextmanager
async def serve_in_process(app: ASGIApp, *, start_timeout: float = 60) -> AsyncIterator[str]:
    """`app` served by uvicorn on a free loopback port in this event loop; yields its base URL. A real
    socket, so Content-Length, chunked uploads and other processes' clients are real."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    server = uvicorn.Server(
        uvicorn.Config(app, port=port, log_level="warning", ws="websockets-sansio", ws_max_size=64 * 1024)
    )
    serving = asyncio.create_task(server.serve())
    try:
        for _ in range(int(start_timeout / 0.05)):  # uvicorn sets a flag, not an event
            if server.started or serving.done():
                break
            await asyncio.sleep(0.05)
        assert server.started, f"the app did not start in {start_timeout:.0f} s"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving
