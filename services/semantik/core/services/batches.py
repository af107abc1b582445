"""Service-mode operations on the gateway's side: the one writer that workers hand their work to.

A scan records one plan (a second scan of the same operation gets the first plan back, so a file is
never split into two different point sets); each batch is committed once (a second delivery changes
nothing); counters are added in the same transaction that marks the batch done, so the REST answer and
the event stream read exactly what was committed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from semantik.contracts.internal_api import DocumentStatus
from semantik.core.context import Semantik
from semantik.core.db.models import Collection, Operation, OperationBatch, OperationStatus, utcnow
from semantik.core.errors import ConflictError, InvalidInputError, NotFoundError
from semantik.core.pipeline.batch import IndexTarget, rejection_updates
from semantik.core.pipeline.ids import PointIdScheme, point_id, point_ids
from semantik.core.pipeline.plan import KnownDocument
from semantik.core.pipeline.scan import RejectedFile
from semantik.core.pipeline.sink import DocumentUpdate, IndexBatch, LocalIndexSink
from semantik.core.services.generations import reconcile_store
from semantik.core.services.indexing import index_target, load_operation_into, mark_done
from semantik.core.store import metadata
from semantik.core.store.metadata import DocumentRecord
from semantik.core.store.vectors import ChunkPoint

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OperationTarget:
    operation_id: str
    status: str
    full: bool
    queue: str | None
    batches_total: int | None
    model: str
    """The model the target's vectors must come from: a worker with another one refuses the work."""
    target: IndexTarget


@dataclass(frozen=True, slots=True)
class PlannedFile:
    path: str
    content_hash: str


@dataclass(frozen=True, slots=True)
class FolderPlanIn:
    files_total: int
    unchanged: int
    rejected: Sequence[RejectedFile]
    batches: Sequence[Sequence[PlannedFile]]
    removed: Sequence[str]


@dataclass(frozen=True, slots=True)
class RecordedPlan:
    created: bool
    batches_total: int
    pending: list[int]


@dataclass(frozen=True, slots=True)
class BatchView:
    operation: OperationTarget
    number: int
    done: bool
    remaining: int
    files: list[PlannedFile]


@dataclass(frozen=True, slots=True)
class DocumentIn:
    record: DocumentRecord
    points: Sequence[ChunkPoint]


@dataclass(frozen=True, slots=True)
class BatchTimings:
    extract_seconds: float = 0.0
    embed_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class CommitResult:
    duplicate: bool
    remaining: int


def _target(operation: Operation, collection: Collection, into: Collection, max_file_bytes: int) -> OperationTarget:
    return OperationTarget(
        operation_id=operation.id,
        status=operation.status,
        full=bool(operation.options.get("full")),
        queue=operation.queue,
        batches_total=operation.batches_total,
        model=into.model_name,
        target=index_target(operation, collection, into, max_file_bytes),
    )


def _require_active(operation: Operation) -> None:
    if OperationStatus(operation.status).finished:
        raise ConflictError(f"operation {operation.id} is {operation.status}", field="operation_id")


async def start_operation(app: Semantik, operation_id: str) -> OperationTarget:
    """Mark a pending operation running (idempotent) and tell the worker what to index."""
    operation, collection, into = await load_operation_into(app, operation_id)
    _require_active(operation)
    if operation.status == OperationStatus.PENDING.value:
        async with app.sessions.begin() as session:
            locked = await metadata.lock_operation(session, operation_id)
            assert locked is not None
            if locked.status == OperationStatus.PENDING.value:
                locked.status = OperationStatus.RUNNING.value
                locked.started_at = utcnow()
            operation = locked
        await app.store.ensure_collection(into.qdrant_collection, into.dimension, placement=into.placement)
    return _target(operation, collection, into, app.settings.max_file_bytes)


async def known_documents(app: Semantik, operation_id: str) -> dict[str, KnownDocument]:
    _, _, into = await load_operation_into(app, operation_id)
    async with app.sessions() as session:
        return await metadata.known_documents(session, into.id)


