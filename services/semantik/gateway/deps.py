"""Dependencies the routers declare: the open Semantik parts, auth, the background operations."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from semantik.core.context import Semantik
from semantik.core.errors import UnauthorizedError
from semantik.core.services.keys import ApiKeyView, verify_key
from semantik.gateway.operations import OperationTasks

bearer = HTTPBearer(auto_error=False, description="An API key from `semantik keys create`.")


def get_semantik(request: Request) -> Semantik:
    semantik: Semantik = request.app.state.semantik
    return semantik


def get_operation_tasks(request: Request) -> OperationTasks:
    tasks: OperationTasks = request.app.state.operation_tasks
    return tasks


SemantikDep = Annotated[Semantik, Depends(get_semantik)]
OperationTasksDep = Annotated[OperationTasks, Depends(get_operation_tasks)]


async def require_api_key(
    semantik: SemantikDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> ApiKeyView | None:
    if not semantik.settings.auth_required:
        return None
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise UnauthorizedError("an API key is required: send 'Authorization: Bearer <key>'")
    return await verify_key(semantik, credentials.credentials)
