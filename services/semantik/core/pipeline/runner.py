"""The index runner: composes the pure stages and owns the I/O, the retries and the progress."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from semantik.core.db.models import DocumentStatus
from semantik.core.embedding import Embedder, TextKind
from semantik.core.pipeline.chunk import Chunk, ChunkingConfig, chunk_text
from semantik.core.pipeline.extract import ExtractionError, read_and_extract
from semantik.core.pipeline.ids import content_hash, point_id, point_ids
from semantik.core.pipeline.plan import HashedFile, IndexPlan, KnownDocument, plan_index
from semantik.core.pipeline.scan import RejectedFile, ScannedFile, scan
from semantik.core.pipeline.sink import DocumentUpdate, IndexBatch, IndexSink, RemovedDocument
from semantik.core.pipeline.tokens import TextTokenizer
from semantik.core.retry import with_retries
from semantik.core.store.metadata import DocumentRecord
from semantik.core.store.vectors import ChunkPoint

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class IndexTarget:
    collection_id: int
    name: str
    qdrant_collection: str
    root: Path
    include: Sequence[str]
    exclude: Sequence[str]
    chunking: ChunkingConfig
    max_file_bytes: int


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


@dataclass(frozen=True, slots=True)
class FileFailure:
    path: str
    reason: str


@dataclass(frozen=True, slots=True)
class IndexReport:
    progress: Progress
    failures: list[FileFailure]
    """Files that failed in this run."""
    still_failing: list[FileFailure]
    """Files that failed before and were not touched again because they did not change."""

    @property
    def changed(self) -> bool:
        p = self.progress
        return p.files_processed - p.files_unchanged > 0 or p.files_removed > 0


@dataclass(slots=True)
class _Prepared:
    hashed: HashedFile
    chunks: list[Chunk] = field(default_factory=list)
    format: str | None = None
    failure: str | None = None


ProgressCallback = Callable[[Progress], Awaitable[None]]


async def _no_progress(_: Progress) -> None:
    return None


class IndexRunner:
    def __init__(
        self,
        embedder: Embedder,
        tokenizer: TextTokenizer,
        sink: IndexSink,
        *,
        group_chunks: int = 256,
        group_files: int = 64,
        on_progress: ProgressCallback = _no_progress,
    ) -> None:
        self._embedder = embedder
        self._tokenizer = tokenizer
        self._sink = sink
        self._group_chunks = group_chunks
        self._group_files = group_files
        self._on_progress = on_progress

    async def run(self, target: IndexTarget, known: Mapping[str, KnownDocument], *, full: bool) -> IndexReport:
        progress = Progress()
        await self._on_progress(progress)
        scanned = await asyncio.to_thread(scan, target.root, target.include, target.exclude, target.max_file_bytes)
        progress.phase = "planning"
        progress.files_total = len(scanned.files) + len(scanned.rejected)
        await self._on_progress(progress)
        hashed = await asyncio.to_thread(_hash_files, scanned.files)
        unreadable = [RejectedFile(f.relpath, reason) for f, reason in hashed if isinstance(reason, str)]
        plan = plan_index(
            [h for _, h in hashed if isinstance(h, HashedFile)],
            [*scanned.rejected, *unreadable],
            known,
            full=full,
        )
        log.info(
            "index plan collection=%s to_index=%d unchanged=%d rejected=%d removed=%d",
            target.name,
            len(plan.to_index),
            len(plan.unchanged),
            len(plan.to_reject),
            len(plan.removed),
        )
        progress.phase = "indexing"
        progress.files_unchanged = len(plan.unchanged) + len(plan.still_rejected)
        progress.files_processed = progress.files_unchanged
        await self._on_progress(progress)

        failures = await self._record_rejections(target, plan, known, progress)
        for group in self._groups(plan.to_index):
            prepared = await asyncio.to_thread(self._prepare_group, group, target.chunking)
            failures += await self._index_group(target, prepared, known, progress)
        await self._remove(target, plan.removed, progress)

        progress.phase = "done"
        await self._on_progress(progress)
        still_failing = [
            FileFailure(path, known[path].error or "failed")
            for path in sorted([h.file.relpath for h in plan.unchanged] + [r.relpath for r in plan.still_rejected])
            if known[path].status == DocumentStatus.FAILED.value
        ]
        return IndexReport(replace(progress), failures, still_failing)

    def _groups(self, files: Sequence[HashedFile]) -> list[list[HashedFile]]:
        # Group by estimated chunk count (file size / ~4 bytes a token) so one embed call sees enough
        # texts to batch well, without holding a whole corpus in memory.
        groups: list[list[HashedFile]] = []
        current: list[HashedFile] = []
        estimated = 0
        for hashed in files:
            current.append(hashed)
            estimated += max(1, hashed.file.size // 4 // 200)
            if estimated >= self._group_chunks or len(current) >= self._group_files:
                groups.append(current)
                current, estimated = [], 0
        if current:
            groups.append(current)
        return groups

    def _prepare_group(self, group: Sequence[HashedFile], chunking: ChunkingConfig) -> list[_Prepared]:
        prepared: list[_Prepared] = []
        for hashed in group:
            item = _Prepared(hashed)
            try:
                extracted = read_and_extract(hashed.file.path, hashed.file.relpath)
                item.format = extracted.format
                item.chunks = chunk_text(extracted.text, chunking, self._tokenizer)
                if not item.chunks:
                    item.failure = "no text to index"
            except ExtractionError as exc:
                item.failure = exc.reason
            prepared.append(item)
        return prepared

    async def _index_group(
        self,
        target: IndexTarget,
        prepared: Sequence[_Prepared],
        known: Mapping[str, KnownDocument],
        progress: Progress,
    ) -> list[FileFailure]:
        texts = [chunk.text for item in prepared if item.failure is None for chunk in item.chunks]
        embeddings = await self._embedder.embed(texts, TextKind.DOCUMENT)
        vectors = iter(embeddings.vectors)
        updates: list[DocumentUpdate] = []
        failures: list[FileFailure] = []
        for item in prepared:
            file = item.hashed.file
            previous = known.get(file.relpath)
            old_count = previous.chunk_count if previous else 0
            if item.failure is not None:
                failures.append(FileFailure(file.relpath, item.failure))
                # The points of the last good version stay searchable until a good version replaces them.
                updates.append(DocumentUpdate(_failed_record(file, item.hashed.content_hash, item.failure, old_count)))
                continue
            points = [
                ChunkPoint(
                    id=point_id(target.name, file.relpath, chunk.index),
                    vector=next(vectors).tolist(),
                    path=file.relpath,
                    chunk_index=chunk.index,
                    text=chunk.text,
                    start=chunk.start,
                    end=chunk.end,
                    heading=chunk.heading,
                )
                for chunk in item.chunks
            ]
            record = DocumentRecord(
                path=file.relpath,
                content_hash=item.hashed.content_hash,
                size=file.size,
                mtime=file.mtime,
                status=DocumentStatus.INDEXED,
                error=None,
                chunk_count=len(points),
                token_count=sum(chunk.token_count for chunk in item.chunks),
                format=item.format,
            )
            stale = point_ids(target.name, file.relpath, range(len(points), old_count))
            updates.append(DocumentUpdate(record, points, stale))
        batch = IndexBatch(target.collection_id, target.qdrant_collection, updates)
        await with_retries(lambda: self._sink.commit(batch), what="commit batch")
        progress.files_processed += len(prepared)
        progress.files_failed += len(failures)
        progress.chunks += len(texts)
        progress.tokens += embeddings.tokens
        await self._on_progress(progress)
        return failures

    async def _record_rejections(
        self, target: IndexTarget, plan: IndexPlan, known: Mapping[str, KnownDocument], progress: Progress
    ) -> list[FileFailure]:
        if not plan.to_reject:
            return []
        updates = []
        for rejection in plan.to_reject:
            previous = known.get(rejection.relpath)
            updates.append(
                DocumentUpdate(
                    DocumentRecord(
                        path=rejection.relpath,
                        content_hash=None,
                        size=previous.size if previous else 0,
                        mtime=previous.mtime if previous else 0.0,
                        status=DocumentStatus.FAILED,
                        error=rejection.reason,
                        chunk_count=previous.chunk_count if previous else 0,
                        token_count=0,
                        format=None,
                    )
                )
            )
        batch = IndexBatch(target.collection_id, target.qdrant_collection, updates)
        await with_retries(lambda: self._sink.commit(batch), what="record rejected files")
        progress.files_processed += len(updates)
        progress.files_failed += len(updates)
        await self._on_progress(progress)
        return [FileFailure(r.relpath, r.reason) for r in plan.to_reject]

    async def _remove(self, target: IndexTarget, removed: Sequence[KnownDocument], progress: Progress) -> None:
        if not removed:
            return
        batch = IndexBatch(
            target.collection_id,
            target.qdrant_collection,
            removed=[
                RemovedDocument(doc.path, point_ids(target.name, doc.path, range(doc.chunk_count))) for doc in removed
            ],
        )
        await with_retries(lambda: self._sink.commit(batch), what="remove deleted documents")
        progress.files_removed += len(removed)
        await self._on_progress(progress)


def _hash_files(files: Sequence[ScannedFile]) -> list[tuple[ScannedFile, HashedFile | str]]:
    """Hash each file's content; a file that cannot be read gets its reason instead."""
    result: list[tuple[ScannedFile, HashedFile | str]] = []
    for file in files:
        try:
            result.append((file, HashedFile(file, content_hash(file.path.read_bytes()))))
        except PermissionError:
            result.append((file, "permission denied"))
        except OSError as exc:
            result.append((file, f"cannot read the file: {exc.strerror or exc}"))
    return result


def _failed_record(file: ScannedFile, digest: str, reason: str, chunk_count: int) -> DocumentRecord:
    return DocumentRecord(
        path=file.relpath,
        content_hash=digest,
        size=file.size,
        mtime=file.mtime,
        status=DocumentStatus.FAILED,
        error=reason,
        chunk_count=chunk_count,
        token_count=0,
        format=None,
    )
