"""The embedder service: POST /embed with dynamic batching, /models, health and metrics."""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Literal

from fastapi import Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from semantik import __version__
from semantik.contracts.errors import error_body
from semantik.contracts.vectors import encode_vector
from semantik.core.embedding import TextKind, model_for
from semantik.core.embedding.engine import EmbeddingEngine
from semantik.core.errors import InvalidInputError, SemantikError, UnauthorizedError
from semantik.core.http import install_error_handlers
from semantik.embedder import metrics
from semantik.embedder.batcher import DynamicBatcher, QueueFullError
from semantik.embedder.disconnect import ClientGoneError, unless_client_leaves
from semantik.embedder.settings import EmbedderSettings

EngineFactory = Callable[[EmbedderSettings], EmbeddingEngine]


class EmbedIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    texts: list[str] = Field(min_length=1, description="Texts to embed, in order.")
    kind: TextKind = Field(default=TextKind.DOCUMENT, description="`query` gets the model's instruction.")
    encoding_format: Literal["float", "base64"] = Field(
        default="float", description="base64: each vector as little-endian float32 bytes, base64-encoded."
    )


class RequestTooLargeError(SemantikError):
    code = "request_too_large"
    status = 413


class ModelInfo(BaseModel):
    model: str
    dimension: int
    dtype: str
    device: str
    backend: str
    max_sequence_length: int
    pooling: str
    normalized: bool
    max_batch_tokens: int


def default_engine(settings: EmbedderSettings) -> EmbeddingEngine:
    return EmbeddingEngine.load(
        model_for(settings.model_name),
        settings.resolved_model_path,
        device=settings.device,
        precision=settings.dtype,
        max_batch_tokens=settings.max_batch_tokens,
        max_batch_size=settings.max_batch_size,
        setting="SEMANTIK_EMBEDDER_MODEL_PATH",
        backend=settings.backend,
        onnx_cache_dir=settings.resolved_onnx_cache_dir,
    )


def bearer_check(token: str | None) -> Callable[[Request], None]:
    """A dependency: 401 unless the request carries `Authorization: Bearer <token>` (no check when None)."""
    expected = f"Bearer {token}".encode() if token is not None else None

    def check(request: Request) -> None:
        if expected is None:
            return
        given = request.headers.get("authorization", "").encode("latin-1", "replace")
        if not hmac.compare_digest(given, expected):
            raise UnauthorizedError(
                "a valid embedder token is required (Authorization: Bearer; SEMANTIK_EMBEDDER_TOKEN)"
            )

    return check