async def record_plan(app: Semantik, operation_id: str, plan: FolderPlanIn) -> RecordedPlan:
    """Keep the first plan of an operation; a repeated scan gets that plan back and changes nothing."""
    _, _, into = await load_operation_into(app, operation_id)
    async with app.sessions.begin() as session:
        operation = await metadata.lock_operation(session, operation_id)
        if operation is None:
            raise NotFoundError(f"operation {operation_id!r} does not exist", field="operation_id")
        if operation.batches_total is None:
            _require_active(operation)
            for number, files in enumerate(plan.batches):
                session.add(
                    OperationBatch(
                        operation_id=operation_id,
                        number=number,
                        files=[{"path": f.path, "content_hash": f.content_hash} for f in files],
                        done=False,
                    )
                )
            known = await metadata.known_documents(session, into.id)
            rejections = rejection_updates(plan.rejected, known)
            await metadata.save_documents(session, into.id, [u.record for u in rejections])
            operation.files_total = plan.files_total
            operation.files_unchanged = plan.unchanged
            operation.files_processed = plan.unchanged + len(rejections)
            operation.files_failed = len(rejections)
            operation.batches_total = len(plan.batches)
            operation.removed_paths = [path for path in plan.removed if path in known]
            created = True
        else:
            created = False
        total = operation.batches_total
        assert total is not None
        await session.flush()
        pending = await metadata.pending_batch_numbers(session, operation_id)
    log.info("plan operation=%s created=%s batches=%d pending=%d", operation_id, created, total, len(pending))
    return RecordedPlan(created, total, pending)


async def get_batch(app: Semantik, operation_id: str, number: int) -> BatchView:
    operation, collection, into = await load_operation_into(app, operation_id)
    async with app.sessions() as session:
        batch = await metadata.get_batch(session, operation_id, number)
    if batch is None:
        raise NotFoundError(f"operation {operation_id} has no batch {number}", field="number")
    return BatchView(
        _target(operation, collection, into, app.settings.max_file_bytes),
        number,
        batch.done,
        _remaining(operation),
        [PlannedFile(f["path"], f["content_hash"]) for f in batch.files],
    )


async def commit_batch(
    app: Semantik, operation_id: str, number: int, documents: Sequence[DocumentIn], timings: BatchTimings
) -> CommitResult:
    """Write a batch's points and rows once; a second delivery of the same batch is answered, not applied."""
    operation, collection, into = await load_operation_into(app, operation_id)
    async with app.sessions() as session:
        batch = await metadata.get_batch(session, operation_id, number)
    if batch is None:
        raise NotFoundError(f"operation {operation_id} has no batch {number}", field="number")
    if batch.done:
        return CommitResult(True, _remaining(operation))
    _require_active(operation)
    _check_documents(collection.name, into.point_id_scheme, batch, documents)

    started = time.perf_counter()
    async with app.sessions() as session:
        counts = await metadata.chunk_counts(session, into.id, [d.record.path for d in documents])
    updates = [
        _update(collection.name, into.point_id_scheme, document, counts.get(document.record.path, 0))
        for document in documents
    ]
    # Points first, rows second (LocalIndexSink's order): a crash between them leaves rows that
    # describe the old content, and the re-delivered batch overwrites the same point ids.
    sink = LocalIndexSink(app.store, app.sessions)
    await sink.write_points(IndexBatch(into.id, into.qdrant_collection, updates))
    async with app.sessions.begin() as session:
        locked_batch = await metadata.get_batch(session, operation_id, number, lock=True)
        assert locked_batch is not None
        if locked_batch.done:
            duplicate = True
        else:
            duplicate = False
            await metadata.save_documents(session, into.id, [u.record for u in updates])
            locked_batch.done = True
            locked_batch.committed_at = utcnow()
            failed = sum(1 for u in updates if u.record.status is DocumentStatus.FAILED)
            await metadata.add_to_operation(
                session,
                operation_id,
                files_processed=len(updates),
                files_failed=failed,
                chunks=sum(len(u.points) for u in updates),
                tokens=sum(u.record.token_count for u in updates),
                extract_seconds=timings.extract_seconds,
                embed_seconds=timings.embed_seconds,
                store_seconds=time.perf_counter() - started,
                batches_done=1,
            )
        counted = await metadata.lock_operation(session, operation_id)
        assert counted is not None
        remaining = _remaining(counted)
    return CommitResult(duplicate, remaining)


