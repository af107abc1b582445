"""Dependencies the routers declare: the open Semantik parts, auth, the background operations."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from semantik.core.context import Semantik
from semantik.core.errors import ForbiddenError, UnauthorizedError
from semantik.core.services.keys import ApiKeyView, verify_key
from semantik.gateway.operations import OperationExecutor

bearer = HTTPBearer(auto_error=False, description="An API key from `semantik keys create`.")


def get_semantik(request: Request) -> Semantik:
    semantik: Semantik = request.app.state.semantik
    return semantik


def get_operations(request: Request) -> OperationExecutor:
    executor: OperationExecutor = request.app.state.operations
    return executor


SemantikDep = Annotated[Semantik, Depends(get_semantik)]
OperationsDep = Annotated[OperationExecutor, Depends(get_operations)]


async def require_api_key(
    semantik: SemantikDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> ApiKeyView | None:
    if not semantik.settings.auth_required:
        return None
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise UnauthorizedError("an API key is required: send 'Authorization: Bearer <key>'")
    return await verify_key(semantik, credentials.credentials)


async def require_internal_token(
    semantik: SemantikDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    """The internal API (workers, the operator) takes only the shared token from the chart's Secret."""
    expected = semantik.settings.internal_token
    if expected is None:
        raise ForbiddenError("the internal API is off: set SEMANTIK_INTERNAL_TOKEN on the gateway")
    if credentials is None or not hmac.compare_digest(
        credentials.credentials.encode(), expected.get_secret_value().encode()
    ):
        raise UnauthorizedError("the internal API needs 'Authorization: Bearer <internal token>'")