async def read_body(request: Request, limit: int) -> bytes:
    """The body, read as it arrives and refused once it passes `limit`: never held whole when too large."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise RequestTooLargeError(
            f"the request body is larger than {limit} bytes (SEMANTIK_EMBEDDER_MAX_REQUEST_BYTES)"
        )
    parts: list[bytes] = []
    size = 0
    async for part in request.stream():
        size += len(part)
        if size > limit:
            raise RequestTooLargeError(
                f"the request body is larger than {limit} bytes (SEMANTIK_EMBEDDER_MAX_REQUEST_BYTES)"
            )
        parts.append(part)
    return b"".join(parts)


def parse_embed_request(raw: bytes, settings: EmbedderSettings) -> EmbedIn:
    """The request, checked against the caps before any text reaches the tokenizer."""
    try:
        body = EmbedIn.model_validate_json(raw)
    except ValidationError as exc:
        # Located as FastAPI locates body errors, so the one error handler names the field.
        raise RequestValidationError([{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]) from exc
    if len(body.texts) > settings.max_request_texts:
        raise InvalidInputError(f"at most {settings.max_request_texts} texts per request", field="texts")
    for number, text in enumerate(body.texts):
        if len(text) > settings.max_text_chars:
            raise InvalidInputError(
                f"texts[{number}] has {len(text)} characters; at most {settings.max_text_chars} "
                "(SEMANTIK_EMBEDDER_MAX_TEXT_CHARS)",
                field="texts",
            )
    return body


def create_embedder_app(
    settings: EmbedderSettings | None = None, *, engine_factory: EngineFactory = default_engine
) -> FastAPI:
    settings = settings or EmbedderSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.ready = False
        engine = await asyncio.to_thread(engine_factory, settings)
        # A warm-up pass allocates the buffers and picks the kernels before the first real request.
        await asyncio.to_thread(engine.embed_sync, ["warm-up"] * 4, TextKind.DOCUMENT)
        batcher = DynamicBatcher(engine, max_queue_texts=settings.max_queue_texts)
        batcher.start()
        app.state.engine, app.state.batcher, app.state.ready = engine, batcher, True
        try:
            yield
        finally:
            await batcher.stop()

    app = FastAPI(title="Semantik embedder", version=__version__, lifespan=lifespan)
    install_error_handlers(app)
    authorized = [Depends(bearer_check(settings.token.get_secret_value() if settings.token else None))]

    @app.exception_handler(QueueFullError)
    async def overloaded(_: Request, exc: QueueFullError) -> JSONResponse:
        metrics.ERRORS.labels("overloaded").inc()
        return JSONResponse(
            error_body(exc.code, exc.message), status_code=503, headers={"Retry-After": str(exc.retry_after)}
        )

    @app.middleware("http")
    async def count_requests(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        if request.url.path == "/embed":
            metrics.REQUESTS.labels(str(response.status_code)).inc()
            metrics.REQUEST_SECONDS.observe(time.perf_counter() - started)
        return response

    # The body is read here rather than declared as a parameter: FastAPI would read and parse a body of
    # any size before the token is checked. EmbedIn documents the shape.
    @app.post(
        "/embed",
        summary="Embed texts; requests arriving together share forward passes",
        dependencies=authorized,
    )
    async def embed(request: Request) -> Response:
        body = parse_embed_request(await read_body(request, settings.max_request_bytes), settings)
        engine: EmbeddingEngine = request.app.state.engine
        batcher: DynamicBatcher = request.app.state.batcher
        ids = await asyncio.to_thread(engine.tokenize, body.texts, body.kind)
        try:
            vectors = await unless_client_leaves(request, batcher.embed(ids))
        except ClientGoneError:
            metrics.ERRORS.labels("client_gone").inc()
            return Response(status_code=499)
        except SemantikError as exc:
            metrics.ERRORS.labels(exc.code).inc()
            raise
        tokens = sum(len(row) for row in ids)
        metrics.TEXTS.inc(len(ids))
        metrics.TOKENS.inc(tokens)
        payload: dict[str, Any] = {
            "model": engine.spec.name,
            "dimension": engine.dimension,
            "tokens": tokens,
            "encoding_format": body.encoding_format,
        }
        if body.encoding_format == "base64":
            payload["vectors"] = [encode_vector(row) for row in vectors]
        else:
            payload["vectors"] = vectors.tolist()
        # Serialised here: FastAPI's generic encoder walks every float and is several times slower.
        return Response(json.dumps(payload), media_type="application/json")

    @app.get("/models", response_model=ModelInfo, dependencies=authorized)
    async def models(request: Request) -> ModelInfo:
        engine: EmbeddingEngine = request.app.state.engine
        return ModelInfo(
            model=engine.spec.name,
            dimension=engine.dimension,
            dtype=engine.precision.value,
            device=engine.device.type,
            backend=engine.backend.value,
            max_sequence_length=engine.spec.max_seq_length,
            pooling=engine.spec.pooling.value,
            normalized=engine.spec.normalize,
            max_batch_tokens=engine.max_batch_tokens,
        )

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz(request: Request) -> Response:
        if getattr(request.app.state, "ready", False):
            return JSONResponse({"status": "ready"})
        return JSONResponse(error_body("not_ready", "the model is loading"), status_code=503)

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
