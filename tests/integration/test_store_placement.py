"""A collection's store placement (shards, replicas, on-disk) goes from the operator's PUT and a REST create
to the collection's row, and from the row to every store collection made for it: the first and each reindex
generation. Real PostgreSQL and Redis; no Qdrant server runs here, so the create call is checked as it is built
from the row (tests/unit/test_store_placement.py checks that VectorStore makes it so)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from semantik.core.context import Semantik
from semantik.core.store import metadata
from semantik.core.store.placement import StorePlacement
from semantik.core.store.vectors import DENSE, collection_params
from tests.integration.conftest import CountingEmbedder
from tests.support.gateway import service_gateway

TOKEN = "internal-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
URL = "/internal/v1/collections/team-handbook"
MODEL = "sentence-transformers/all-MiniLM-L6-v2"


@pytest.fixture
async def gateway(
    tmp_path: Path, postgres_url: str, redis_url: str, embedder: CountingEmbedder
) -> AsyncIterator[tuple[httpx.AsyncClient, Semantik]]:
    async with service_gateway(tmp_path, postgres_url, redis_url, embedder, internal_token=TOKEN) as (client, semantik):
        yield client, semantik


async def placement_of(semantik: Semantik, name: str) -> tuple[StorePlacement, StorePlacement | None]:
    """The live row's placement and its reindex shadow's, if any."""
    async with semantik.sessions() as session:
        live = await metadata.get_collection(session, name)
        assert live is not None
        shadow = await metadata.get_shadow(session, live.id)
    return live.placement, shadow.placement if shadow else None


async def test_the_operators_layout_reaches_every_generation_of_the_store(
    gateway: tuple[httpx.AsyncClient, Semantik], tmp_path: Path
) -> None:
    client, semantik = gateway
    store = {"shards": 12, "replication_factor": 2, "on_disk": True}
    body = {"source_path": str(tmp_path), "model": MODEL, "store": store}
    created = await client.put(URL, json=body, headers=AUTH)
    assert created.status_code == 201, created.text
    assert created.json()["store"] == store

    live, _ = await placement_of(semantik, "team-handbook")
    assert live == StorePlacement(shards=12, replication_factor=2, on_disk=True)
    params = collection_params(384, live)
    assert (params["shard_number"], params["replication_factor"], params["on_disk_payload"]) == (12, 2, True)
    assert params["vectors_config"][DENSE].on_disk is True

    # A chunking change is built as generation 2: laid out as the first, not at the server's defaults.
    changed = {**body, "chunking": {"chunk_size": 64, "chunk_overlap": 8}}
    pending = await client.put(URL, json=changed, headers=AUTH)
    assert pending.status_code == 200 and pending.json()["reindex"]["generation"] == 2, pending.text
    _, shadow = await placement_of(semantik, "team-handbook")
    assert shadow == live

    # A PUT without the block (a Collection that never had one) leaves the layout as it is.
    kept = await client.put(URL, json={k: v for k, v in changed.items() if k != "store"}, headers=AUTH)
    assert kept.status_code == 200 and kept.json()["store"] == store


async def test_a_bad_layout_is_refused_naming_the_field(
    gateway: tuple[httpx.AsyncClient, Semantik], tmp_path: Path
) -> None:
    client, _ = gateway
    for store, field in (({"shards": 0}, "shards"), ({"replication_factor": 9}, "replication_factor")):
        refused = await client.put(
            URL, json={"source_path": str(tmp_path), "model": MODEL, "store": store}, headers=AUTH
        )
        assert refused.status_code == 422, refused.text
        assert field in refused.json()["error"]["field"]
    assert (await client.get(URL, headers=AUTH)).status_code == 404, "nothing is created from a refused body"


async def test_a_rest_create_takes_the_layout_too(gateway: tuple[httpx.AsyncClient, Semantik], tmp_path: Path) -> None:
    client, semantik = gateway
    folder = tmp_path / "docs"
    folder.mkdir()
    spec = {"name": "wiki", "source_path": str(folder), "store": {"shards": 4, "on_disk": False}}
    created = await client.post("/api/v1/collections", json=spec, headers=AUTH)
    assert created.status_code == 201, created.text
    assert created.json()["store"] == {"shards": 4, "replication_factor": None, "on_disk": False}
    live, _ = await placement_of(semantik, "wiki")
    assert live == StorePlacement(shards=4, on_disk=False)
