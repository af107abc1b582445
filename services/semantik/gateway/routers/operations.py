from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, WebSocket, status
from sse_starlette import EventSourceResponse

from semantik.core.access import Role
from semantik.core.db.models import OperationStatus
from semantik.core.errors import ConflictError
from semantik.core.services.indexing import open_index_operation
from semantik.gateway.cluster import ClusterDep, start_index_job
from semantik.gateway.cluster_resources import IndexJobAccepted
from semantik.gateway.deps import (
    OperationsDep,
    PrincipalDep,
    SemantikDep,
    WritableName,
    authorized_operation,
    read_operation_as_named,
)
from semantik.gateway.progress import event_stream
from semantik.gateway.progress_socket import serve_progress
from semantik.gateway.schemas import IndexIn, OperationAccepted, OperationOut

router = APIRouter(prefix="/api/v1", tags=["operations"])
streams = APIRouter(prefix="/api/v1", tags=["operations"])
"""Routes that authenticate for themselves: a WebSocket cannot run the bearer dependency of `router`."""


@router.post(
    "/collections/{name}/index",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=OperationAccepted | IndexJobAccepted,
    summary="Start indexing the collection's folder; returns the operation to poll (in cluster mode, the IndexJob)",
)
async def start_index(
    semantik: SemantikDep,
    operations: OperationsDep,
    cluster: ClusterDep,
    name: WritableName,
    body: IndexIn | None = None,
) -> OperationAccepted | IndexJobAccepted:
    request = body or IndexIn()
    if cluster is not None:
        return await start_index_job(cluster, name, request.path, full=request.full)
    operation = await open_index_operation(
        semantik, name, request.path, full=request.full, roots=semantik.settings.source_roots
    )
    await operations.start(operation.id, operation.queue)
    return OperationAccepted(
        operation_id=operation.id, status=operation.status, url=f"/api/v1/operations/{operation.id}"
    )


@router.get("/operations/{operation_id}", response_model=OperationOut)
async def read_operation(semantik: SemantikDep, principal: PrincipalDep, operation_id: str) -> OperationOut:
    view = await authorized_operation(semantik, principal, operation_id, Role.READ)
    return OperationOut.model_validate(view, from_attributes=True)


@router.post(
    "/operations/{operation_id}/cancel",
    response_model=OperationOut,
    summary="Stop an operation between batches; every document already committed stays consistent",
)
async def cancel(
    semantik: SemantikDep, operations: OperationsDep, principal: PrincipalDep, operation_id: str
) -> OperationOut:
    view = await authorized_operation(semantik, principal, operation_id, Role.WRITE)
    if OperationStatus(view.status).finished:
        raise ConflictError(f"operation {operation_id} already ended: {view.status}", field="operation_id")
    await operations.cancel(operation_id, view.queue)
    return OperationOut.model_validate(await read_operation_as_named(semantik, operation_id), from_attributes=True)


@router.get(
    "/operations/{operation_id}/events",
    summary="Server-Sent Events: `progress` with the operation's state on every change, then one final `end`",
    description=(
        "Each event's id is the operation's `seq` and its data the whole operation (as `GET /operations/{id}`): "
        "reconnecting with `Last-Event-ID` sends only newer states. `end` carries the outcome in `status` "
        "(`succeeded`, `failed` with `error`, `cancelled`) and is sent to every connection once the operation "
        "has finished."
    ),
    response_class=EventSourceResponse,
)
async def operation_events(
    semantik: SemantikDep,
    principal: PrincipalDep,
    operation_id: str,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> EventSourceResponse:
    # A 404 (or a collection outside the scope) comes as JSON, before the stream opens.
    return await event_stream(semantik, principal, operation_id, last_event_id)


@streams.websocket("/operations/{operation_id}/ws")
async def operation_socket(websocket: WebSocket, operation_id: str) -> None:
    """The events of `/events` as JSON messages `{"event", "id", "data"}`, resuming after `?after=<id>`;
    read access to the operation's collection, checked here (see progress_socket)."""
    await serve_progress(websocket, operation_id)
