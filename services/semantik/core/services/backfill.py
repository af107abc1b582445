"""Backfill: build a collection's sparse (keyword) vectors from its stored chunk text, without re-embedding.

Collections indexed before hybrid search hold one unnamed dense vector per point, and a collection whose
language changed holds sparse vectors of the old analyzer. Qdrant cannot add a named vector to an existing
collection, so a backfill copies the live store collection into the next generation's (`.g<N>`), in the
named layout, each point keeping its id, payload and dense vector and gaining a sparse vector analysed
from its stored text. Then one transaction points the collection's row at the copy, and the alias follows
(`generations.reconcile_store`), as after a reindex. Search reads the old copy, dense-only and saying so,
until that transaction.

A backfill is an operation (kind `backfill`), so the one-active-operation rule keeps index runs from
writing into the old copy meanwhile. It runs in the gateway (the one owner of data) or the CLI, never in
a worker. A crash leaves an unreferenced copy, which the next reconcile drops, and the operation is
failed when the gateway starts again; the next backfill starts over. A gateway that finds its operation
ended by someone else at commit (a restarted replica failed it) drops its copy and changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Container

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from semantik.core.context import Semantik
from semantik.core.db.models import Collection, Operation, OperationStatus, utcnow
from semantik.core.errors import ConflictError
from semantik.core.search.analyzer import Analyzer, analyzer_for
from semantik.core.search.sparse import document_vector
from semantik.core.services.generations import generation_collection_name, reconcile_store
from semantik.core.store import metadata
from semantik.core.store.vectors import ChunkPoint, StoredPoint

log = logging.getLogger(__name__)

KIND = "backfill"
PAGE_POINTS = 256
PROGRESS_WRITE_INTERVAL = 1.0


def needs_backfill(row: Collection) -> bool:
    return row.reindex_of_id is None and row.sparse_language != row.language


async def open_backfill(app: Semantik, name: str) -> Operation | None:
    """Record a pending backfill of `name`, or None when its keyword index is already built.

    Raises ConflictError while another operation runs on the collection: the caller tries again later."""
    async with app.sessions() as session:
        row = await metadata.get_collection(session, name)
    if row is None or not needs_backfill(row):
        return None
    operation = Operation(
        id=str(uuid.uuid4()),
        collection_id=row.id,
        kind=KIND,
        status=OperationStatus.PENDING.value,
        options={"language": row.language},
    )
    try:
        async with app.sessions.begin() as session:
            active = await metadata.active_operation(session, row.id)
            if active is not None:
                raise ConflictError(
                    f"collection {name!r} is busy with operation {active.id}; its keyword index is built after",
                    field="collection",
                )
            session.add(operation)
    except IntegrityError as exc:
        raise ConflictError(f"collection {name!r} is busy with another operation", field="collection") from exc
    return operation


async def open_due_backfills(app: Semantik, skip: Container[str] = ()) -> dict[str, Operation]:
    """Backfills, by collection, for every collection that needs one, is not busy and is not in `skip`."""
    async with app.sessions() as session:
        rows = await metadata.list_collections(session)
    opened = {}
    for row in rows:
        if not needs_backfill(row) or row.name in skip:
            continue
        try:
            operation = await open_backfill(app, row.name)
        except ConflictError as exc:
            log.info("backfill deferred collection=%s reason=%s", row.name, exc)
            continue
        if operation is not None:
            opened[row.name] = operation
    return opened


async def run_backfill(app: Semantik, operation_id: str) -> None:
    """Run a pending backfill to its end; the operation always ends succeeded or failed."""
    async with app.sessions.begin() as session:
        found = await metadata.operation_with_collection(session, operation_id)
        assert found is not None, operation_id
        operation, live, _ = found
        await metadata.update_operation(
            session, operation_id, status=OperationStatus.RUNNING.value, started_at=utcnow()
        )
    language = str(operation.options["language"])
    generation = await _next_generation(app, live)
    copy = generation_collection_name(live.name, generation)
    started = time.perf_counter()
    try:
        terms, chunks = await _copy_with_sparse(app, operation_id, live, copy, analyzer_for(language))
        async with app.sessions.begin() as session:
            current = await metadata.lock_operation(session, operation_id)
            if current is None or OperationStatus(current.status).finished:
                raise ConflictError(f"backfill {operation_id} was ended meanwhile: its copy is dropped")
            await session.execute(
                update(Collection)
                .where(Collection.id == live.id)
                .values(
                    qdrant_collection=copy,
                    generation=generation,
                    sparse_language=language,
                    sparse_terms=terms,
                    sparse_chunks=chunks,
                )
            )
            current.status = OperationStatus.SUCCEEDED.value
            current.chunks = chunks
            current.store_seconds = time.perf_counter() - started
            current.finished_at = utcnow()
    except BaseException as exc:
        await app.store.drop_collection(copy)
        reason = str(exc) if isinstance(exc, ConflictError) else f"backfill failed: {type(exc).__name__}: {exc}"
        async with app.sessions.begin() as session:
            current = await metadata.lock_operation(session, operation_id)
            if current is not None and not OperationStatus(current.status).finished:
                current.status = OperationStatus.FAILED.value
                current.error = reason
                current.finished_at = utcnow()
        log.warning("backfill failed collection=%s operation=%s reason=%s", live.name, operation_id, reason)
        raise
    await reconcile_store(app, live.name)
    log.info(
        "backfill done collection=%s operation=%s language=%s chunks=%d seconds=%.1f",
        live.name,
        operation_id,
        language,
        chunks,
        time.perf_counter() - started,
    )


async def _next_generation(app: Semantik, live: Collection) -> int:
    async with app.sessions() as session:
        shadow = await metadata.get_shadow(session, live.id)
    return max(live.generation, shadow.generation if shadow else 0) + 1


async def _copy_with_sparse(
    app: Semantik, operation_id: str, live: Collection, copy: str, analyzer: Analyzer
) -> tuple[int, int]:
    """Copy every point of the live store collection into `copy` with a sparse vector; returns the
    terms and chunks counted. Two passes: BM25 normalises by the average length, known after the first."""
    await app.store.drop_collection(copy)  # what an interrupted backfill left
    await app.store.ensure_collection(copy, live.dimension, placement=live.placement)
    terms = chunks = 0
    async for page in _pages(app, live.qdrant_collection):
        terms += await asyncio.to_thread(_count_terms, page, analyzer)
        chunks += len(page)
    average = terms / chunks if chunks else 0.0
    copied = 0
    last_write = 0.0
    async for page in _pages(app, live.qdrant_collection):
        points = await asyncio.to_thread(_with_sparse, page, analyzer, average)
        await app.store.upsert(copy, points)
        copied += len(points)
        if time.monotonic() - last_write >= PROGRESS_WRITE_INTERVAL:
            last_write = time.monotonic()
            async with app.sessions.begin() as session:
                await metadata.update_operation(session, operation_id, chunks=copied)
    return terms, chunks


async def _pages(app: Semantik, name: str) -> AsyncIterator[list[StoredPoint]]:
    offset: str | None = None
    while True:
        page, offset = await app.store.scroll(name, limit=PAGE_POINTS, offset=offset)
        if page:
            yield page
        if offset is None:
            return


def _count_terms(page: list[StoredPoint], analyzer: Analyzer) -> int:
    return sum(len(analyzer.terms(_text(point))) for point in page)


def _text(point: StoredPoint) -> str:
    return str(point.payload.get("text", ""))


def _with_sparse(page: list[StoredPoint], analyzer: Analyzer, average: float) -> list[ChunkPoint]:
    return [
        ChunkPoint(
            id=point.id,
            vector=point.vector,
            path=str(point.payload["path"]),
            chunk_index=int(point.payload["chunk_index"]),
            text=_text(point),
            start=int(point.payload["start"]),
            end=int(point.payload["end"]),
            heading=point.payload.get("heading"),
            sparse=document_vector(analyzer.terms(_text(point)), average),
        )
        for point in page
    ]
