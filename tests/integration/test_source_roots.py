"""Sources only from allowed roots: the REST API refuses a folder that does not resolve inside
SEMANTIK_SOURCE_ROOTS with 403 (plain paths, `..`, symbolic links, a look-alike prefix), the CLI's path
stays unlimited, and a worker refuses an operation whose folder lies outside its own roots."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from arq.connections import RedisSettings, create_pool

from semantik.contracts.queue import deserialize_job, serialize_job
from semantik.core.context import open_semantik
from semantik.core.settings import Settings
from semantik.gateway.app import create_app
from semantik.worker import tasks
from semantik.worker.config import WorkerConfig
from semantik.worker.gateway_client import GatewayClient
from tests.integration.conftest import CountingEmbedder
from tests.integration.test_gateway import assert_error, open_client, wait_for
from tests.support.corpus import KEYS_MD
from tests.support.indexing import index_folder
from tests.support.servers import drop_postgres_database, fresh_postgres_database, serve_in_process


@dataclass(frozen=True)
class Folders:
    root: Path
    """The one allowed root; holds docs/ and a link out."""
    docs: Path
    outside: Path
    """A folder beside the root, holding a secret."""
    lookalike: Path
    """`<root>-evil`: shares the root's name as a string prefix."""


@pytest.fixture
def folders(tmp_path: Path) -> Folders:
    root = tmp_path / "allowed"
    docs = root / "docs"
    docs.mkdir(parents=True)
    (docs / "keys.md").write_text(KEYS_MD)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "id_rsa").write_text("a stand-in for a private key: secret\n")
    (root / "escape").symlink_to(outside, target_is_directory=True)
    lookalike = tmp_path / "allowed-evil"
    lookalike.mkdir()
    (lookalike / "notes.md").write_text("look-alike")
    return Folders(root, docs, outside, lookalike)


@pytest.fixture
async def client(tmp_path: Path, folders: Folders, embedder: CountingEmbedder) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(data_dir=tmp_path / "data", source_roots=[folders.root])
    async for client in open_client(create_app(settings, embedder=embedder)):
        yield client


def refused_paths(folders: Folders) -> dict[str, str]:
    return {
        "outside": str(folders.outside),
        "dot-dot": f"{folders.root}/../outside",
        "symlink out": str(folders.root / "escape"),
        "look-alike prefix": str(folders.lookalike),
        "NUL byte": f"{folders.docs}\x00",
    }


async def test_create_refuses_sources_outside_the_roots(client: httpx.AsyncClient, folders: Folders) -> None:
    for case, path in refused_paths(folders).items():
        response = await client.post("/api/v1/collections", json={"name": "leak", "source_path": path})
        error = assert_error(response, 403, "forbidden", "source_path")
        assert "SEMANTIK_SOURCE_ROOTS" in error["message"], case
        assert "secret" not in response.text
    assert (await client.get("/api/v1/collections/leak")).status_code == 404
    created = await client.post("/api/v1/collections", json={"name": "handbook", "source_path": str(folders.docs)})
    assert created.status_code == 201, created.text


async def test_index_refuses_paths_outside_the_roots(client: httpx.AsyncClient, folders: Folders) -> None:
    created = await client.post("/api/v1/collections", json={"name": "handbook", "source_path": str(folders.root)})
    assert created.status_code == 201, created.text
    for case, path in refused_paths(folders).items():
        response = await client.post("/api/v1/collections/handbook/index", json={"path": path})
        error = assert_error(response, 403, "forbidden", "path")
        assert "SEMANTIK_SOURCE_ROOTS" in error["message"], case
    operation = await wait_for(client, (await client.post("/api/v1/collections/handbook/index")).json()["operation_id"])
    assert operation["status"] == "succeeded", operation
    documents = (await client.get("/api/v1/collections/handbook/documents")).json()["items"]
    # The link out of the root is never followed by the scan either: it is recorded failed, never read.
    assert {doc["path"]: doc["status"] for doc in documents} == {"docs/keys.md": "indexed", "escape": "failed"}


async def test_unusable_paths_inside_the_root_are_the_callers_mistake(
    client: httpx.AsyncClient, folders: Folders
) -> None:
    created = await client.post("/api/v1/collections", json={"name": "handbook", "source_path": str(folders.root)})
    assert created.status_code == 201, created.text
    for path, reason in ((folders.root / ("a" * 300), "too long"), (folders.root / "absent", "does not exist")):
        response = await client.post("/api/v1/collections/handbook/index", json={"path": str(path)})
        assert reason in assert_error(response, 422, "invalid_input", "path")["message"]


