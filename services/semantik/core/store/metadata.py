"""All SQL of the metadata database; routers and the pipeline call these functions, never SQL."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from semantik.contracts.internal_api import DocumentStatus
from semantik.core.db.models import (
    NEXT_SEQ,
    Collection,
    Document,
    Operation,
    OperationBatch,
    OperationStatus,
    utcnow,
)
from semantik.core.pipeline.plan import KnownDocument

ACTIVE_STATUSES = (OperationStatus.PENDING.value, OperationStatus.RUNNING.value)


@dataclass(frozen=True, slots=True)
class DocumentRecord:
    path: str
    content_hash: str | None
    size: int
    mtime: float
    status: DocumentStatus
    error: str | None
    chunk_count: int
    token_count: int
    format: str | None


@dataclass(frozen=True, slots=True)
class CollectionCounts:
    documents: int
    indexed: int
    failed: int
    chunks: int


async def get_collection(session: AsyncSession, name: str) -> Collection | None:
    result = await session.scalars(
        select(Collection).where(Collection.name == name, Collection.reindex_of_id.is_(None))
    )
    return result.first()


async def list_collections(session: AsyncSession) -> Sequence[Collection]:
    query = select(Collection).where(Collection.reindex_of_id.is_(None)).order_by(Collection.name)
    return (await session.scalars(query)).all()


async def get_shadow(session: AsyncSession, collection_id: int) -> Collection | None:
    """The hidden next generation a reindex of this collection builds, if there is one."""
    return (await session.scalars(select(Collection).where(Collection.reindex_of_id == collection_id))).first()


async def replace_documents(session: AsyncSession, collection_id: int, from_collection_id: int) -> None:
    """The collection's rows become those of `from_collection_id` (a shadow being swapped in)."""
    await session.execute(delete(Document).where(Document.collection_id == collection_id))
    await session.execute(
        update(Document).where(Document.collection_id == from_collection_id).values(collection_id=collection_id)
    )


async def collection_counts(session: AsyncSession, collection_id: int) -> CollectionCounts:
    row = (
        await session.execute(
            select(
                func.count(Document.id),
                func.count(Document.id).filter(Document.status == DocumentStatus.INDEXED.value),
                func.count(Document.id).filter(Document.status == DocumentStatus.FAILED.value),
                func.coalesce(func.sum(Document.chunk_count), 0),
            ).where(Document.collection_id == collection_id)
        )
    ).one()
    return CollectionCounts(int(row[0]), int(row[1]), int(row[2]), int(row[3]))


async def known_documents(session: AsyncSession, collection_id: int) -> dict[str, KnownDocument]:
    rows = await session.scalars(select(Document).where(Document.collection_id == collection_id))
    return {
        row.path: KnownDocument(
            path=row.path,
            content_hash=row.content_hash,
            status=row.status,
            error=row.error,
            chunk_count=row.chunk_count,
            size=row.size,
            mtime=row.mtime,
        )
        for row in rows
    }


async def list_documents(
    session: AsyncSession,
    collection_id: int,
    *,
    status: str | None = None,
    limit: int = 1000,
    offset: int = 0,
) -> Sequence[Document]:
    query = select(Document).where(Document.collection_id == collection_id)
    if status is not None:
        query = query.where(Document.status == status)
    return (await session.scalars(query.order_by(Document.path).limit(limit).offset(offset))).all()


async def save_documents(session: AsyncSession, collection_id: int, records: Sequence[DocumentRecord]) -> None:
    """Insert or update rows by (collection, path); the caller commits."""
    if not records:
        return
    existing = {
        row.path: row
        for row in await session.scalars(
            select(Document).where(
                Document.collection_id == collection_id, Document.path.in_([r.path for r in records])
            )
        )
    }
    now = utcnow()
    for record in records:
        row = existing.get(record.path)
        if row is None:
            row = Document(collection_id=collection_id, path=record.path)
            session.add(row)
        row.content_hash = record.content_hash
        row.size = record.size
        row.mtime = record.mtime
        row.status = record.status.value
        row.error = record.error
        row.chunk_count = record.chunk_count
        row.token_count = record.token_count
        row.format = record.format
        if record.status is DocumentStatus.INDEXED:
            row.indexed_at = now


async def delete_documents(session: AsyncSession, collection_id: int, paths: Sequence[str]) -> None:
    if paths:
        await session.execute(
            delete(Document).where(Document.collection_id == collection_id, Document.path.in_(list(paths)))
        )


