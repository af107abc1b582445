"""The gateway: the REST API over Semantik's collections, search and operations."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request, Response
from starlette.routing import Match

from semantik import __version__
from semantik.core.context import open_semantik
from semantik.core.embedding import Embedder
from semantik.core.settings import Mode, Settings
from semantik.gateway import metrics
from semantik.gateway.deps import require_api_key, require_internal_token
from semantik.gateway.errors import API_ERROR_RESPONSES, install_error_handlers
from semantik.gateway.limits import BodyLimit
from semantik.gateway.operations import InlineOperations, OperationExecutor, QueuedOperations
from semantik.gateway.routers import collections, health, internal, internal_collections, operations, search

DESCRIPTION = """Semantic search over your own documents.

Every error is `{"error": {"code", "message", "field"}}`. When the gateway listens on anything but
loopback, every `/api/v1` call needs `Authorization: Bearer <key>` (create keys with `semantik keys create`).
"""


def create_app(settings: Settings | None = None, *, embedder: Embedder | None = None) -> FastAPI:
    """The app; an `embedder` passed in is used instead of loading the model from the settings."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_semantik(settings, embedder=embedder) as semantik:
            app.state.semantik = semantik
            executor: OperationExecutor
            if settings.mode is Mode.SERVICE:
                assert settings.redis_url is not None
                executor = await QueuedOperations.connect(semantik, settings.redis_url)
            else:
                executor = InlineOperations(semantik)
            app.state.operations = executor
            try:
                yield
            finally:
                await executor.shutdown()

    app = FastAPI(title="Semantik", version=__version__, description=DESCRIPTION, lifespan=lifespan)
    install_error_handlers(app)
    app.include_router(health.router)
    protected = [Depends(require_api_key)]
    for router in (collections.router, search.router, operations.router):
        app.include_router(router, dependencies=protected, responses=API_ERROR_RESPONSES)
    for router in (internal.router, internal_collections.router):
        app.include_router(router, dependencies=[Depends(require_internal_token)])

    internal_token = settings.internal_token.get_secret_value() if settings.internal_token else None
    app.add_middleware(
        BodyLimit,
        limit=settings.max_request_bytes,
        internal_limit=settings.resolved_max_internal_request_bytes,
        internal_token=internal_token,
    )

    # Added last, so it is outside the body limit and counts its 413s too.
    @app.middleware("http")
    async def record_metrics(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = _route_template(request)
        metrics.REQUESTS.labels(request.method, route, str(response.status_code)).inc()
        metrics.REQUEST_SECONDS.labels(request.method, route).observe(time.perf_counter() - started)
        return response

    return app


def _route_template(request: Request) -> str:
    # Label by the route's template, never the raw path: collection names would explode cardinality.
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match is Match.FULL:
            return str(getattr(route, "path", "unmatched"))
    return "unmatched"
