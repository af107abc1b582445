"""The in-process index runner: composes the batch steps and owns the I/O, the retries and the progress."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from semantik.contracts.internal_api import DocumentStatus
from semantik.core.embedding import Embedder, Embeddings, TextKind
from semantik.core.pipeline.batch import (
    FileFailure,
    IndexTarget,
    PreparedFile,
    build_updates,
    group_files,
    plan_folder,
    prepare_files,
    rejection_updates,
    texts_to_embed,
)
from semantik.core.pipeline.ids import point_ids
from semantik.core.pipeline.plan import HashedFile, KnownDocument
from semantik.core.pipeline.sandbox import ExtractionPool
from semantik.core.pipeline.sink import IndexBatch, IndexSink, RemovedDocument
from semantik.core.retry import with_retries

log = logging.getLogger(__name__)

GROUP_CHUNKS = 256
GROUP_FILES = 64


@dataclass(slots=True)
class Progress:
    phase: str = "scanning"
    files_total: int = 0
    files_processed: int = 0
    files_failed: int = 0
    files_unchanged: int = 0
    files_removed: int = 0
    chunks: int = 0
    tokens: int = 0
    extract_seconds: float = 0.0
    """Reading, extracting and chunking files."""
    embed_seconds: float = 0.0
    store_seconds: float = 0.0
    """Writing points and rows."""


@dataclass(frozen=True, slots=True)
class IndexReport:
    progress: Progress
    failures: list[FileFailure]
    """Files that failed in this run."""
    still_failing: list[FileFailure]
    """Files that failed before and were not touched again because they did not change."""
    cancelled: bool = False

    @property
    def changed(self) -> bool:
        p = self.progress
        return p.files_processed - p.files_unchanged > 0 or p.files_removed > 0


ProgressCallback = Callable[[Progress], Awaitable[None]]


async def _no_progress(_: Progress) -> None:
    return None


def _never_cancelled() -> bool:
    return False


class IndexRunner:
    def __init__(
        self,
        embedder: Embedder,
        extraction: ExtractionPool,
        sink: IndexSink,
        *,
        group_chunks: int = GROUP_CHUNKS,
        group_files: int = GROUP_FILES,
        on_progress: ProgressCallback = _no_progress,
        cancelled: Callable[[], bool] = _never_cancelled,
    ) -> None:
        self._embedder = embedder
        self._extraction = extraction
        self._sink = sink
        self._group_chunks = group_chunks
        self._group_files = group_files
        self._on_progress = on_progress
        self._cancelled = cancelled

    async def run(self, target: IndexTarget, known: Mapping[str, KnownDocument], *, full: bool) -> IndexReport:
        """Index the target's folder; a cancel stops between batches, so every committed document is whole."""
        progress = Progress()
        await self._on_progress(progress)
        started = time.perf_counter()
        folder = await asyncio.to_thread(plan_folder, target, known, full=full)
        plan = folder.plan
        progress.extract_seconds += time.perf_counter() - started
        log.info(
            "index plan collection=%s to_index=%d unchanged=%d rejected=%d removed=%d",
            target.name,
            len(plan.to_index),
            len(plan.unchanged),
            len(plan.to_reject),
            len(plan.removed),
        )
        progress.phase = "indexing"
        progress.files_total = folder.files_total
        progress.files_unchanged = len(plan.unchanged) + len(plan.still_rejected)
        progress.files_processed = progress.files_unchanged
        await self._on_progress(progress)

        failures = [FileFailure(r.relpath, r.reason) for r in plan.to_reject]
        if plan.to_reject:
            batch = IndexBatch(target.collection_id, target.qdrant_collection, rejection_updates(plan.to_reject, known))
            await self._commit(batch, progress, "record rejected files")
            progress.files_processed += len(plan.to_reject)
            progress.files_failed += len(plan.to_reject)
            await self._on_progress(progress)
        old_counts = {path: doc.chunk_count for path, doc in known.items()}
        groups = group_files(plan.to_index, max_chunks=self._group_chunks, max_files=self._group_files)
        failed, cancelled = await self._index_groups(target, groups, old_counts, progress)
        failures += failed
        if not cancelled and plan.removed:
            removed = [
                RemovedDocument(
                    doc.path, point_ids(target.name, doc.path, range(doc.chunk_count), scheme=target.point_ids)
                )
                for doc in plan.removed
            ]
            await self._commit(
                IndexBatch(target.collection_id, target.qdrant_collection, removed=removed),
                progress,
                "remove deleted documents",
            )
            progress.files_removed += len(removed)

        progress.phase = "cancelled" if cancelled else "done"
        await self._on_progress(progress)
        still_failing = [
            FileFailure(path, known[path].error or "failed")
            for path in sorted([h.file.relpath for h in plan.unchanged] + [r.relpath for r in plan.still_rejected])
            if known[path].status == DocumentStatus.FAILED.value
        ]
        return IndexReport(replace(progress), failures, still_failing, cancelled)

    async def _index_groups(
        self,
        target: IndexTarget,
        groups: Sequence[Sequence[HashedFile]],
        old_counts: Mapping[str, int],
        progress: Progress,
    ) -> tuple[list[FileFailure], bool]:
        """Extract, embed and commit each group in order, the stages overlapping: while one group is embedded
        the next is extracted and the one before committed, so the embedder, the slowest stage, waits on
        neither. Commits stay one at a time and in order. A cancel lets the group being embedded finish and be
        committed, and starts no other. Returns the failures and whether it was cancelled."""
        failures: list[FileFailure] = []
        preparing: asyncio.Task[list[PreparedFile]] | None = None
        committing: asyncio.Task[list[FileFailure]] | None = None
        cancelled = False
        try:
            for number, group in enumerate(groups):
                if self._cancelled():
                    cancelled = True
                    break
                prepared = await (preparing or self._prepare(target, group, progress))
                preparing = None
                if number + 1 < len(groups):
                    preparing = asyncio.create_task(self._prepare(target, groups[number + 1], progress))
                texts = texts_to_embed(prepared)
                embedding_started = time.perf_counter()
                embeddings = await self._embedder.embed(texts, TextKind.DOCUMENT)
                progress.embed_seconds += time.perf_counter() - embedding_started
                if committing is not None:
                    failures += await committing
                committing = asyncio.create_task(self._commit_group(target, prepared, embeddings, old_counts, progress))
            if committing is not None:
                failures += await committing
                committing = None
        finally:
            # Reached with work in flight only when a stage failed or the run was cancelled. Both are let
            # finish: a commit so a group is never half written, an extraction because its thread cannot be
            # stopped and the extraction pool must not be shared with the next run.
            await asyncio.gather(*(t for t in (preparing, committing) if t is not None), return_exceptions=True)
        return failures, cancelled

    async def _prepare(
        self, target: IndexTarget, group: Sequence[HashedFile], progress: Progress
    ) -> list[PreparedFile]:
        started = time.perf_counter()
        prepared = await asyncio.to_thread(
            prepare_files, group, target.chunking, self._extraction, target.max_file_bytes
        )
        progress.extract_seconds += time.perf_counter() - started
        return prepared

    async def _commit_group(
        self,
        target: IndexTarget,
        prepared: Sequence[PreparedFile],
        embeddings: Embeddings,
        old_counts: Mapping[str, int],
        progress: Progress,
    ) -> list[FileFailure]:
        vectors = [v.tolist() for v in embeddings.vectors]
        updates, failures = build_updates(target, prepared, vectors, old_counts)
        await self._commit(
            IndexBatch(target.collection_id, target.qdrant_collection, updates), progress, "commit batch"
        )
        progress.files_processed += len(prepared)
        progress.files_failed += len(failures)
        progress.chunks += len(vectors)
        progress.tokens += embeddings.tokens
        await self._on_progress(progress)
        return failures

    async def _commit(self, batch: IndexBatch, progress: Progress, what: str) -> None:
        started = time.perf_counter()
        await with_retries(lambda: self._sink.commit(batch), what=what)
        progress.store_seconds += time.perf_counter() - started
