"""Index operations: open one (one at a time per collection), run it, record its progress and end."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from semantik.contracts.queue import queue_name
from semantik.core.context import Semantik
from semantik.core.db.models import Collection, Operation, OperationStatus, utcnow
from semantik.core.errors import ConflictError, InvalidInputError, NotFoundError, SemantikError
from semantik.core.pipeline.batch import IndexTarget
from semantik.core.pipeline.chunk import ChunkingConfig, ChunkStrategy
from semantik.core.pipeline.roots import require_within_roots
from semantik.core.pipeline.runner import IndexReport, IndexRunner, Progress, ProgressCallback
from semantik.core.pipeline.sink import LocalIndexSink
from semantik.core.services.collections import load_collection
from semantik.core.services.generations import IndexConfig, prepare_shadow, promote_shadow, reconcile_store
from semantik.core.settings import Mode
from semantik.core.store import metadata

log = logging.getLogger(__name__)

PROGRESS_WRITE_INTERVAL = 0.5


def resolve_source(path: str | None, field: str = "path") -> Path:
    if not path:
        raise InvalidInputError("no folder to index: give a path", field=field)
    try:
        root = Path(path).expanduser().resolve()
        exists, is_dir = root.exists(), root.is_dir()
    except (OSError, ValueError) as exc:  # a name too long, a NUL byte, a loop of links
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise InvalidInputError(f"path {path!r} cannot be used: {reason}", field=field) from exc
    if not exists:
        raise InvalidInputError(f"path {path!r} does not exist", field=field)
    if not is_dir:
        raise InvalidInputError(f"path {path!r} is not a directory", field=field)
    return root


def index_target(operation: Operation, collection: Collection, into: Collection, max_file_bytes: int) -> IndexTarget:
    """What an operation indexes: its folder, under its collection's globs, into `into` (the collection
    itself, or a reindex's shadow) with that row's chunking. Point ids keep the collection's name, so a
    swapped-in generation holds the ids the live one would have."""
    return IndexTarget(
        collection_id=into.id,
        name=collection.name,
        qdrant_collection=into.qdrant_collection,
        root=Path(operation.options["path"]),
        include=list(collection.include),
        exclude=list(collection.exclude),
        chunking=ChunkingConfig(ChunkStrategy(into.chunk_strategy), into.chunk_size, into.chunk_overlap),
        max_file_bytes=max_file_bytes,
        point_ids=into.point_id_scheme,
    )


async def open_index_operation(
    app: Semantik,
    name: str,
    source: str | None,
    *,
    full: bool,
    request_key: str | None = None,
    reindex: bool = False,
    roots: Sequence[Path] | None = None,
) -> Operation:
    """Record a pending operation, or refuse with 409 while another one runs on this collection.

    With `roots` (the REST API passes SEMANTIK_SOURCE_ROOTS; the CLI and the operator pass none) the
    folder must resolve inside one of them, or the call is refused with 403.

    A `reindex` builds the collection's pending next generation (or, with none pending, a fresh copy of
    the live one) and swaps it in when it succeeds. With a `request_key` the call is idempotent: the
    operation opened for that key before is returned."""
    collection = await load_collection(app, name)
    if request_key is not None:
        async with app.sessions() as session:
            earlier = await metadata.operation_by_key(session, request_key)
        if earlier is not None:
            return earlier
    if roots is not None:
        require_within_roots(source or collection.source_path, roots, "path" if source else "source_path")
    if app.settings.mode is Mode.SERVICE:
        # The workers, not the gateway, mount the folder: they report a missing one on the operation.
        if not (source or collection.source_path):
            raise InvalidInputError("no folder to index: give a path", field="path")
        root = Path(source or collection.source_path or "")
    else:
        root = resolve_source(source or collection.source_path)
    options: dict[str, object] = {"path": str(root), "full": full}
    if reindex:
        async with app.sessions() as session:
            shadow = await metadata.get_shadow(session, collection.id)
        if shadow is None:
            shadow = await prepare_shadow(app, collection, IndexConfig.of(collection), collection.embedder_url)
        # The shadow's own rows make a retried reindex resume where the last one stopped.
        options = {"path": str(root), "full": False, "into": shadow.id}
    operation_id = str(uuid.uuid4())
    operation = Operation(
        id=operation_id,
        collection_id=collection.id,
        kind="reindex" if reindex else "full_index" if full else "index",
        status=OperationStatus.PENDING.value,
        options=options,
        queue=queue_name(operation_id) if app.settings.mode is Mode.SERVICE else None,
        request_key=request_key,
    )
    try:
        async with app.sessions.begin() as session:
            active = await metadata.active_operation(session, collection.id)
            if active is not None:
                raise _busy(name, active.id)
            session.add(operation)
            if collection.source_path != str(root):
                row = await metadata.get_collection(session, name)
                assert row is not None
                row.source_path = str(root)
    except IntegrityError as exc:
        # Another request opened one between our check and our insert; a unique index caught it.
        async with app.sessions() as session:
            earlier = await metadata.operation_by_key(session, request_key) if request_key else None
            active = await metadata.active_operation(session, collection.id)
        if earlier is not None:
            return earlier
        raise _busy(name, active.id if active else "?") from exc
    return operation


async def fail_and_report(app: Semantik, operation_id: str, reason: str) -> None:
    async with app.sessions.begin() as session:
        await metadata.update_operation(
            session, operation_id, status=OperationStatus.FAILED.value, error=reason, finished_at=utcnow()
        )


def _busy(name: str, operation_id: str) -> ConflictError:
    return ConflictError(
        f"collection {name!r} is already being indexed by operation {operation_id}", field="collection"
    )


async def cancel_operation(app: Semantik, operation_id: str) -> str:
    """Mark an active operation cancelled; 409 when it already ended."""
    async with app.sessions.begin() as session:
        operation = await metadata.lock_operation(session, operation_id)
        if operation is None:
            raise NotFoundError(f"operation {operation_id!r} does not exist", field="operation_id")
        if OperationStatus(operation.status).finished:
            raise ConflictError(f"operation {operation_id} already ended: {operation.status}", field="operation_id")
        operation.status = OperationStatus.CANCELLED.value
        operation.error = "cancelled by a user"
        operation.finished_at = utcnow()
    log.info("operation cancelled operation=%s", operation_id)
    return OperationStatus.CANCELLED.value


async def run_index_operation(
    app: Semantik,
    operation_id: str,
    on_progress: ProgressCallback | None = None,
    cancelled: Callable[[], bool] = lambda: False,
) -> IndexReport:
    """Run a pending operation to its end; the operation row always ends succeeded or failed."""
    operation, collection, into = await load_operation_into(app, operation_id)
    async with app.sessions() as session:
        known = await metadata.known_documents(session, into.id)
    async with app.sessions.begin() as session:
        await metadata.update_operation(
            session, operation_id, status=OperationStatus.RUNNING.value, started_at=utcnow()
        )
    target = index_target(operation, collection, into, app.settings.max_file_bytes)
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
        embedder = await app.embedder_at(into.embedder_url)
        if embedder.model_name != into.model_name:
            raise InvalidInputError(
                f"this process embeds with {embedder.model_name}, but the index is built with {into.model_name}",
                field="model",
            )
        await app.store.ensure_collection(into.qdrant_collection, into.dimension, placement=into.placement)
        runner = IndexRunner(
            embedder,
            await app.extraction(),
            LocalIndexSink(app.store, app.sessions),
            on_progress=record_progress,
            cancelled=cancelled,
        )
        report = await runner.run(target, known, full=bool(operation.options.get("full")))
    except BaseException as exc:
        async with app.sessions.begin() as session:
            await metadata.update_operation(
                session,
                operation_id,
                status=OperationStatus.FAILED.value,
                error=_describe(exc, operation_id),
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
            status=(OperationStatus.CANCELLED if report.cancelled else OperationStatus.SUCCEEDED).value,
            error="cancelled by a user" if report.cancelled else None,
            finished_at=finished,
            **_counters(report.progress),
        )
        if not report.cancelled:
            await mark_done(session, operation, collection, finished)
    if operation.kind == "reindex" and not report.cancelled:
        await reconcile_store(app, collection.name)
    return report


async def mark_done(session: AsyncSession, operation: Operation, collection: Collection, when: datetime) -> None:
    """Inside the transaction that marks the operation succeeded: a reindex swaps its generation in."""
    if operation.kind == "reindex":
        await promote_shadow(session, collection, when)
    else:
        await metadata.mark_indexed(session, collection.id, when)


def _counters(progress: Progress) -> dict[str, float]:
    values = asdict(progress)
    values.pop("phase")
    return values


def _describe(exc: BaseException, operation_id: str) -> str:
    """The operation's error as users read it: a sentence, never an exception's type and repr, which can
    hold hosts, paths and internals; the traceback of an unknown fault goes to the log."""
    if isinstance(exc, SemantikError):
        return exc.message
    if isinstance(exc, (KeyboardInterrupt, SystemExit, asyncio.CancelledError)):
        return "interrupted: the process running the operation stopped; run the index again"
    if isinstance(exc, DBAPIError):
        return "the metadata database failed during the run; run the index again"
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return "a backend (the vector store or the embedder) did not answer; run the index again"
    if isinstance(exc, MemoryError):
        return "the gateway ran out of memory during the run"
    return f"internal error; see the gateway's log (operation {operation_id})"


@dataclass(frozen=True, slots=True)
class OperationView:
    id: str
    collection: str
    kind: str
    status: str
    queue: str | None
    files_total: int
    files_processed: int
    files_failed: int
    files_unchanged: int
    files_removed: int
    chunks: int
    tokens: int
    extract_seconds: float
    embed_seconds: float
    store_seconds: float
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    seq: int
    collection_owner: str | None
    """The Collection resource its collection belongs to (`Collection.owner`)."""


async def load_operation(app: Semantik, operation_id: str) -> tuple[Operation, Collection]:
    """An operation and its collection, or 404 naming the operation."""
    operation, collection, _ = await _load(app, operation_id)
    return operation, collection


async def load_operation_into(app: Semantik, operation_id: str) -> tuple[Operation, Collection, Collection]:
    """An operation, its collection and the row it writes into (see `index_target`); 409 when a
    reindex's shadow was dropped under it."""
    operation, collection, into = await _load(app, operation_id)
    if into is None:
        raise ConflictError(
            f"operation {operation_id} builds a generation of {collection.name!r} that no longer exists",
            field="operation_id",
        )
    return operation, collection, into


