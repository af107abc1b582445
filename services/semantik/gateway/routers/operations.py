from __future__ import annotations

from fastapi import APIRouter, status

from semantik.core.services.indexing import get_operation, open_index_operation
from semantik.gateway.deps import OperationTasksDep, SemantikDep
from semantik.gateway.schemas import IndexIn, OperationAccepted, OperationOut

router = APIRouter(prefix="/api/v1", tags=["operations"])


@router.post(
    "/collections/{name}/index",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=OperationAccepted,
    summary="Start indexing the collection's folder; returns the operation to poll",
)
async def start_index(
    semantik: SemantikDep, tasks: OperationTasksDep, name: str, body: IndexIn | None = None
) -> OperationAccepted:
    request = body or IndexIn()
    operation = await open_index_operation(semantik, name, request.path, full=request.full)
    tasks.start(operation.id)
    return OperationAccepted(
        operation_id=operation.id, status=operation.status, url=f"/api/v1/operations/{operation.id}"
    )


@router.get("/operations/{operation_id}", response_model=OperationOut)
async def read_operation(semantik: SemantikDep, operation_id: str) -> OperationOut:
    view = await get_operation(semantik, operation_id)
    return OperationOut.model_validate(view, from_attributes=True)
