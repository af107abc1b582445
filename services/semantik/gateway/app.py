"""The gateway: the REST API over Semantik's collections, search and operations."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import Depends, FastAPI, Request, Response

from semantik import __version__
from semantik.core.context import open_semantik
from semantik.core.embedding import Embedder
from semantik.core.http import API_ERROR_RESPONSES, install_error_handlers
from semantik.core.settings import Mode, Settings
from semantik.gateway import metrics
from semantik.gateway.audit import AuditTrail
from semantik.gateway.backfills import Backfills
from semantik.gateway.cluster import ClusterCollections
from semantik.gateway.deps import get_principal, require_internal_token
from semantik.gateway.limits import BodyLimit
from semantik.gateway.oidc import OidcVerifier
from semantik.gateway.operations import InlineOperations, OperationExecutor, QueuedOperations
from semantik.gateway.routers import (
    audit,
    collections,
    health,
    internal,
    internal_collections,
    keys,
    operations,
    search,
)
from semantik.gateway.routing import matched_route
from semantik.gateway.ui import routes as ui_routes
from semantik.gateway.ui.headers import SecurityHeaders

DESCRIPTION = """Semantic search over your own documents.

Every error is `{"error": {"code", "message", "field"}}`. When the gateway listens on anything but
loopback, every `/api/v1` call needs `Authorization: Bearer <credential>`: an API key (`semantik keys
create`, or `POST /api/v1/keys` by an admin) or, where OIDC is configured, the issuer's token. A key or
token holds a role (read, write, admin) over the collections its scope names; a collection outside the
scope answers 404, too weak a role 403.

People search at `/`: a web page served by the gateway, signed in with an API key or through the OIDC issuer.
"""


def create_app(settings: Settings | None = None, *, embedder: Embedder | None = None) -> FastAPI:
    """The app; an `embedder` passed in is used instead of loading the model from the settings."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_semantik(settings, embedder=embedder) as semantik, AsyncExitStack() as stack:
            app.state.semantik = semantik
            if settings.cluster_mode:
                app.state.cluster = await stack.enter_async_context(ClusterCollections.open(settings))
            executor: OperationExecutor
            if settings.mode is Mode.SERVICE:
                assert settings.redis_url is not None
                executor = await QueuedOperations.connect(semantik, settings.redis_url)
            else:
                executor = InlineOperations(semantik)
            app.state.operations = executor
            backfills = Backfills(semantik)
            app.state.backfills = backfills
            await backfills.start()
            try:
                yield
            finally:
                await backfills.shutdown()
                await executor.shutdown()

    # No /docs or /redoc: FastAPI's pages load Swagger UI's script from a CDN and run inline script, which
    # the strict Content-Security-Policy on every response forbids. /openapi.json stays.
    app = FastAPI(
        title="Semantik",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.oidc = OidcVerifier.from_settings(settings)
    app.state.ui_secret = secrets.token_urlsafe(32)
    install_error_handlers(app)
    app.include_router(health.router)
    protected = [Depends(get_principal)]
    for router in (collections.router, search.router, operations.router, keys.router, audit.router):
        app.include_router(router, dependencies=protected, responses=API_ERROR_RESPONSES)
    app.include_router(operations.streams)  # authenticates each connection itself
    for router in (internal.router, internal_collections.router):
        app.include_router(router, dependencies=[Depends(require_internal_token)])
    app.include_router(ui_routes.router)  # pages authenticate from the session cookie (gateway/ui/session.py)
    app.mount("/static", ui_routes.static_files, name="static")

    internal_token = settings.internal_token.get_secret_value() if settings.internal_token else None
    app.add_middleware(
        BodyLimit,
        limit=settings.max_request_bytes,
        internal_limit=settings.resolved_max_internal_request_bytes,
        internal_token=internal_token,
    )
    # Outside the body limit too, so the trail records the status each client really got.
    app.add_middleware(AuditTrail)
    app.add_middleware(SecurityHeaders)

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
    matched = matched_route(request.scope)
    return matched[0] if matched is not None else "unmatched"
