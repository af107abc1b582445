"""The gateway over HTTP (in-process ASGI), on SQLite and PostgreSQL, with the real model."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from semantik.core.settings import Settings
from semantik.gateway.app import create_app
from tests.integration.conftest import CountingEmbedder
from tests.support.corpus import COMMON_LICENSES, KEYS_MD, VACATION_TXT
from tests.support.servers import serve_in_process


@pytest.fixture
def small_corpus(tmp_path: Path) -> Path:
    root = tmp_path / "small"
    (root / "handbook").mkdir(parents=True)
    (root / "handbook" / "keys.md").write_text(KEYS_MD)
    (root / "handbook" / "vacation.txt").write_text(VACATION_TXT)
    shutil.copyfile(COMMON_LICENSES / "Apache-2.0", root / "Apache-2.0")
    (root / "broken.pdf").write_bytes(b"%PDF-1.4 not really")
    return root


async def open_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield client


@pytest.fixture
async def client(settings: Settings, embedder: CountingEmbedder) -> AsyncIterator[httpx.AsyncClient]:
    async for client in open_client(create_app(settings, embedder=embedder)):
        yield client


def assert_error(response: httpx.Response, status: int, code: str, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    if field is not None:
        assert error["field"] == field, error
    return error


async def wait_for(client: httpx.AsyncClient, operation_id: str) -> dict[str, Any]:
    async with asyncio.timeout(120):
        while True:
            body: dict[str, Any] = (await client.get(f"/api/v1/operations/{operation_id}")).json()
            if body["status"] in ("succeeded", "failed", "cancelled"):
                return body
            await asyncio.sleep(0.1)


async def create_and_index(client: httpx.AsyncClient, folder: Path, name: str = "handbook") -> dict[str, Any]:
    created = await client.post("/api/v1/collections", json={"name": name, "source_path": str(folder)})
    assert created.status_code == 201, created.text
    started = await client.post(f"/api/v1/collections/{name}/index")
    assert started.status_code == 202, started.text
    return await wait_for(client, started.json()["operation_id"])


async def test_health_ready_metrics_and_openapi(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "store": "ok"}
    await client.get("/api/v1/collections")
    metrics = (await client.get("/metrics")).text
    assert 'semantik_gateway_requests_total{method="GET",route="/api/v1/collections",status="200"}' in metrics
    # The API reference is openapi.json; the web UI's pages are not part of it.
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert "/api/v1/collections/{name}/search" in paths
    assert "/" not in paths and "/sign-in" not in paths
    assert [path for path in paths if path.startswith("/internal")] == []
    # Every error a client can get is documented with the error body's shape.
    search_responses = paths["/api/v1/collections/{name}/search"]["post"]["responses"]
    assert search_responses["4XX"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorOut"}
    assert "503" in search_responses and "503" in paths["/readyz"]["get"]["responses"]


async def test_index_search_and_read_back(client: httpx.AsyncClient, small_corpus: Path) -> None:
    operation = await create_and_index(client, small_corpus)

    assert operation["status"] == "succeeded", operation
    assert operation["files_total"] == 4 and operation["files_processed"] == 4
    assert operation["files_failed"] == 1 and operation["chunks"] > 0
    found = await client.post(
        "/api/v1/collections/handbook/search",
        json={"query": "what must I include in a NOTICE file when I redistribute", "k": 3},
    )
    assert found.status_code == 200
    hits = found.json()["hits"]
    assert hits[0]["path"] == "Apache-2.0"
    assert "NOTICE" in hits[0]["text"]
    # Hybrid's default fusion is DBSF, a sum of normalised scores (not bounded by 1): both retrievers
    # found the first hit, and scores fall down the list.
    assert found.json()["fusion"] == "dbsf"
    assert {entry["retriever"] for entry in hits[0]["explain"]} == {"dense", "sparse"}
    scores = [hit["score"] for hit in hits]
    assert scores[0] > 0 and scores == sorted(scores, reverse=True)

    filtered = await client.post(
        "/api/v1/collections/handbook/search",
        json={"query": "keys", "k": 10, "filter": {"path_prefix": "handbook", "extensions": ["txt"]}},
    )
    assert [hit["path"] for hit in filtered.json()["hits"]] == ["handbook/vacation.txt"]
    strict = await client.post(
        "/api/v1/collections/handbook/search",
        json={"query": "rotate API keys", "k": 10, "mode": "dense", "score_threshold": 0.99},
    )
    assert strict.status_code == 200 and strict.json()["hits"] == []

    collection = (await client.get("/api/v1/collections/handbook")).json()
    assert collection["documents"] == 4 and collection["failed_documents"] == 1
    assert collection["chunks"] == operation["chunks"]
    listed = (await client.get("/api/v1/collections")).json()["items"]
    assert [item["name"] for item in listed] == ["handbook"]
    failed = (await client.get("/api/v1/collections/handbook/documents", params={"status": "failed"})).json()
    assert [(doc["path"], doc["status"]) for doc in failed["items"]] == [("broken.pdf", "failed")]
    assert "pdf" in failed["items"][0]["error"].lower()


async def test_delete_collection(client: httpx.AsyncClient, small_corpus: Path) -> None:
    await create_and_index(client, small_corpus)

    assert (await client.delete("/api/v1/collections/handbook")).status_code == 204

    assert_error(await client.get("/api/v1/collections/handbook"), 404, "not_found", "name")
    assert (await client.get("/api/v1/collections")).json()["items"] == []
    recreated = await create_and_index(client, small_corpus)
    assert recreated["status"] == "succeeded" and recreated["files_unchanged"] == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "Bad_Name"}, "name"),
        ({"name": "x" * 64}, "name"),
        ({"name": "ok", "chunking": {"chunk_size": 100, "chunk_overlap": 100}}, "chunking"),
        ({"name": "ok", "chunking": {"chunk_size": 4}}, "chunking.chunk_size"),
        ({"name": "ok", "chunking": {"strategy": "sentences"}}, "chunking.strategy"),
        ({"name": "ok", "include": ["/etc/**"]}, "include"),
        ({"name": "ok", "exclude": [""]}, "exclude"),
        ({"name": "ok", "colour": "blue"}, "colour"),
        ({}, "name"),
    ],
)
async def test_bad_collection_specs_are_rejected_naming_the_field(
    client: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    assert_error(await client.post("/api/v1/collections", json=body), 422, "invalid_input", field)


async def test_collection_errors(client: httpx.AsyncClient, small_corpus: Path) -> None:
    assert (await client.post("/api/v1/collections", json={"name": "dup"})).status_code == 201
    assert_error(await client.post("/api/v1/collections", json={"name": "dup"}), 409, "conflict", "name")
    assert_error(
        await client.post("/api/v1/collections", json={"name": "m", "model": "nope/model"}),
        422,
        "invalid_input",
        "model",
    )
    assert_error(await client.delete("/api/v1/collections/missing"), 404, "not_found", "name")
    assert_error(await client.get("/api/v1/collections/missing/documents"), 404, "not_found", "name")
    bad_status = await client.get("/api/v1/collections/dup/documents", params={"status": "weird"})
    assert_error(bad_status, 422, "invalid_input", "status")
    assert_error(await client.get("/no/such/route"), 404, "not_found")


async def test_index_errors(client: httpx.AsyncClient, small_corpus: Path, tmp_path: Path) -> None:
    assert_error(await client.post("/api/v1/collections/missing/index"), 404, "not_found", "name")
    assert (await client.post("/api/v1/collections", json={"name": "nosource"})).status_code == 201
    assert_error(await client.post("/api/v1/collections/nosource/index"), 422, "invalid_input", "path")
    missing = await client.post("/api/v1/collections/nosource/index", json={"path": str(tmp_path / "absent")})
    assert_error(missing, 422, "invalid_input", "path")
    a_file = await client.post("/api/v1/collections/nosource/index", json={"path": str(small_corpus / "Apache-2.0")})
    assert_error(a_file, 422, "invalid_input", "path")
    assert_error(
        await client.post("/api/v1/collections/nosource/index", json={"fast": True}),
        422,
        "invalid_input",
        "fast",
    )
    assert_error(await client.get("/api/v1/operations/does-not-exist"), 404, "not_found", "operation_id")


async def test_a_second_index_while_one_runs_is_a_conflict(client: httpx.AsyncClient, small_corpus: Path) -> None:
    assert (
        await client.post("/api/v1/collections", json={"name": "busy", "source_path": str(small_corpus)})
    ).status_code == 201
    first = await client.post("/api/v1/collections/busy/index")
    assert first.status_code == 202

    second = await client.post("/api/v1/collections/busy/index")
    assert_error(second, 409, "conflict", "collection")
    assert_error(await client.delete("/api/v1/collections/busy"), 409, "conflict")

    done = await wait_for(client, first.json()["operation_id"])
    assert done["status"] == "succeeded"
    third = await client.post("/api/v1/collections/busy/index")
    assert third.status_code == 202
    assert (await wait_for(client, third.json()["operation_id"]))["files_unchanged"] == 4


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"query": "x", "k": 0}, 422, "k"),
        ({"query": "x", "k": 101}, 422, "k"),
        ({"query": ""}, 422, "query"),
        ({"k": 3}, 422, "query"),
        ({"query": "x", "mode": "dense", "score_threshold": 2}, 422, "score_threshold"),
        ({"query": "x", "filter": {"extensions": "md"}}, 422, "filter.extensions"),
        ({"query": "x", "filter": {"path": "a"}}, 422, "filter.path"),
    ],
)
async def test_bad_searches_are_rejected_naming_the_field(
    client: httpx.AsyncClient, body: dict[str, Any], status: int, field: str
) -> None:
    assert (await client.post("/api/v1/collections", json={"name": "s"})).status_code == 201
    assert_error(await client.post("/api/v1/collections/s/search", json=body), status, "invalid_input", field)


async def test_search_of_an_unknown_collection_is_404(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/collections/nope/search", json={"query": "x"})
    assert_error(response, 404, "not_found", "name")


async def test_api_keys_are_required_off_loopback(settings: Settings, embedder: CountingEmbedder) -> None:
    from semantik.core.context import open_semantik
    from semantik.core.services.keys import create_key, revoke_key

    secured = settings.model_copy(update={"host": "0.0.0.0"})
    assert secured.auth_required
    async with open_semantik(secured, embedder=embedder) as semantik:
        key, view = await create_key(semantik, "ci")
        revoked, revoked_view = await create_key(semantik, "old")
        await revoke_key(semantik, revoked_view.id)
    async for client in open_client(create_app(secured, embedder=embedder)):
        assert (await client.get("/healthz")).status_code == 200
        anonymous = await client.get("/api/v1/collections")
        assert_error(anonymous, 401, "unauthorized")
        assert anonymous.headers["www-authenticate"] == "Bearer"
        wrong = await client.get("/api/v1/collections", headers={"Authorization": "Bearer sk_wrong"})
        assert_error(wrong, 401, "unauthorized")
        old = await client.get("/api/v1/collections", headers={"Authorization": f"Bearer {revoked}"})
        assert_error(old, 401, "unauthorized")
        good = await client.get("/api/v1/collections", headers={"Authorization": f"Bearer {key}"})
        assert good.status_code == 200
        search = await client.post(
            "/api/v1/collections/x/search", json={"query": "q"}, headers={"Authorization": f"Bearer {key}"}
        )
        assert_error(search, 404, "not_found")
    assert view.prefix == key[:12]


async def test_cancel_in_embedded_mode_stops_between_batches(
    client: httpx.AsyncClient, tmp_path: Path, embedder: CountingEmbedder
) -> None:
    from tests.support.corpus import build_many_files

    corpus = build_many_files(tmp_path / "many", count=200)
    await client.post("/api/v1/collections", json={"name": "many", "source_path": str(corpus)})
    operation_id = (await client.post("/api/v1/collections/many/index", json={})).json()["operation_id"]
    for _ in range(2400):
        if (await client.get(f"/api/v1/operations/{operation_id}")).json()["chunks"] > 0:
            break
        await asyncio.sleep(0.05)
    cancelled = await client.post(f"/api/v1/operations/{operation_id}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    body = cancelled.json()
    assert body["status"] == "cancelled" and 0 < body["files_processed"] < body["files_total"]
    documents = (await client.get("/api/v1/collections/many/documents", params={"limit": 1000})).json()["items"]
    # Whole batches only: every document row that exists was committed with all its chunks.
    assert len(documents) == body["files_processed"]
    assert sum(d["chunk_count"] for d in documents) == body["chunks"]
    assert_error(await client.post(f"/api/v1/operations/{operation_id}/cancel"), 409, "conflict", "operation_id")
    events = await client.get(f"/api/v1/operations/{operation_id}/events")
    assert "event: end" in events.text


# --- Request-body limits, over a real socket (uvicorn), so Content-Length and chunked uploads are real ---

TEN_MIB = 10 * 1024 * 1024
INTERNAL_TOKEN = "internal-secret"


@pytest.fixture
async def served_gateway(tmp_path: Path, embedder: CountingEmbedder) -> AsyncIterator[str]:
    """A gateway off loopback (API keys required, the internal API on) listening on a real port."""
    settings = Settings(data_dir=tmp_path / "data", host="0.0.0.0", internal_token=INTERNAL_TOKEN)
    async with serve_in_process(create_app(settings, embedder=embedder)) as url:
        yield url


async def chunks_of(total: int, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    """A body with no Content-Length: httpx sends it chunked."""
    for start in range(0, total, size):
        yield b"x" * min(size, total - start)


async def test_a_body_over_the_limit_is_refused_before_it_is_parsed_or_authenticated(served_gateway: str) -> None:
    async with httpx.AsyncClient(base_url=served_gateway, timeout=60) as client:
        # The control: without the limit FastAPI parses a body before it checks the key, so a small
        # body that is not JSON is a 422 and a small valid one without a key a 401.
        assert_error(await client.post("/api/v1/collections", content=b"not json"), 422, "invalid_input")
        assert_error(await client.post("/api/v1/collections", json={"name": "x"}), 401, "unauthorized")

        declared = await client.post("/api/v1/collections", content=b"x" * TEN_MIB)
        error = assert_error(declared, 413, "request_too_large")
        assert "SEMANTIK_MAX_REQUEST_BYTES" in error["message"]

        chunked = await client.post("/api/v1/collections", content=chunks_of(TEN_MIB))
        assert "content-length" not in chunked.request.headers
        assert_error(chunked, 413, "request_too_large")

    async with httpx.AsyncClient(base_url=served_gateway, timeout=60) as client:
        # A new connection after the refusals is served as usual.
        assert (await client.get("/healthz")).json() == {"status": "ok"}


async def test_the_internal_limit_applies_only_with_the_internal_token(served_gateway: str) -> None:
    two_mib = b"x" * (2 * 1024 * 1024)
    path = "/internal/v1/operations/nope/batches/1"
    async with httpx.AsyncClient(base_url=served_gateway, timeout=60) as client:
        anonymous = await client.put(path, content=two_mib)
        assert_error(anonymous, 413, "request_too_large")
        wrong = await client.put(path, content=two_mib, headers={"Authorization": "Bearer guess"})
        assert_error(wrong, 413, "request_too_large")
        # With the token the body is read and parsed: it is not JSON.
        worker = await client.put(path, content=two_mib, headers={"Authorization": f"Bearer {INTERNAL_TOKEN}"})
        assert_error(worker, 422, "invalid_input")


async def test_readyz_names_the_dependency_that_is_down_and_nothing_more(
    postgres_url: str, tmp_path: Path, embedder: CountingEmbedder, caplog: pytest.LogCaptureFixture
) -> None:
    from sqlalchemy.engine import make_url

    from tests.support.servers import drop_postgres_database, fresh_postgres_database

    database_url = await fresh_postgres_database(postgres_url)
    database = make_url(database_url)
    async for client in open_client(
        create_app(Settings(data_dir=tmp_path, database_url=database_url), embedder=embedder)
    ):
        assert (await client.get("/readyz")).status_code == 200
        # The database goes away under the running gateway: its connections are closed and new ones refused.
        await drop_postgres_database(database_url)

        ready = await client.get("/readyz")

        error = assert_error(ready, 503, "not_ready")
        assert error["message"] == "not ready: database"
        assert ready.json()["checks"] == {"database": "unavailable", "store": "ok"}
        for secret in (str(database.host), str(database.port), str(database.database), "Error", "exist"):
            assert secret not in ready.text
        # The operator finds the reason in the gateway's log.
        assert any("dependency=database" in r.getMessage() and r.exc_info for r in caplog.records)


async def test_a_failed_operation_tells_users_why_in_a_sentence(client: httpx.AsyncClient, small_corpus: Path) -> None:
    # A collection built with a model this gateway does not run: the run fails on a known error.
    body = {"name": "qwen", "source_path": str(small_corpus), "model": "Qwen/Qwen3-Embedding-0.6B"}
    assert (await client.post("/api/v1/collections", json=body)).status_code == 201
    started = await client.post("/api/v1/collections/qwen/index")
    assert started.status_code == 202, started.text

    operation = await wait_for(client, started.json()["operation_id"])

    assert operation["status"] == "failed"
    assert operation["error"] == (
        "this process embeds with sentence-transformers/all-MiniLM-L6-v2, "
        "but the index is built with Qwen/Qwen3-Embedding-0.6B"
    )