async def _load(app: Semantik, operation_id: str) -> tuple[Operation, Collection, Collection | None]:
    async with app.sessions() as session:
        found = await metadata.operation_with_collection(session, operation_id)
    if found is None:
        raise NotFoundError(f"operation {operation_id!r} does not exist", field="operation_id")
    return found


INDEX_KINDS = ("index", "full_index", "reindex")


async def latest_index_operation(app: Semantik, name: str) -> OperationView | None:
    """The collection's newest index operation, running or ended; None before its first."""
    async with app.sessions() as session:
        row = await metadata.get_collection(session, name)
        operation_id = None if row is None else await metadata.latest_operation_id(session, row.id, INDEX_KINDS)
    return None if operation_id is None else await get_operation(app, operation_id)


async def get_operation(app: Semantik, operation_id: str) -> OperationView:
    operation, collection = await load_operation(app, operation_id)
    return OperationView(
        id=operation.id,
        collection=collection.name,
        kind=operation.kind,
        status=operation.status,
        queue=operation.queue,
        files_total=operation.files_total,
        files_processed=operation.files_processed,
        files_failed=operation.files_failed,
        files_unchanged=operation.files_unchanged,
        files_removed=operation.files_removed,
        chunks=operation.chunks,
        tokens=operation.tokens,
        extract_seconds=operation.extract_seconds,
        embed_seconds=operation.embed_seconds,
        store_seconds=operation.store_seconds,
        error=operation.error,
        created_at=operation.created_at,
        started_at=operation.started_at,
        finished_at=operation.finished_at,
        seq=operation.seq,
        collection_owner=collection.owner,
    )
