from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, status
from sse_starlette import EventSourceResponse

from semantik.core.db.models import OperationStatus
from semantik.core.errors import ConflictError
from semantik.core.services.indexing import OperationView, get_operation, open_index_operation
from semantik.gateway.deps import OperationsDep, SemantikDep
from semantik.gateway.schemas import IndexIn, OperationAccepted, OperationOut

router = APIRouter(prefix="/api/v1", tags=["operations"])

EVENT_POLL_SECONDS = 0.25


@router.post(
    "/collections/{name}/index",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=OperationAccepted,
    summary="Start indexing the collection's folder; returns the operation to poll",
)
async def start_index(
    semantik: SemantikDep, operations: OperationsDep, name: str, body: IndexIn | None = None
) -> OperationAccepted:
    request = body or IndexIn()
    operation = await open_index_operation(
        semantik, name, request.path, full=request.full, roots=semantik.settings.source_roots
    )
    await operations.start(operation.id, operation.queue)
    return OperationAccepted(
        operation_id=operation.id, status=operation.status, url=f"/api/v1/operations/{operation.id}"
    )


@router.get("/operations/{operation_id}", response_model=OperationOut)
async def read_operation(semantik: SemantikDep, operation_id: str) -> OperationOut:
    view = await get_operation(semantik, operation_id)
    return OperationOut.model_validate(view, from_attributes=True)


@router.post(
    "/operations/{operation_id}/cancel",
    response_model=OperationOut,
    summary="Stop an operation between batches; every document already committed stays consistent",
)
async def cancel(semantik: SemantikDep, operations: OperationsDep, operation_id: str) -> OperationOut:
    view = await get_operation(semantik, operation_id)
    if OperationStatus(view.status).finished:
        raise ConflictError(f"operation {operation_id} already ended: {view.status}", field="operation_id")
    await operations.cancel(operation_id, view.queue)
    return OperationOut.model_validate(await get_operation(semantik, operation_id), from_attributes=True)


@router.get(
    "/operations/{operation_id}/events",
    summary="Server-Sent Events: `progress` on every change of the counters, then one final `end`",
    response_class=EventSourceResponse,
)
async def operation_events(semantik: SemantikDep, operation_id: str) -> EventSourceResponse:
    first = await get_operation(semantik, operation_id)  # a 404 comes as JSON, before the stream opens

    async def events() -> AsyncIterator[dict[str, Any]]:
        # Every event is the same view the REST answer gives, read from the same row, so the stream
        # cannot drift from the state; `end` always comes, carrying the final counters.
        view: OperationView | None = first
        last: str | None = None
        while True:
            if view is None:
                view = await get_operation(semantik, operation_id)
            data = _json(view)
            if OperationStatus(view.status).finished:
                yield {"event": "end", "data": data}
                return
            if data != last:
                yield {"event": "progress", "data": data}
                last = data
            view = None
            await asyncio.sleep(EVENT_POLL_SECONDS)

    return EventSourceResponse(events(), ping=15)


def _json(view: OperationView) -> str:
    return json.dumps(OperationOut.model_validate(asdict(view)).model_dump(mode="json"), sort_keys=True)