async def active_operation(session: AsyncSession, collection_id: int) -> Operation | None:
    result = await session.scalars(
        select(Operation).where(Operation.collection_id == collection_id, Operation.status.in_(ACTIVE_STATUSES))
    )
    return result.first()


async def latest_operation_id(session: AsyncSession, collection_id: int, kinds: Sequence[str]) -> str | None:
    result = await session.scalars(
        select(Operation.id)
        .where(Operation.collection_id == collection_id, Operation.kind.in_(list(kinds)))
        .order_by(Operation.created_at.desc())
        .limit(1)
    )
    return result.first()


async def get_operation(session: AsyncSession, operation_id: str) -> Operation | None:
    return await session.get(Operation, operation_id)


async def operation_with_collection(
    session: AsyncSession, operation_id: str
) -> tuple[Operation, Collection, Collection | None] | None:
    """The operation, its collection, and the collection row it writes into: the collection itself, or
    the shadow of a reindex (None when that shadow is gone)."""
    operation = await session.get(Operation, operation_id)
    if operation is None:
        return None
    collection = await session.get(Collection, operation.collection_id)
    assert collection is not None, "operations cascade with their collection"
    into_id = operation.options.get("into")
    if into_id is None:
        return operation, collection, collection
    into = await session.get(Collection, int(into_id))
    return operation, collection, into if into is not None and into.reindex_of_id == collection.id else None


async def update_operation(session: AsyncSession, operation_id: str, **values: Any) -> None:
    await session.execute(update(Operation).where(Operation.id == operation_id).values(**values, seq=NEXT_SEQ))


async def fail_interrupted_operations(session: AsyncSession, reason: str, kinds: Sequence[str] | None = None) -> int:
    query = update(Operation).where(Operation.status.in_(ACTIVE_STATUSES))
    if kinds is not None:
        query = query.where(Operation.kind.in_(kinds))
    result = await session.execute(
        query.values(status=OperationStatus.FAILED.value, error=reason, finished_at=utcnow(), seq=NEXT_SEQ)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def mark_indexed(session: AsyncSession, collection_id: int, when: datetime) -> None:
    await session.execute(update(Collection).where(Collection.id == collection_id).values(last_indexed_at=when))


async def add_to_operation(session: AsyncSession, operation_id: str, **deltas: float) -> None:
    """Add to an operation's counters in the database itself, so concurrent batches never lose a count."""
    values = {name: getattr(Operation, name) + delta for name, delta in deltas.items()}
    await session.execute(update(Operation).where(Operation.id == operation_id).values(**values, seq=NEXT_SEQ))


async def lock_operation(session: AsyncSession, operation_id: str) -> Operation | None:
    result = await session.scalars(
        select(Operation)
        .where(Operation.id == operation_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return result.first()


async def get_batch(
    session: AsyncSession, operation_id: str, number: int, *, lock: bool = False
) -> OperationBatch | None:
    query = select(OperationBatch).where(OperationBatch.operation_id == operation_id, OperationBatch.number == number)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    return (await session.scalars(query)).first()


async def pending_batch_numbers(session: AsyncSession, operation_id: str) -> list[int]:
    result = await session.scalars(
        select(OperationBatch.number)
        .where(OperationBatch.operation_id == operation_id, OperationBatch.done.is_(False))
        .order_by(OperationBatch.number)
    )
    return list(result)


async def chunk_counts(session: AsyncSession, collection_id: int, paths: Sequence[str]) -> dict[str, int]:
    """Points each of these documents has in the store now (ids 0..count-1)."""
    if not paths:
        return {}
    rows = await session.execute(
        select(Document.path, Document.chunk_count).where(
            Document.collection_id == collection_id, Document.path.in_(list(paths))
        )
    )
    return {path: count for path, count in rows.tuples()}


async def operation_by_key(session: AsyncSession, request_key: str) -> Operation | None:
    return (await session.scalars(select(Operation).where(Operation.request_key == request_key))).first()


async def get_collection_by_id(session: AsyncSession, collection_id: int) -> Collection | None:
    return await session.get(Collection, collection_id, populate_existing=True)


async def add_sparse_statistics(session: AsyncSession, collection_id: int, terms: int, chunks: int) -> None:
    """Count chunks written with sparse vectors, in one statement so concurrent batches add up."""
    await session.execute(
        update(Collection)
        .where(Collection.id == collection_id)
        .values(sparse_terms=Collection.sparse_terms + terms, sparse_chunks=Collection.sparse_chunks + chunks)
    )
