"""The pipeline's steps over one batch of files, shared by the in-process runner and the arq workers.

Each step is a plain function over plain data: planning reads the folder, preparing reads and chunks
files, and building turns prepared files plus their vectors into the document updates a sink commits.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from semantik.contracts.internal_api import DocumentStatus
from semantik.core.pipeline.chunk import Chunk, ChunkingConfig
from semantik.core.pipeline.extract import ExtractionError, read_regular_file
from semantik.core.pipeline.ids import PointIdScheme, content_hash, point_id, point_ids
from semantik.core.pipeline.plan import HashedFile, IndexPlan, KnownDocument, plan_index
from semantik.core.pipeline.sandbox import ExtractionPool, FileRequest
from semantik.core.pipeline.scan import RejectedFile, ScannedFile, scan
from semantik.core.pipeline.sink import DocumentUpdate
from semantik.core.store.metadata import DocumentRecord
from semantik.core.store.vectors import ChunkPoint


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
    point_ids: PointIdScheme


@dataclass(frozen=True, slots=True)
class FolderPlan:
    plan: IndexPlan
    files_total: int


@dataclass(slots=True)
class PreparedFile:
    hashed: HashedFile
    chunks: list[Chunk] = field(default_factory=list)
    format: str | None = None
    failure: str | None = None


@dataclass(frozen=True, slots=True)
class FileFailure:
    path: str
    reason: str


def plan_folder(target: IndexTarget, known: Mapping[str, KnownDocument], *, full: bool) -> FolderPlan:
    """Scan the folder, hash what it holds and diff it against what the metadata DB knows (blocking I/O)."""
    scanned = scan(target.root, target.include, target.exclude, target.max_file_bytes)
    hashed = hash_files(scanned.files, target.max_file_bytes)
    unreadable = [RejectedFile(f.relpath, reason) for f, reason in hashed if isinstance(reason, str)]
    plan = plan_index(
        [h for _, h in hashed if isinstance(h, HashedFile)],
        [*scanned.rejected, *unreadable],
        known,
        full=full,
    )
    return FolderPlan(plan, len(scanned.files) + len(scanned.rejected))


def hash_files(files: Sequence[ScannedFile], max_bytes: int) -> list[tuple[ScannedFile, HashedFile | str]]:
    """Hash each file's content; a file that cannot be read gets its reason instead.

    The reader refuses what is not a regular file (a FIFO swapped in would block a plain read) and stops
    at `max_bytes` while reading, so a file that grew after the scan cannot make this read unbounded.
    """
    result: list[tuple[ScannedFile, HashedFile | str]] = []
    for file in files:
        try:
            result.append((file, HashedFile(file, content_hash(read_regular_file(file.path, max_bytes)))))
        except ExtractionError as exc:
            result.append((file, exc.reason))
        except PermissionError:
            result.append((file, "permission denied"))
        except OSError as exc:
            result.append((file, f"cannot read the file: {exc.strerror or exc}"))
    return result


def group_files(files: Sequence[HashedFile], *, max_chunks: int, max_files: int) -> list[list[HashedFile]]:
    """Split into batches by estimated chunk count (file size / ~4 bytes a token / ~200 tokens a chunk),
    so one embed call sees enough texts to batch well without holding a whole corpus in memory."""
    groups: list[list[HashedFile]] = []
    current: list[HashedFile] = []
    estimated = 0
    for hashed in files:
        current.append(hashed)
        estimated += max(1, hashed.file.size // 4 // 200)
        if estimated >= max_chunks or len(current) >= max_files:
            groups.append(current)
            current, estimated = [], 0
    if current:
        groups.append(current)
    return groups


def locate_file(root: Path, relpath: str) -> ScannedFile | str:
    """Find a planned file again in another process; the reason when it is gone or left the root."""
    path = root / relpath
    try:
        resolved = path.resolve(strict=True)
        if not resolved.is_relative_to(root.resolve()):
            return "the path now leads outside the folder being indexed"
        info = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return "the file was removed while the index ran"
    except OSError as exc:
        return f"cannot read the file: {exc.strerror or exc}"
    return ScannedFile(relpath, path, info.st_size, info.st_mtime)


def prepare_files(
    files: Sequence[HashedFile], chunking: ChunkingConfig, pool: ExtractionPool, max_bytes: int
) -> list[PreparedFile]:
    """Read, extract and chunk each file in the pool's limited processes (blocking); a failure carries its reason."""
    # Absolute paths: the pool's processes need not share this one's working directory.
    requests = [FileRequest(os.path.abspath(h.file.path), h.file.relpath, max_bytes, chunking) for h in files]
    prepared: list[PreparedFile] = []
    for hashed, outcome in zip(files, pool.prepare(requests), strict=True):
        if isinstance(outcome, str):
            prepared.append(PreparedFile(hashed, failure=outcome))
        else:
            prepared.append(PreparedFile(hashed, outcome.chunks, outcome.format))
    return prepared


def texts_to_embed(prepared: Sequence[PreparedFile]) -> list[str]:
    return [chunk.text for item in prepared if item.failure is None for chunk in item.chunks]


def build_updates(
    target: IndexTarget,
    prepared: Sequence[PreparedFile],
    vectors: Sequence[Sequence[float]],
    old_counts: Mapping[str, int],
) -> tuple[list[DocumentUpdate], list[FileFailure]]:
    """Pair the prepared files with their vectors (in `texts_to_embed` order) into document updates.

    `old_counts` are the points each document has in the store now, so a shrunk document drops its
    surplus and a failed one keeps the points of its last good version searchable.
    """
    remaining = iter(vectors)
    updates: list[DocumentUpdate] = []
    failures: list[FileFailure] = []
    for item in prepared:
        file = item.hashed.file
        old_count = old_counts.get(file.relpath, 0)
        if item.failure is not None:
            failures.append(FileFailure(file.relpath, item.failure))
            updates.append(DocumentUpdate(failed_record(file, item.hashed.content_hash, item.failure, old_count)))
            continue
        points = [
            ChunkPoint(
                id=point_id(target.name, file.relpath, chunk.index, scheme=target.point_ids),
                vector=next(remaining),
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
        stale = point_ids(target.name, file.relpath, range(len(points), old_count), scheme=target.point_ids)
        updates.append(DocumentUpdate(record, points, stale))
    return updates, failures


def rejection_updates(rejected: Sequence[RejectedFile], known: Mapping[str, KnownDocument]) -> list[DocumentUpdate]:
    """Failed rows for files the scan turned away; earlier good points stay until a good version replaces them."""
    updates = []
    for rejection in rejected:
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
    return updates


def failed_record(file: ScannedFile, digest: str | None, reason: str, chunk_count: int) -> DocumentRecord:
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