def _remaining(operation: Operation) -> int:
    return (operation.batches_total or 0) - operation.batches_done


def _check_documents(
    collection: str, scheme: PointIdScheme, batch: OperationBatch, documents: Sequence[DocumentIn]
) -> None:
    planned = {f["path"] for f in batch.files}
    for i, document in enumerate(documents):
        path = document.record.path
        if path not in planned:
            raise InvalidInputError(f"{path!r} is not in batch {batch.number}", field=f"documents[{i}].path")
        for j, point in enumerate(document.points):
            if point.chunk_index != j or point.id != point_id(collection, path, j, scheme=scheme):
                raise InvalidInputError(
                    f"point {j} of {path!r} does not carry the id of chunk {j}", field=f"documents[{i}].points[{j}]"
                )


def _update(collection: str, scheme: PointIdScheme, document: DocumentIn, stored: int) -> DocumentUpdate:
    """The update against what the store holds now, which the gateway knows better than any worker."""
    record = document.record
    if record.status is DocumentStatus.FAILED:
        # The points of the last good version stay searchable until a good version replaces them.
        return DocumentUpdate(_with_chunk_count(record, stored))
    stale = point_ids(collection, record.path, range(len(document.points), stored), scheme=scheme)
    return DocumentUpdate(_with_chunk_count(record, len(document.points)), document.points, stale)


def _with_chunk_count(record: DocumentRecord, count: int) -> DocumentRecord:
    fields: dict[str, Any] = {name: getattr(record, name) for name in record.__dataclass_fields__}
    fields["chunk_count"] = count
    return DocumentRecord(**fields)


async def finalize_operation(app: Semantik, operation_id: str) -> tuple[str, bool]:
    """Drop removed documents and mark the operation succeeded; a finished operation is left as it is.

    Returns the end status and whether this call set it."""
    operation, collection, into = await load_operation_into(app, operation_id)
    if OperationStatus(operation.status).finished:
        return operation.status, False
    if operation.batches_total is None or operation.batches_done < operation.batches_total:
        raise ConflictError(f"operation {operation_id} still has {_remaining(operation)} batches to commit")
    async with app.sessions() as session:
        counts = await metadata.chunk_counts(session, into.id, operation.removed_paths)
    scheme = into.point_id_scheme
    stale = [
        pid for path, count in counts.items() for pid in point_ids(collection.name, path, range(count), scheme=scheme)
    ]
    await app.store.delete(into.qdrant_collection, stale)
    finished = utcnow()
    async with app.sessions.begin() as session:
        locked = await metadata.lock_operation(session, operation_id)
        assert locked is not None
        if OperationStatus(locked.status).finished:
            return locked.status, False
        await metadata.delete_documents(session, into.id, list(counts))
        locked.files_removed = len(counts)
        locked.status = OperationStatus.SUCCEEDED.value
        locked.finished_at = finished
        await mark_done(session, locked, collection, finished)
    if operation.kind == "reindex":
        await reconcile_store(app, collection.name)
    log.info("operation succeeded operation=%s collection=%s", operation_id, collection.name)
    return OperationStatus.SUCCEEDED.value, True


async def fail_operation(app: Semantik, operation_id: str, reason: str) -> str:
    async with app.sessions.begin() as session:
        operation = await metadata.lock_operation(session, operation_id)
        if operation is None:
            raise NotFoundError(f"operation {operation_id!r} does not exist", field="operation_id")
        if not OperationStatus(operation.status).finished:
            operation.status = OperationStatus.FAILED.value
            operation.error = reason
            operation.finished_at = utcnow()
            log.warning("operation failed operation=%s reason=%s", operation_id, reason)
        return operation.status
