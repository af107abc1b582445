"""The embedder service over HTTP (in-process ASGI) on the real model: batching, backpressure, errors."""

from __future__ import annotations

import asyncio
import base64
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import numpy as np
import pytest
import torch
from fastapi import FastAPI
from prometheus_client import REGISTRY
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from semantik.contracts.models import model_spec
from semantik.core.embedding.engine import EmbeddingEngine, ForwardHook
from semantik.embedder.app import create_embedder_app
from semantik.embedder.settings import EmbedderSettings
from tests.support.servers import serve_in_process

SPEC = model_spec("sentence-transformers/all-MiniLM-L6-v2")


@pytest.fixture
def make_client(minilm_model: PreTrainedModel, minilm_tokenizer: PreTrainedTokenizerBase) -> Callable[..., Any]:
    async def open_client(
        hook: ForwardHook | None = None, **settings: Any
    ) -> AsyncIterator[tuple[httpx.AsyncClient, EmbeddingEngine]]:
        engine = EmbeddingEngine(SPEC, minilm_model, minilm_tokenizer, max_batch_tokens=4096)
        app: FastAPI = create_embedder_app(EmbedderSettings(**settings), engine_factory=lambda _: engine)
        async with app.router.lifespan_context(app):
            engine.forward_hook = hook
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://embedder") as client:
                yield client, engine

    return open_client


async def test_embed_returns_vectors_in_request_order(make_client: Callable[..., Any]) -> None:
    texts = ["a much longer text about rotating the API keys of the gateway every quarter", "short", "medium length"]
    async for client, engine in make_client():
        response = await client.post("/embed", json={"texts": texts})
        assert response.status_code == 200
        body = response.json()
        expected = engine.embed_sync(texts).vectors
        assert body["model"] == SPEC.name and body["dimension"] == 384 and body["tokens"] > 0
        assert np.allclose(np.array(body["vectors"]), expected, atol=1e-5)

        packed = (await client.post("/embed", json={"texts": texts, "encoding_format": "base64"})).json()
        decoded = np.stack([np.frombuffer(base64.b64decode(v), dtype="<f4") for v in packed["vectors"]])
        assert np.allclose(decoded, expected, atol=1e-6)
        query = (await client.post("/embed", json={"texts": ["short"], "kind": "query"})).json()
        assert query["dimension"] == 384


async def test_models_health_ready_and_metrics(make_client: Callable[..., Any]) -> None:
    async for client, _ in make_client():
        info = (await client.get("/models")).json()
        assert info == {
            "model": SPEC.name,
            "dimension": 384,
            "dtype": "float32",
            "device": "cpu",
            "backend": "torch",
            "max_sequence_length": 256,
            "pooling": "mean",
            "normalized": True,
            "max_batch_tokens": 4096,
        }
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        assert (await client.get("/readyz")).status_code == 200
        await client.post("/embed", json={"texts": ["x"]})
        exported = (await client.get("/metrics")).text
        for name in (
            "semantik_embedder_requests_total",
            "semantik_embedder_texts_total",
            "semantik_embedder_tokens_total",
            "semantik_embedder_batch_size_bucket",
            "semantik_embedder_batch_tokens_bucket",
            "semantik_embedder_queue_depth",
            "semantik_embedder_forward_seconds_bucket",
            "semantik_embedder_oom_splits_total",
        ):
            assert name in exported, name


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"texts": []}, "texts"),
        ({}, "texts"),
        ({"texts": "one"}, "texts"),
        ({"texts": ["a"], "kind": "passage"}, "kind"),
        ({"texts": ["a"], "encoding_format": "hex"}, "encoding_format"),
        ({"texts": ["a"], "model": "other"}, "model"),
        ({"texts": ["a"] * 11}, "texts"),
    ],
)
async def test_bad_requests_name_the_field(make_client: Callable[..., Any], body: dict[str, Any], field: str) -> None:
    async for client, _ in make_client(max_request_texts=10):
        response = await client.post("/embed", json=body)
        assert response.status_code == 422, response.text
        assert response.json()["error"]["field"] == field


async def test_concurrent_requests_share_forward_passes(make_client: Callable[..., Any]) -> None:
    passes: list[int] = []

    def slow_first_pass(texts: int, padded_tokens: int) -> None:
        passes.append(texts)
        if len(passes) == 1:
            time.sleep(0.5)  # the other requests arrive while this pass runs

    async for client, _ in make_client(hook=slow_first_pass):
        responses = await asyncio.gather(
            *(client.post("/embed", json={"texts": [f"request {i} about keys"]}) for i in range(8))
        )
        assert all(r.status_code == 200 for r in responses)
        assert len(passes) < 8
        assert max(passes) > 1


async def test_a_full_queue_answers_503_with_retry_after(make_client: Callable[..., Any]) -> None:
    def slow(texts: int, padded_tokens: int) -> None:
        time.sleep(0.3)

    async for client, _ in make_client(hook=slow, max_queue_texts=4):
        responses = await asyncio.gather(
            *(client.post("/embed", json={"texts": ["one", "two", "three"]}) for _ in range(4))
        )
        statuses = sorted(r.status_code for r in responses)
        assert statuses[0] == 200 and statuses[-1] == 503
        rejected = next(r for r in responses if r.status_code == 503)
        assert int(rejected.headers["Retry-After"]) >= 1
        assert rejected.json()["error"]["code"] == "overloaded"
        assert (await client.post("/embed", json={"texts": ["later"]})).status_code == 200


