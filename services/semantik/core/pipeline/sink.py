"""Where finished batches go: the store and the metadata DB, written in an order that survives a crash.

Points first, then stale points, then the rows. A crash in between leaves rows that still describe the
old content, so the next run re-does the document; deterministic ids make that re-run an overwrite.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from semantik.core.search.analyzer import Analyzer, analyzer_for
from semantik.core.search.sparse import document_vector
from semantik.core.store import metadata
from semantik.core.store.backend import VectorBackend
from semantik.core.store.metadata import DocumentRecord
from semantik.core.store.vectors import ChunkPoint


@dataclass(frozen=True, slots=True)
class DocumentUpdate:
    record: DocumentRecord
    points: Sequence[ChunkPoint] = ()
    stale_point_ids: Sequence[str] = ()
    """Points of an older version beyond the new chunk count."""


@dataclass(frozen=True, slots=True)
class RemovedDocument:
    path: str
    point_ids: Sequence[str]


@dataclass(frozen=True, slots=True)
class IndexBatch:
    collection_id: int
    qdrant_collection: str
    updates: Sequence[DocumentUpdate] = ()
    removed: Sequence[RemovedDocument] = field(default_factory=tuple)


class IndexSink(Protocol):
    async def commit(self, batch: IndexBatch) -> None: ...


class LocalIndexSink:
    """Writes batches straight to the store and the DB: the gateway's path and the embedded mode's."""

    def __init__(self, store: VectorBackend, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._store = store
        self._sessions = sessions

    async def commit(self, batch: IndexBatch) -> None:
        await self.write_points(batch)
        async with self._sessions.begin() as session:
            await metadata.save_documents(session, batch.collection_id, [u.record for u in batch.updates])
            await metadata.delete_documents(session, batch.collection_id, [r.path for r in batch.removed])

    async def write_points(self, batch: IndexBatch) -> None:
        """The store's half of a commit: new points with their sparse vectors, then the stale ones deleted."""
        points = [point for update in batch.updates for point in update.points]
        async with self._sessions.begin() as session:
            target = await metadata.get_collection_by_id(session, batch.collection_id)
            if target is not None and target.sparse_language is not None and points:
                analyzer = analyzer_for(target.sparse_language)
                # Analysis is CPU work over untrusted text: off the event loop, which serves searches meanwhile.
                points, terms = await asyncio.to_thread(
                    with_sparse_vectors, points, analyzer, target.sparse_terms, target.sparse_chunks
                )
                await metadata.add_sparse_statistics(session, target.id, terms, len(points))
        await self._store.upsert(batch.qdrant_collection, points)
        stale = [pid for update in batch.updates for pid in update.stale_point_ids]
        stale += [pid for removed in batch.removed for pid in removed.point_ids]
        await self._store.delete(batch.qdrant_collection, stale)


def with_sparse_vectors(
    points: Sequence[ChunkPoint], analyzer: Analyzer, terms_before: int, chunks_before: int
) -> tuple[list[ChunkPoint], int]:
    """The points with BM25 sparse vectors made from their text, and the terms they hold.

    The average chunk length includes this batch, so a collection's first batch normalises by itself."""
    analysed = [analyzer.terms(point.text) for point in points]
    terms = sum(map(len, analysed))
    average = (terms_before + terms) / max(1, chunks_before + len(points))
    return [
        dataclasses.replace(point, sparse=document_vector(chunk_terms, average))
        for point, chunk_terms in zip(points, analysed, strict=True)
    ], terms
