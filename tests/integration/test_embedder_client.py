"""The HTTP client against a real `semantik embedder` process: same vectors, retries, and the pipeline on it."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from semantik.core.embedding import TextKind
from semantik.core.embedding.client import HttpEmbedder
from semantik.core.errors import BackendUnavailableError
from tests.integration.conftest import CountingEmbedder
from tests.support.corpus import COMMON_LICENSES, KEYS_MD


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbedderProcess:
    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [sys.executable, "-m", "semantik.cli", "embedder", "--port", str(self.port)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)


@pytest.fixture
def service() -> Iterator[EmbedderProcess]:
    process = EmbedderProcess(free_port())
    process.start()
    try:
        yield process
    finally:
        process.kill()


async def test_client_gets_the_same_vectors_as_in_process(service: EmbedderProcess, embedder: CountingEmbedder) -> None:
    texts = [f"paragraph {i}: " + "the licensee must keep the notices " * (i % 17 + 1) for i in range(300)]
    client = await HttpEmbedder.connect(service.url)
    try:
        assert (client.model_name, client.dimension) == (embedder.model_name, 384)
        remote = await client.embed(texts)
        query = await client.embed(["keys"], TextKind.QUERY)
    finally:
        await client.aclose()
    local = await embedder.embed(texts)
    assert remote.vectors.shape == (300, 384)
    assert (remote.vectors * local.vectors).sum(axis=1).min() >= 0.99999
    assert remote.tokens == local.tokens
    assert query.vectors.shape == (1, 384)


async def test_client_retries_until_the_service_is_back(tmp_path: Path) -> None:
    process = EmbedderProcess(free_port())
    try:
        connecting = asyncio.create_task(HttpEmbedder.connect(process.url, deadline=120))
        await asyncio.sleep(1.0)  # the client is already retrying connection errors
        process.start()
        client = await connecting
        first = await client.embed(["before the crash"])

        process.kill()
        embedding = asyncio.create_task(client.embed(["after the crash"]))
        await asyncio.sleep(1.0)
        process.start()
        second = await embedding
        await client.aclose()
    finally:
        process.kill()
    assert first.vectors.shape == second.vectors.shape == (1, 384)


async def test_client_gives_up_with_a_clear_error_after_its_deadline() -> None:
    with pytest.raises(BackendUnavailableError, match="did not answer"):
        await HttpEmbedder.connect(f"http://127.0.0.1:{free_port()}", deadline=1.5)


def test_the_pipeline_indexes_and_searches_through_the_service(service: EmbedderProcess, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    shutil.copyfile(COMMON_LICENSES / "Apache-2.0", folder / "LICENSE")
    (folder / "keys.md").write_text(KEYS_MD)
    env = {**os.environ, "SEMANTIK_DATA_DIR": str(tmp_path / "data"), "SEMANTIK_EMBEDDER_URL": service.url}
    env.pop("SEMANTIK_DATABASE_URL", None)

    def semantik(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "semantik.cli", *args], env=env, capture_output=True, text=True)

    indexed = semantik("index", str(folder), "--collection", "remote")
    assert indexed.returncode == 0, indexed.stderr
    found = semantik("search", "remote", "how do I rotate API keys", "--json")
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)["hits"][0]["path"] == "keys.md"
    metrics = httpx.get(f"{service.url}/metrics").text
    texts = next(line for line in metrics.splitlines() if line.startswith("semantik_embedder_texts_total"))
    assert float(texts.split()[-1]) > 10