async def test_index_of_a_stored_path_is_checked_too(
    tmp_path: Path, folders: Folders, embedder: CountingEmbedder
) -> None:
    """A collection made by the CLI (any folder) cannot be indexed over REST unless its folder is allowed."""
    settings = Settings(data_dir=tmp_path / "data", source_roots=[folders.root])
    async with open_semantik(settings, embedder=embedder) as app:
        report = await index_folder(app, "private", folders.outside)
    assert report.progress.files_total == 1  # the CLI's path is not limited by the roots
    async for client in open_client(create_app(settings, embedder=embedder)):
        response = await client.post("/api/v1/collections/private/index")
        assert_error(response, 403, "forbidden", "source_path")


async def test_no_roots_refuses_every_rest_path(tmp_path: Path, folders: Folders, embedder: CountingEmbedder) -> None:
    async for client in open_client(create_app(Settings(data_dir=tmp_path / "data"), embedder=embedder)):
        response = await client.post("/api/v1/collections", json={"name": "handbook", "source_path": str(folders.docs)})
        error = assert_error(response, 403, "forbidden", "source_path")
        assert "no source folder is allowed" in error["message"] and "SEMANTIK_SOURCE_ROOTS" in error["message"]
        # A collection without a folder is still allowed; indexing it needs one.
        assert (await client.post("/api/v1/collections", json={"name": "empty"})).status_code == 201
        response = await client.post("/api/v1/collections/empty/index", json={"path": str(folders.docs)})
        assert_error(response, 403, "forbidden", "path")


# --- The worker checks again, where the folder is mounted ---


@pytest.fixture
async def service_gateway(
    tmp_path: Path, folders: Folders, postgres_url: str, redis_url: str, embedder: CountingEmbedder
) -> AsyncIterator[str]:
    """A service-mode gateway on a real port, so the worker's own client reaches it over HTTP."""
    database = await fresh_postgres_database(postgres_url)
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=database,
        mode="service",
        redis_url=redis_url,
        internal_token="internal-secret",
        source_roots=[folders.root],
    )
    try:
        async with serve_in_process(create_app(settings, embedder=embedder)) as url:
            yield url
    finally:
        await drop_postgres_database(database)


async def scan_as_worker(gateway_url: str, redis_url: str, operation_id: str, roots: list[Path], embedder: Any) -> str:
    config = WorkerConfig(redis_url=redis_url, gateway_url=gateway_url, source_roots=roots)
    gateway = GatewayClient(gateway_url, "internal-secret")
    redis = await create_pool(
        RedisSettings.from_dsn(redis_url), job_serializer=serialize_job, job_deserializer=deserialize_job
    )
    ctx = {"gateway": gateway, "config": config, "embedder": embedder, "redis": redis, "job_try": 1, "job_id": "t"}
    try:
        return await tasks.scan(ctx, operation_id)
    finally:
        await gateway.aclose()
        await redis.aclose()


async def test_worker_refuses_a_folder_outside_its_roots(
    service_gateway: str, redis_url: str, folders: Folders, tmp_path: Path, embedder: CountingEmbedder
) -> None:
    async with httpx.AsyncClient(base_url=service_gateway, timeout=30) as client:
        created = await client.post("/api/v1/collections", json={"name": "handbook", "source_path": str(folders.docs)})
        assert created.status_code == 201, created.text
        started = await client.post("/api/v1/collections/handbook/index")
        assert started.status_code == 202, started.text
        operation_id = started.json()["operation_id"]

        elsewhere = tmp_path / "worker-root"
        elsewhere.mkdir()
        outcome = await scan_as_worker(service_gateway, redis_url, operation_id, [elsewhere], embedder)
        assert outcome == "failed: folder outside the source roots"
        operation = (await client.get(f"/api/v1/operations/{operation_id}")).json()
        assert operation["status"] == "failed"
        assert "SEMANTIK_SOURCE_ROOTS" in operation["error"] and operation["files_total"] == 0

        # The same operation kind with the folder inside the worker's roots is planned as usual.
        started = await client.post("/api/v1/collections/handbook/index")
        operation_id = started.json()["operation_id"]
        outcome = await scan_as_worker(service_gateway, redis_url, operation_id, [folders.root], embedder)
        assert outcome.startswith("planned 1 batches"), outcome
