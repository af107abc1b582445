"""The gateway's internal API, the one way workers write: a plan is kept once, a batch is applied once,
counters add up exactly, and bad hand-offs are refused with the field named. Real Redis and PostgreSQL;
the test plays the worker's part over HTTP, in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from semantik.contracts.vectors import encode_vector
from semantik.core.pipeline.ids import LATEST_SCHEME, PointIdScheme, point_id
from tests.integration.conftest import CountingEmbedder
from tests.integration.test_gateway import assert_error
from tests.support.gateway import service_gateway

TOKEN = "internal-secret"


@pytest.fixture
async def gateway(
    tmp_path: Path, postgres_url: str, redis_url: str, embedder: CountingEmbedder
) -> AsyncIterator[httpx.AsyncClient]:
    async with service_gateway(tmp_path, postgres_url, redis_url, embedder, internal_token=TOKEN) as (client, _):
        yield client


def internal(path: str) -> str:
    return f"/internal/v1/operations{path}"


AUTH = {"Authorization": f"Bearer {TOKEN}"}


def document(collection: str, path: str, chunks: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    return {
        "path": path,
        "content_hash": f"hash-{path}",
        "size": 100,
        "mtime": 1.0,
        "status": "indexed",
        "token_count": 10 * chunks,
        "points": [
            {
                "id": point_id(collection, path, i, scheme=LATEST_SCHEME),
                "chunk_index": i,
                "text": f"{path} chunk {i}",
                "start": 0,
                "end": 10,
                "vector": encode_vector(rng.standard_normal(384).astype(np.float32)),
            }
            for i in range(chunks)
        ],
    }


async def open_operation(gateway: httpx.AsyncClient, tmp_path: Path) -> str:
    (tmp_path / "docs").mkdir()
    created = await gateway.post("/api/v1/collections", json={"name": "handbook", "source_path": str(tmp_path)})
    assert created.status_code == 201, created.text
    started = await gateway.post("/api/v1/collections/handbook/index", json={"path": str(tmp_path / "docs")})
    assert started.status_code == 202, started.text
    operation_id: str = started.json()["operation_id"]
    return operation_id


async def test_plan_is_kept_once_and_each_batch_applies_once(gateway: httpx.AsyncClient, tmp_path: Path) -> None:
    operation_id = await open_operation(gateway, tmp_path)
    target = (await gateway.post(internal(f"/{operation_id}/start"), headers=AUTH)).json()
    assert (target["status"], target["queue"]) == ("running", f"semantik:job:{operation_id}")
    assert target["point_ids"] == LATEST_SCHEME, "the worker is told how the collection's point ids are made"

    plan = {
        "files_total": 4,
        "unchanged": 0,
        "rejected": [{"path": "big.bin", "reason": "file too large"}],
        "batches": [[{"path": "a.md", "content_hash": "hash-a.md"}], [{"path": "b.md", "content_hash": "hash-b.md"}]],
        "removed": [],
    }
    first = (await gateway.put(internal(f"/{operation_id}/plan"), json=plan, headers=AUTH)).json()
    assert first == {"created": True, "batches_total": 2, "pending": [0, 1]}
    # A scan killed after recording its plan runs again: it gets the same plan, and nothing changes.
    other = {**plan, "batches": [[{"path": "a.md", "content_hash": "x"}, {"path": "b.md", "content_hash": "y"}]]}
    again = (await gateway.put(internal(f"/{operation_id}/plan"), json=other, headers=AUTH)).json()
    assert again == {"created": False, "batches_total": 2, "pending": [0, 1]}

    batch = {"documents": [document("handbook", "a.md", 3, seed=1)], "embed_seconds": 0.5}
    committed = await gateway.put(internal(f"/{operation_id}/batches/0"), json=batch, headers=AUTH)
    assert committed.json() == {"duplicate": False, "remaining": 1}
    counters = (await gateway.get(f"/api/v1/operations/{operation_id}")).json()
    # The same batch delivered again (a worker killed after the commit, its job retried) changes nothing.
    changed = {"documents": [document("handbook", "a.md", 2, seed=2)]}
    replay = await gateway.put(internal(f"/{operation_id}/batches/0"), json=changed, headers=AUTH)
    assert replay.json() == {"duplicate": True, "remaining": 1}
    assert (await gateway.get(f"/api/v1/operations/{operation_id}")).json() == counters
    assert (counters["files_processed"], counters["files_failed"], counters["chunks"]) == (2, 1, 3)

    last = {"documents": [document("handbook", "b.md", 2, seed=3)]}
    assert (await gateway.put(internal(f"/{operation_id}/batches/1"), json=last, headers=AUTH)).json() == {
        "duplicate": False,
        "remaining": 0,
    }
    assert (await gateway.post(internal(f"/{operation_id}/finalize"), headers=AUTH)).json() == {"status": "succeeded"}
    assert (await gateway.post(internal(f"/{operation_id}/finalize"), headers=AUTH)).json() == {"status": "succeeded"}

    final = (await gateway.get(f"/api/v1/operations/{operation_id}")).json()
    assert (final["status"], final["files_processed"], final["chunks"], final["embed_seconds"]) == (
        "succeeded",
        3,
        5,
        0.5,
    )
    documents = (await gateway.get("/api/v1/collections/handbook/documents")).json()["items"]
    assert {(d["path"], d["status"], d["chunk_count"]) for d in documents} == {
        ("a.md", "indexed", 3),
        ("b.md", "indexed", 2),
        ("big.bin", "failed", 0),
    }
    hits = (await gateway.post("/api/v1/collections/handbook/search", json={"query": "chunk", "k": 10})).json()
    assert len(hits["hits"]) == 2  # one hit per document by default: both documents' points are there


async def test_bad_hand_offs_are_refused_with_the_field(gateway: httpx.AsyncClient, tmp_path: Path) -> None:
    operation_id = await open_operation(gateway, tmp_path)
    assert (await gateway.post(internal(f"/{operation_id}/start"))).status_code == 401
    wrong = await gateway.post(internal(f"/{operation_id}/start"), headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "unauthorized"
    await gateway.post(internal(f"/{operation_id}/start"), headers=AUTH)
    plan = {"files_total": 1, "unchanged": 0, "batches": [[{"path": "a.md", "content_hash": "h"}]]}
    await gateway.put(internal(f"/{operation_id}/plan"), json=plan, headers=AUTH)

    stranger = {"documents": [document("handbook", "not-planned.md", 1, seed=1)]}
    refused = await gateway.put(internal(f"/{operation_id}/batches/0"), json=stranger, headers=AUTH)
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "documents[0].path"

    forged = document("handbook", "a.md", 2, seed=1)
    forged["points"][1]["id"] = point_id("handbook", "other.md", 1, scheme=LATEST_SCHEME)
    refused = await gateway.put(internal(f"/{operation_id}/batches/0"), json={"documents": [forged]}, headers=AUTH)
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "documents[0].points[1]"

    other_scheme = document("handbook", "a.md", 1, seed=1)
    other_scheme["points"][0]["id"] = point_id("handbook", "a.md", 0, scheme=PointIdScheme.NAMED)
    body = {"documents": [other_scheme]}
    refused = await gateway.put(internal(f"/{operation_id}/batches/0"), json=body, headers=AUTH)
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "documents[0].points[0]"

    garbled = document("handbook", "a.md", 1, seed=1)
    garbled["points"][0]["vector"] = "not base64!"
    refused = await gateway.put(internal(f"/{operation_id}/batches/0"), json={"documents": [garbled]}, headers=AUTH)
    assert refused.status_code == 422 and "vector" in refused.json()["error"]["field"]

    assert (await gateway.get(internal(f"/{operation_id}/batches/7"), headers=AUTH)).status_code == 404
    counters = (await gateway.get(f"/api/v1/operations/{operation_id}")).json()
    assert (counters["files_processed"], counters["chunks"]) == (0, 0)  # nothing of the refused batches landed


async def test_cancel_refuses_late_batches_and_frees_the_collection(gateway: httpx.AsyncClient, tmp_path: Path) -> None:
    operation_id = await open_operation(gateway, tmp_path)
    second = await gateway.post("/api/v1/collections/handbook/index", json={"path": str(tmp_path / "docs")})
    assert second.status_code == 409 and second.json()["error"]["field"] == "collection"
    await gateway.post(internal(f"/{operation_id}/start"), headers=AUTH)
    plan = {"files_total": 1, "unchanged": 0, "batches": [[{"path": "a.md", "content_hash": "h"}]]}
    await gateway.put(internal(f"/{operation_id}/plan"), json=plan, headers=AUTH)

    cancelled = await gateway.post(f"/api/v1/operations/{operation_id}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    late = {"documents": [document("handbook", "a.md", 1, seed=1)]}
    refused = await gateway.put(internal(f"/{operation_id}/batches/0"), json=late, headers=AUTH)
    assert refused.status_code == 409
    assert (await gateway.post(f"/api/v1/operations/{operation_id}/cancel")).status_code == 409
    events = await gateway.get(f"/api/v1/operations/{operation_id}/events")
    assert events.headers["content-type"].startswith("text/event-stream")
    assert "event: end" in events.text and '"status": "cancelled"' in events.text
    again = await gateway.post("/api/v1/collections/handbook/index", json={"path": str(tmp_path / "docs")})
    assert again.status_code == 202


async def test_operator_calls_are_idempotent(gateway: httpx.AsyncClient, tmp_path: Path) -> None:
    body = {"source_path": str(tmp_path), "include": ["docs/**"], "model": "sentence-transformers/all-MiniLM-L6-v2"}
    url = "/internal/v1/collections/team-handbook"
    created = await gateway.put(url, json=body, headers=AUTH)
    assert created.status_code == 201, created.text
    again = await gateway.put(url, json={**body, "include": ["docs/**", "wiki/**"]}, headers=AUTH)
    assert again.status_code == 200 and again.json()["include"] == ["docs/**", "wiki/**"]
    unknown = await gateway.put(url, json={**body, "model": "no/such-model"}, headers=AUTH)
    assert unknown.status_code == 422 and unknown.json()["error"]["field"] == "model"

    first = await gateway.post(f"{url}/operations", json={"key": "uid-1", "full": True}, headers=AUTH)
    assert first.status_code == 202, first.text
    repeat = await gateway.post(f"{url}/operations", json={"key": "uid-1", "full": True}, headers=AUTH)
    assert repeat.json()["operation_id"] == first.json()["operation_id"]
    other = await gateway.post(f"{url}/operations", json={"key": "uid-2"}, headers=AUTH)
    assert other.status_code == 409
    operation_id = first.json()["operation_id"]
    progress = await gateway.get(f"/internal/v1/operations/{operation_id}", headers=AUTH)
    assert progress.json()["status"] == "pending" and progress.json()["kind"] == "full_index"

    assert (await gateway.delete(url, headers=AUTH)).status_code == 204  # cancels the pending operation first
    assert (await gateway.get(f"/internal/v1/operations/{operation_id}", headers=AUTH)).status_code == 404
    assert (await gateway.delete(url, headers=AUTH)).status_code == 204
    assert (await gateway.get(url, headers=AUTH)).status_code == 404


async def test_a_store_name_two_collections_map_to_stays_with_the_first_and_nothing_of_it_changes(
    gateway: httpx.AsyncClient, tmp_path: Path
) -> None:
    # `team-a` + `docs` and `team` + `a-docs` make the same store name.
    body = {"source_path": str(tmp_path), "include": ["docs/**"], "model": "sentence-transformers/all-MiniLM-L6-v2"}
    url = "/internal/v1/collections/team-a-docs"
    first, second = {"owner": "team-a/docs"}, {"owner": "team/a-docs"}
    assert (await gateway.put(url, json=body, params=first, headers=AUTH)).status_code == 201

    refusals = [
        await gateway.put(url, json={**body, "include": ["secrets/**"]}, params=second, headers=AUTH),
        await gateway.get(url, params=second, headers=AUTH),
        await gateway.post(f"{url}/operations", json={"key": "uid-x", "full": True}, params=second, headers=AUTH),
        await gateway.delete(url, params=second, headers=AUTH),
    ]
    for refused in refusals:
        error = assert_error(refused, 409, "conflict", "owner")
        assert "team-a/docs" in error["message"] and "rename" in error["message"]

    kept = await gateway.get(url, params=first, headers=AUTH)
    assert kept.status_code == 200 and kept.json()["include"] == ["docs/**"]
    opened = await gateway.post(f"{url}/operations", json={"key": "uid-1"}, params=first, headers=AUTH)
    assert opened.status_code == 202, opened.text
    assert_error(await gateway.get(url, params={"owner": "Team A"}, headers=AUTH), 422, "invalid_input", "owner")


async def test_a_collection_without_an_owner_is_claimed_by_the_first_operator_ensure(
    gateway: httpx.AsyncClient, tmp_path: Path
) -> None:
    # As a collection made before owners were recorded: its next ensure after the upgrade claims it.
    created = await gateway.post("/api/v1/collections", json={"name": "legacy", "source_path": str(tmp_path)})
    assert created.status_code == 201, created.text
    body = {"source_path": str(tmp_path), "model": "sentence-transformers/all-MiniLM-L6-v2"}
    url = "/internal/v1/collections/legacy"
    assert (await gateway.get(url, params={"owner": "anyone/legacy"}, headers=AUTH)).status_code == 200

    assert (await gateway.put(url, json=body, params={"owner": "ns/legacy"}, headers=AUTH)).status_code == 200

    assert_error(await gateway.put(url, json=body, params={"owner": "other/legacy"}, headers=AUTH), 409, "conflict")
    assert (await gateway.get(url, params={"owner": "ns/legacy"}, headers=AUTH)).status_code == 200


async def test_a_changed_index_config_is_reindexed_into_the_next_generation(
    gateway: httpx.AsyncClient, tmp_path: Path
) -> None:
    body = {"source_path": str(tmp_path), "model": "sentence-transformers/all-MiniLM-L6-v2"}
    url = "/internal/v1/collections/team-handbook"
    assert (await gateway.put(url, json=body, headers=AUTH)).status_code == 201
    changed = {**body, "quantization": "int8", "chunking": {"chunk_size": 64, "chunk_overlap": 8}}
    pending = await gateway.put(url, json=changed, headers=AUTH)

    assert pending.status_code == 200, pending.text
    view = pending.json()
    assert view["quantization"] == "float32" and view["chunking"]["chunk_size"] == 200 and view["generation"] == 1
    assert view["reindex"] == {
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "quantization": "int8",
        "chunking": {"strategy": "recursive", "chunk_size": 64, "chunk_overlap": 8},
        "generation": 2,
    }
    opened = await gateway.post(f"{url}/operations", json={"key": "uid-r", "reindex": True}, headers=AUTH)
    assert opened.status_code == 202, opened.text
    operation_id = opened.json()["operation_id"]
    target = (await gateway.post(internal(f"/{operation_id}/start"), headers=AUTH)).json()
    assert target["qdrant_collection"] == "semantik-team-handbook.g2" and target["chunk_size"] == 64
    assert target["collection"] == "team-handbook", "point ids keep the collection's name across generations"
    assert target["model"] == "sentence-transformers/all-MiniLM-L6-v2"

    third = await gateway.put(url, json={**changed, "chunking": {"chunk_size": 32, "chunk_overlap": 8}}, headers=AUTH)
    assert third.status_code == 409 and third.json()["error"]["field"] == "chunking"
    assert "being reindexed" in third.json()["error"]["message"]

    plan = {
        "files_total": 1,
        "unchanged": 0,
        "rejected": [],
        "removed": [],
        "batches": [[{"path": "a.md", "content_hash": "hash-a.md"}]],
    }
    assert (await gateway.put(internal(f"/{operation_id}/plan"), json=plan, headers=AUTH)).status_code == 200
    doc = document("team-handbook", "a.md", 3, seed=1)
    committed = await gateway.put(internal(f"/{operation_id}/batches/0"), json={"documents": [doc]}, headers=AUTH)
    assert committed.status_code == 200, committed.text
    live = (await gateway.get(url, headers=AUTH)).json()
    assert live["generation"] == 1 and live["chunks"] == 0, "the live generation is untouched until the swap"
    finalized = await gateway.post(internal(f"/{operation_id}/finalize"), headers=AUTH)
    assert finalized.status_code == 200, finalized.text

    swapped = (await gateway.get(url, headers=AUTH)).json()
    assert swapped["generation"] == 2 and swapped["quantization"] == "int8" and swapped["reindex"] is None
    assert swapped["chunking"]["chunk_size"] == 64 and swapped["chunks"] == 3 and swapped["documents"] == 1
