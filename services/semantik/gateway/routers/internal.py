"""The internal API (`/internal/v1`): how workers and the operator reach the data the gateway owns."""

from __future__ import annotations

from fastapi import APIRouter

from semantik.contracts.internal_api import (
    BatchIn,
    BatchOut,
    CommitOut,
    FailIn,
    KnownDocumentOut,
    KnownDocumentsOut,
    PlanIn,
    PlannedFileIO,
    PlanOut,
    StatusOut,
    TargetOut,
)
from semantik.core.pipeline.scan import RejectedFile
from semantik.core.services import batches
from semantik.core.services.batches import OperationTarget
from semantik.core.services.indexing import get_operation
from semantik.core.store.metadata import DocumentRecord
from semantik.core.store.vectors import ChunkPoint
from semantik.gateway import metrics
from semantik.gateway.deps import OperationsDep, SemantikDep
from semantik.gateway.operations import QueuedOperations
from semantik.gateway.schemas import OperationOut

# Out of /openapi.json: the only clients are Semantik's own worker and operator, which share the models
# in contracts.internal_api; a published document would be a map for callers who have no business here.
router = APIRouter(prefix="/internal/v1/operations", tags=["internal"], include_in_schema=False)


def _target_out(operation: OperationTarget) -> TargetOut:
    target = operation.target
    return TargetOut(
        operation_id=operation.operation_id,
        status=operation.status,
        full=operation.full,
        queue=operation.queue,
        batches_total=operation.batches_total,
        model=operation.model,
        collection_id=target.collection_id,
        collection=target.name,
        qdrant_collection=target.qdrant_collection,
        root=str(target.root),
        include=list(target.include),
        exclude=list(target.exclude),
        chunk_strategy=target.chunking.strategy.value,
        chunk_size=target.chunking.chunk_size,
        chunk_overlap=target.chunking.chunk_overlap,
        max_file_bytes=target.max_file_bytes,
        point_ids=int(target.point_ids),
    )


@router.get("/{operation_id}", response_model=OperationOut, summary="Status and progress of an operation")
async def read_operation(semantik: SemantikDep, operation_id: str) -> OperationOut:
    return OperationOut.model_validate(await get_operation(semantik, operation_id), from_attributes=True)


@router.post("/{operation_id}/start", response_model=TargetOut, summary="Mark the operation running; what to index")
async def start(semantik: SemantikDep, operation_id: str) -> TargetOut:
    return _target_out(await batches.start_operation(semantik, operation_id))


@router.get("/{operation_id}/documents", response_model=KnownDocumentsOut, summary="What the collection holds now")
async def documents(semantik: SemantikDep, operation_id: str) -> KnownDocumentsOut:
    known = await batches.known_documents(semantik, operation_id)
    return KnownDocumentsOut(items=[KnownDocumentOut.model_validate(d, from_attributes=True) for d in known.values()])


@router.put("/{operation_id}/plan", response_model=PlanOut, summary="Record the scan's plan once")
async def plan(semantik: SemantikDep, operation_id: str, body: PlanIn) -> PlanOut:
    recorded = await batches.record_plan(
        semantik,
        operation_id,
        batches.FolderPlanIn(
            files_total=body.files_total,
            unchanged=body.unchanged,
            rejected=[RejectedFile(r.path, r.reason) for r in body.rejected],
            batches=[[batches.PlannedFile(f.path, f.content_hash) for f in batch] for batch in body.batches],
            removed=body.removed,
        ),
    )
    return PlanOut(created=recorded.created, batches_total=recorded.batches_total, pending=recorded.pending)


@router.get("/{operation_id}/batches/{number}", response_model=BatchOut, summary="One planned batch")
async def read_batch(semantik: SemantikDep, operation_id: str, number: int) -> BatchOut:
    view = await batches.get_batch(semantik, operation_id, number)
    return BatchOut(
        target=_target_out(view.operation),
        number=view.number,
        done=view.done,
        remaining=view.remaining,
        files=[PlannedFileIO(path=f.path, content_hash=f.content_hash) for f in view.files],
    )


@router.put(
    "/{operation_id}/batches/{number}",
    response_model=CommitOut,
    summary="Hand over a finished batch: points and document rows, applied once however often it is sent",
)
async def commit_batch(semantik: SemantikDep, operation_id: str, number: int, body: BatchIn) -> CommitOut:
    documents = [
        batches.DocumentIn(
            record=DocumentRecord(
                path=d.path,
                content_hash=d.content_hash,
                size=d.size,
                mtime=d.mtime,
                status=d.status,
                error=d.error,
                chunk_count=len(d.points),
                token_count=d.token_count,
                format=d.format,
            ),
            points=[
                ChunkPoint(
                    id=p.id,
                    vector=p.floats(),
                    path=d.path,
                    chunk_index=p.chunk_index,
                    text=p.text,
                    start=p.start,
                    end=p.end,
                    heading=p.heading,
                )
                for p in d.points
            ],
        )
        for d in body.documents
    ]
    result = await batches.commit_batch(
        semantik,
        operation_id,
        number,
        documents,
        batches.BatchTimings(extract_seconds=body.extract_seconds, embed_seconds=body.embed_seconds),
    )
    return CommitOut(duplicate=result.duplicate, remaining=result.remaining)


@router.post("/{operation_id}/finalize", response_model=StatusOut, summary="Drop removed documents; succeed")
async def finalize(semantik: SemantikDep, operations: OperationsDep, operation_id: str) -> StatusOut:
    status, changed = await batches.finalize_operation(semantik, operation_id)
    await _forget_queue(semantik, operations, operation_id)
    if changed:
        metrics.OPERATIONS.labels(status).inc()
    return StatusOut(status=status)


@router.post("/{operation_id}/fail", response_model=StatusOut, summary="End the operation as failed, with why")
async def fail(semantik: SemantikDep, operations: OperationsDep, operation_id: str, body: FailIn) -> StatusOut:
    status = await batches.fail_operation(semantik, operation_id, body.reason)
    await _forget_queue(semantik, operations, operation_id)
    return StatusOut(status=status)


async def _forget_queue(semantik: SemantikDep, operations: OperationsDep, operation_id: str) -> None:
    view = await get_operation(semantik, operation_id)
    if isinstance(operations, QueuedOperations) and view.queue:
        await operations.forget(view.queue)
