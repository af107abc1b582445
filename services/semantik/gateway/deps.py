"""Dependencies the routers declare: the open Semantik parts, auth, the background operations."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import replace
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from semantik.contracts.naming import collection_name, held_by_another, owner_name
from semantik.core.access import LOCAL, Principal, Role, authorize, require_global
from semantik.core.context import Semantik
from semantik.core.errors import ForbiddenError, OutOfScopeError, UnauthorizedError
from semantik.core.services.indexing import OperationView, get_operation
from semantik.core.services.keys import KEY_PREFIX, verify_key
from semantik.gateway.oidc import OidcVerifier
from semantik.gateway.operations import OperationExecutor

bearer = HTTPBearer(
    auto_error=False, description="An API key (`semantik keys create`, `POST /api/v1/keys`) or an OIDC token."
)


def get_semantik(request: Request) -> Semantik:
    semantik: Semantik = request.app.state.semantik
    return semantik


def get_operations(request: Request) -> OperationExecutor:
    executor: OperationExecutor = request.app.state.operations
    return executor


SemantikDep = Annotated[Semantik, Depends(get_semantik)]
OperationsDep = Annotated[OperationExecutor, Depends(get_operations)]


async def authenticate(semantik: Semantik, oidc: OidcVerifier | None, token: str | None) -> Principal:
    """The principal behind a bearer token; routes and the WebSocket stream both come through here."""
    if not semantik.settings.auth_required:
        return LOCAL
    if not token:
        raise UnauthorizedError("credentials are required: send 'Authorization: Bearer <API key or OIDC token>'")
    if token.startswith(KEY_PREFIX):
        return (await verify_key(semantik, token)).principal
    if oidc is not None:
        return await oidc.principal(token)
    raise UnauthorizedError("invalid API key")


def get_oidc(request: Request) -> OidcVerifier | None:
    verifier: OidcVerifier | None = getattr(request.app.state, "oidc", None)
    return verifier


async def get_principal(
    request: Request,
    semantik: SemantikDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    token = credentials.credentials if credentials is not None and credentials.scheme.lower() == "bearer" else None
    principal = await authenticate(semantik, get_oidc(request), token)
    request.state.principal = principal  # the audit trail names who made the request
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def collection_access(needed: Role) -> Callable[[Principal, str], str]:
    """A dependency giving the path's collection `name` once the principal may act on it with `needed`."""

    def check(principal: PrincipalDep, name: str) -> str:
        authorize(principal, name, needed)
        return name

    return check


ReadableName = Annotated[str, Depends(collection_access(Role.READ))]
WritableName = Annotated[str, Depends(collection_access(Role.WRITE))]


def admin_only(principal: PrincipalDep) -> Principal:
    require_global(principal, Role.ADMIN)
    return principal


AdminDep = Annotated[Principal, Depends(admin_only)]


async def read_operation_as_named(semantik: Semantik, operation_id: str) -> OperationView:
    """The operation with its collection as REST names it: in cluster mode an operation belongs to a store,
    and scopes and answers speak of its Collection's name. Every read of an operation for a client comes here,
    so the first answer and the later ones (a stream's polls, a cancel's result) name it alike."""
    view = await get_operation(semantik, operation_id)
    settings = semantik.settings
    if not settings.cluster_mode:
        return view
    assert settings.namespace is not None  # Settings insist on one in cluster mode
    name = collection_name(settings.namespace, view.collection)
    if name is None or held_by_another(view.collection_owner, owner_name(settings.namespace, name)):
        raise OutOfScopeError(f"operation {operation_id!r} does not exist", field="operation_id")
    return replace(view, collection=name)


async def authorized_operation(
    semantik: Semantik, principal: Principal, operation_id: str, needed: Role
) -> OperationView:
    """The operation, if its collection is in the principal's scope (else the same 404 as a missing one)."""
    view = await read_operation_as_named(semantik, operation_id)
    if not principal.sees(view.collection):
        raise OutOfScopeError(f"operation {operation_id!r} does not exist", field="operation_id")
    authorize(principal, view.collection, needed, field="operation_id")
    return view


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
