"""Index operations: open one (one at a time per collection), run it, record its progress and end."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from semantik.core.context import Semantik
from semantik.core.db.models import Collection, Operation, OperationStatus, utcnow
from semantik.core.errors import ConflictError, InvalidInputError, NotFoundError, SemantikError
from semantik.core.pipeline.chunk import ChunkingConfig, ChunkStrategy
from semantik.core.pipeline.runner import IndexReport, IndexRunner, IndexTarget, Progress, ProgressCallback
from semantik.core.pipeline.sink import LocalIndexSink
from semantik.core.services.collections import load_collection
from semantik.core.store import metadata

log = logging.getLogger(__name__)

PROGRESS_WRITE_INTERVAL = 0.5


def resolve_source(path: str | None, field: str = "path") -> Path:
    if not path:
        raise InvalidInputError("no folder to index: give a path", field=field)
    root = Path(path).expanduser().resolve()
    if not root.exists():
        raise InvalidInputError(f"path {path!r} does not exist", field=field)
    if not root.is_dir():
        raise InvalidInputError(f"path {path!r} is not a directory", field=field)
    return root


async def open_index_operation(app: Semantik, name: str, source: str | None, *, full: bool) -> Operation:
    """Record a pending operation, or refuse with 409 while another one runs on this collection."""
    collection = await load_collection(app, name)
    root = resolve_source(source or collection.source_path)
    async with app.sessions.begin() as session:
        active = await metadata.active_operation(session, collection.id)
        if active is not None:
            raise ConflictError(
                f"collection {name!r} is already being indexed by operation {active.id}", field="collection"
            )
        operation = Operation(
            id=str(uuid.uuid4()),
            collection_id=collection.id,
            kind="full_index" if full else "index",
            status=OperationStatus.PENDING.value,
            options={"path": str(root), "full": full},
        )
        session.add(operation)
        if collection.source_path != str(root):
            row = await metadata.get_collection(session, name)
            assert row is not None
            row.source_path = str(root)
    return operation


async def run_index_operation(
    app: Semantik, operation_id: str, on_progress: ProgressCallback | None = None
) -> IndexReport:
    """Run a pending operation to its end; the operation row always ends succeeded or failed."""
    async with app.sessions() as session:
        operation = await metadata.get_operation(session, operation_id)
        if operation is None:
            raise NotFoundError(f"operation {operation_id!r} does not exist", field="operation_id")
        collection = await session.get(Collection, operation.collection_id)
        assert collection is not None
        known = await metadata.known_documents(session, collection.id)
    async with app.sessions.begin() as session:
        await metadata.update_operation(
            session, operation_id, status=OperationStatus.RUNNING.value, started_at=utcnow()
        )
    target = IndexTarget(
        collection_id=collection.id,
        name=collection.name,
        qdrant_collection=collection.qdrant_collection,
        root=Path(operation.options["path"]),
        include=list(collection.include),
        exclude=list(collection.exclude),
        chunking=ChunkingConfig(
            ChunkStrategy(collection.chunk_strategy), collection.chunk_size, collection.chunk_overlap
        ),
        max_file_bytes=app.settings.max_file_bytes,
    )
    last_write = 0.0

    async def record_progress(progress: Progress) -> None:
        nonlocal last_write
        if on_progress is not None:
            await on_progress(progress)
        now = time.monotonic()
        if now - last_write >= PROGRESS_WRITE_INTERVAL or progress.phase == "done":
            last_write = now
            async with app.sessions.begin() as session:
                await metadata.update_operation(session, operation_id, **_counters(progress))

    try:
        await app.store.ensure_collection(collection.qdrant_collection, collection.dimension)
        runner = IndexRunner(
            await app.embedder(),
            await app.tokenizer(),
            LocalIndexSink(app.store, app.sessions),
            on_progress=record_progress,
        )
        report = await runner.run(target, known, full=bool(operation.options.get("full")))
    except BaseException as exc:
        async with app.sessions.begin() as session:
            await metadata.update_operation(
                session,
                operation_id,
                status=OperationStatus.FAILED.value,
                error=_describe(exc),
                finished_at=utcnow(),
            )
        if isinstance(exc, Exception) and not isinstance(exc, SemantikError):
            log.exception("index operation failed operation=%s collection=%s", operation_id, collection.name)
        raise
    finished = utcnow()
    async with app.sessions.begin() as session:
        await metadata.update_operation(
            session,
            operation_id,
            status=OperationStatus.SUCCEEDED.value,
            finished_at=finished,
            **_counters(report.progress),
        )
        await metadata.mark_indexed(session, collection.id, finished)
    return report


def _counters(progress: Progress) -> dict[str, int]:
    values = asdict(progress)
    values.pop("phase")
    return values


def _describe(exc: BaseException) -> str:
    if isinstance(exc, (KeyboardInterrupt, SystemExit)):
        return "interrupted"
    return f"{type(exc).__name__}: {exc}"


@dataclass(frozen=True, slots=True)
class OperationView:
    id: str
    collection: str
    kind: str
    status: str
    files_total: int
    files_processed: int
    files_failed: int
    files_unchanged: int
    files_removed: int
    chunks: int
    tokens: int
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


async def get_operation(app: Semantik, operation_id: str) -> OperationView:
    async with app.sessions() as session:
        operation = await metadata.get_operation(session, operation_id)
        if operation is None:
            raise NotFoundError(f"operation {operation_id!r} does not exist", field="operation_id")
        collection = await session.get(Collection, operation.collection_id)
        assert collection is not None
    return OperationView(
        id=operation.id,
        collection=collection.name,
        kind=operation.kind,
        status=operation.status,
        files_total=operation.files_total,
        files_processed=operation.files_processed,
        files_failed=operation.files_failed,
        files_unchanged=operation.files_unchanged,
        files_removed=operation.files_removed,
        chunks=operation.chunks,
        tokens=operation.tokens,
        error=operation.error,
        created_at=operation.created_at,
        started_at=operation.started_at,
        finished_at=operation.finished_at,
    )