async def test_fault_injection_oom_gives_507_for_that_request_only(make_client: Callable[..., Any]) -> None:
    def oom_for_long_texts(texts: int, padded_tokens: int) -> None:
        if padded_tokens / texts > 100:
            raise torch.OutOfMemoryError("injected: CUDA out of memory")

    async for client, _ in make_client(hook=oom_for_long_texts):
        too_long, fine = await asyncio.gather(
            client.post("/embed", json={"texts": ["ok", " ".join(["word"] * 300)]}),
            client.post("/embed", json={"texts": ["a normal text", "another"]}),
        )
        assert too_long.status_code == 507
        assert too_long.json()["error"]["code"] == "insufficient_storage"
        assert fine.status_code == 200
        assert (await client.post("/embed", json={"texts": ["still serving"]})).status_code == 200
        assert "semantik_embedder_oom_splits_total" in (await client.get("/metrics")).text


async def test_embed_and_models_require_the_token_health_and_metrics_do_not(make_client: Callable[..., Any]) -> None:
    async for client, _ in make_client(token="the-embedder-token"):
        for headers in ({}, {"Authorization": "Bearer not-the-token"}, {"Authorization": "the-embedder-token"}):
            for method, path, body in (("POST", "/embed", {"texts": ["x"]}), ("GET", "/models", None)):
                response = await client.request(method, path, json=body, headers=headers)
                assert response.status_code == 401, (path, headers)
                assert response.json()["error"]["code"] == "unauthorized"
                assert response.headers["WWW-Authenticate"] == "Bearer"
        good = {"Authorization": "Bearer the-embedder-token"}
        assert (await client.post("/embed", json={"texts": ["x"]}, headers=good)).status_code == 200
        assert (await client.get("/models", headers=good)).json()["dimension"] == 384
        for path in ("/healthz", "/readyz", "/metrics"):
            assert (await client.get(path)).status_code == 200, path


async def test_a_too_long_text_is_refused_before_any_forward_pass(make_client: Callable[..., Any]) -> None:
    passes: list[int] = []
    async for client, _ in make_client(hook=lambda texts, tokens: passes.append(texts), max_text_chars=100):
        response = await client.post("/embed", json={"texts": ["short", "x" * 101]})
        assert response.status_code == 422
        assert response.json()["error"]["field"] == "texts"
        assert "texts[1] has 101 characters; at most 100" in response.json()["error"]["message"]
        assert passes == []
        assert (await client.post("/embed", json={"texts": ["x" * 100]})).status_code == 200


async def test_a_body_over_the_limit_gets_413_unread(make_client: Callable[..., Any]) -> None:
    async for client, _ in make_client(max_request_bytes=4096, token="t"):
        headers = {"Authorization": "Bearer t"}
        response = await client.post("/embed", json={"texts": ["word " * 1000]}, headers=headers)
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "request_too_large"

        async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
            yield b'{"texts": ["'
            for _ in range(10):
                yield b"word " * 100
            yield b'"]}'

        streamed = await client.post(
            "/embed", content=chunked(), headers={**headers, "content-type": "application/json"}
        )
        assert streamed.status_code == 413


def test_an_embedder_listening_beyond_loopback_needs_a_token() -> None:
    with pytest.raises(
        ValueError, match=r"SEMANTIK_EMBEDDER_TOKEN is required when the embedder listens on 0\.0\.0\.0 "
    ):
        EmbedderSettings(host="0.0.0.0")
    assert EmbedderSettings(host="0.0.0.0", token="t").token is not None
    assert EmbedderSettings(host="127.0.0.1").token is None


async def test_a_request_whose_client_left_is_never_embedded(
    minilm_model: PreTrainedModel, minilm_tokenizer: PreTrainedTokenizerBase
) -> None:
    # Over a real socket: a worker that gives up on a slow embedder closes its connection and retries
    # later. Its abandoned texts must not be computed, or retries queue behind their own dead copies.
    passes: list[int] = []
    running = threading.Event()

    def slow_first_pass(texts: int, padded_tokens: int) -> None:
        passes.append(texts)
        if len(passes) == 1:
            running.set()
            time.sleep(1.5)

    engine = EmbeddingEngine(SPEC, minilm_model, minilm_tokenizer, max_batch_tokens=4096)
    app = create_embedder_app(EmbedderSettings(), engine_factory=lambda _: engine)
    abandoned_before = REGISTRY.get_sample_value("semantik_embedder_abandoned_texts_total") or 0.0
    async with serve_in_process(app) as url, httpx.AsyncClient(base_url=url) as client:
        engine.forward_hook = slow_first_pass
        first = asyncio.create_task(client.post("/embed", json={"texts": ["the request being embedded"]}))
        assert await asyncio.to_thread(running.wait, 30)
        with pytest.raises(httpx.ReadTimeout):
            await client.post("/embed", json={"texts": ["given", "up", "on"]}, timeout=0.3)
        assert (await first).status_code == 200
        later = await client.post("/embed", json={"texts": ["a later request"]})
        assert later.status_code == 200
    assert passes == [1, 1], "the abandoned request's three texts were embedded"
    abandoned = REGISTRY.get_sample_value("semantik_embedder_abandoned_texts_total")
    assert abandoned == abandoned_before + 3
