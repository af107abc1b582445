"""The arq tasks of an index operation: `scan` plans and fans out, `process_batch` extracts, chunks,
embeds and hands the batch to the gateway, `finalize` closes the operation.

Every task takes ids only and is safe to run twice: the gateway keeps the first plan of an operation and
applies each batch once; job ids derived from (operation, batch) make a re-enqueue a no-op.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
from arq import Retry
from arq.connections import ArqRedis
from redis.exceptions import RedisError

from semantik.contracts.queue import batch_job_id, finalize_job_id
from semantik.contracts.vectors import encode_vector
from semantik.core.embedding import Embedder, TextKind
from semantik.core.errors import BackendUnavailableError, ConflictError, InvalidInputError, NotFoundError
from semantik.core.pipeline.batch import (
    IndexTarget,
    PreparedFile,
    build_updates,
    failed_record,
    group_files,
    hash_files,
    locate_file,
    plan_folder,
    prepare_files,
    texts_to_embed,
)
from semantik.core.pipeline.chunk import ChunkingConfig, ChunkStrategy
from semantik.core.pipeline.ids import PointIdScheme
from semantik.core.pipeline.plan import HashedFile, KnownDocument
from semantik.core.pipeline.roots import outside_roots_message
from semantik.core.pipeline.sandbox import ExtractionPool
from semantik.core.pipeline.scan import InvalidGlobError, ScannedFile
from semantik.core.pipeline.sink import DocumentUpdate
from semantik.worker.config import WorkerConfig
from semantik.worker.gateway_client import BodyTooLargeError, GatewayClient

log = logging.getLogger(__name__)

T = TypeVar("T")
TRANSIENT: tuple[type[BaseException], ...] = (
    BackendUnavailableError,
    httpx.TransportError,
    ConnectionError,
    TimeoutError,
    RedisError,
)


class TriesExhaustedError(Exception):
    """A transient fault outlasted the job's tries."""


def retry_delay(job_try: int) -> float:
    return float(min(2**job_try, 30))


async def _transient_retry(
    ctx: dict[str, Any],
    what: str,
    action: Callable[[], Awaitable[T]],
    transient: tuple[type[BaseException], ...] = TRANSIENT,
) -> T:
    """Run `action`; on a fault that heals, retry the whole job later, until the tries run out."""
    config: WorkerConfig = ctx["config"]
    try:
        return await action()
    except transient as exc:
        job_try: int = ctx["job_try"]
        if job_try >= config.worker_max_tries:
            raise TriesExhaustedError(f"{what} failed {job_try} times; last: {exc}") from exc
        delay = retry_delay(job_try)
        log.warning("retry job=%s what=%s try=%d in=%.0fs error=%s", ctx["job_id"], what, job_try, delay, exc)
        raise Retry(defer=delay) from exc


JOB_TIMEOUT_MARGIN_SECONDS = 5
"""arq's own job timeout sits this far above SEMANTIK_WORKER_JOB_TIMEOUT: arq ends a timed-out job for
good, so its batch would stay uncommitted and the operation open; ours comes first and retries it."""


def within_job_timeout(task: Callable[..., Awaitable[str]]) -> Callable[..., Awaitable[str]]:
    """Run `task` for at most SEMANTIK_WORKER_JOB_TIMEOUT; past it the job is retried like any passing
    fault (a stalled embedder or gateway), until the tries run out."""

    @functools.wraps(task)
    async def run(ctx: dict[str, Any], *args: Any) -> str:
        config: WorkerConfig = ctx["config"]
        deadline = asyncio.timeout(config.worker_job_timeout)
        try:
            async with deadline:
                return await task(ctx, *args)
        except TimeoutError as exc:
            if not deadline.expired():
                raise
            job_try: int = ctx["job_try"]
            problem = f"the job outlasted SEMANTIK_WORKER_JOB_TIMEOUT={config.worker_job_timeout}s"
            if job_try >= config.worker_max_tries:
                raise TriesExhaustedError(f"{problem} {job_try} times") from exc
            delay = retry_delay(job_try)
            log.warning("retry job=%s try=%d in=%.0fs error=%s", ctx["job_id"], job_try, delay, problem)
            raise Retry(defer=delay) from exc

    return run


def target_from(body: dict[str, Any]) -> IndexTarget:
    return IndexTarget(
        collection_id=int(body["collection_id"]),
        name=str(body["collection"]),
        qdrant_collection=str(body["qdrant_collection"]),
        root=Path(body["root"]),
        include=list(body["include"]),
        exclude=list(body["exclude"]),
        chunking=ChunkingConfig(ChunkStrategy(body["chunk_strategy"]), body["chunk_size"], body["chunk_overlap"]),
        max_file_bytes=int(body["max_file_bytes"]),
        point_ids=PointIdScheme(int(body.get("point_ids", PointIdScheme.NAMED))),
    )


async def scan(ctx: dict[str, Any], operation_id: str) -> str:
    gateway: GatewayClient = ctx["gateway"]
    config: WorkerConfig = ctx["config"]
    try:
        operation = await _transient_retry(ctx, "start", lambda: gateway.start(operation_id))
    except (ConflictError, NotFoundError) as exc:
        return f"nothing to do: {exc}"
    except TriesExhaustedError as exc:
        log.error("scan gave up operation=%s error=%s", operation_id, exc)
        raise
    embedder: Embedder = ctx["embedder"]
    if operation["model"] != embedder.model_name:
        # Vectors of another model would be silently meaningless next to the index's own.
        reason = (
            f"this worker's embedder serves {embedder.model_name}, but the index is built with {operation['model']}"
        )
        await _transient_retry(ctx, "fail", lambda: gateway.fail(operation_id, reason))
        return "failed: wrong model"
    refused = outside_roots_message(operation["root"], config.source_roots)
    if refused is not None:
        # The gateway checked the path where it could; this is the process that would read it.
        reason = f"this worker may not read the folder: {refused}"
        await _transient_retry(ctx, "fail", lambda: gateway.fail(operation_id, reason))
        return "failed: folder outside the source roots"
    if operation["batches_total"] is None:
        target = target_from(operation)
        items = await _transient_retry(ctx, "documents", lambda: gateway.known_documents(operation_id))
        known = {item["path"]: KnownDocument(**item) for item in items}
        started = time.perf_counter()
        try:
            folder = await asyncio.to_thread(plan_folder, target, known, full=bool(operation["full"]))
        except (OSError, InvalidGlobError) as exc:
            reason = f"cannot scan the folder: {exc}"
            await _transient_retry(ctx, "fail", lambda: gateway.fail(operation_id, reason))
            return "failed: cannot scan the folder"
        plan = folder.plan
        batches = group_files(plan.to_index, max_chunks=config.worker_batch_chunks, max_files=config.worker_batch_files)
        body = {
            "files_total": folder.files_total,
            "unchanged": len(plan.unchanged) + len(plan.still_rejected),
            "rejected": [{"path": r.relpath, "reason": r.reason} for r in plan.to_reject],
            "batches": [[{"path": h.file.relpath, "content_hash": h.content_hash} for h in batch] for batch in batches],
            "removed": [doc.path for doc in plan.removed],
        }
        log.info(
            "scanned operation=%s files=%d batches=%d in=%.2fs",
            operation_id,
            folder.files_total,
            len(batches),
            time.perf_counter() - started,
        )
    else:
        body = {"files_total": 0, "unchanged": 0}  # the recorded plan wins; this only asks for it
    recorded = await _transient_retry(ctx, "plan", lambda: gateway.record_plan(operation_id, body))
    redis: ArqRedis = ctx["redis"]
    queue = operation["queue"]
    for number in recorded["pending"]:
        await redis.enqueue_job(
            "process_batch", operation_id, number, _job_id=batch_job_id(operation_id, number), _queue_name=queue
        )
    if not recorded["pending"]:
        await redis.enqueue_job("finalize", operation_id, _job_id=finalize_job_id(operation_id), _queue_name=queue)
    return f"planned {recorded['batches_total']} batches, {len(recorded['pending'])} pending"


async def process_batch(ctx: dict[str, Any], operation_id: str, number: int) -> str:
    gateway: GatewayClient = ctx["gateway"]
    try:
        batch = await _transient_retry(ctx, "read batch", lambda: gateway.batch(operation_id, number))
    except NotFoundError as exc:
        return f"nothing to do: {exc}"
    target_body = batch["target"]
    if target_body["status"] not in ("pending", "running"):
        return f"operation {target_body['status']}"
    if not batch["done"]:
        target = target_from(target_body)
        files = [(f["path"], f["content_hash"]) for f in batch["files"]]
        try:
            # Any fault here (a parser's own failure is already a failed file) is retried, then the
            # batch's files are recorded failed with the reason: the operation always ends.
            body = await _transient_retry(ctx, "build", lambda: _build_in_time(ctx, target, files), (Exception,))
        except TriesExhaustedError as exc:
            body = {"documents": [_failed_document(path, str(exc)) for path, _ in files]}
        try:
            result = await _commit(ctx, operation_id, number, body)
        except ConflictError as exc:
            return f"dropped: {exc}"
        except BodyTooLargeError as exc:
            # Chunk text and vectors outgrew the gateway's limit: a retry would be refused the same way,
            # and an uncommitted batch would keep the operation open forever, so its files fail instead.
            reason = f"the batch's chunks and vectors are too large for the gateway: {exc.message}"
            failed = {"documents": [_failed_document(path, reason) for path, _ in files]}
            result = await _commit(ctx, operation_id, number, failed)
        remaining = int(result["remaining"])
    else:
        remaining = int(batch["remaining"])
    if remaining == 0:
        redis: ArqRedis = ctx["redis"]
        await redis.enqueue_job(
            "finalize", operation_id, _job_id=finalize_job_id(operation_id), _queue_name=target_body["queue"]
        )
    return f"batch {number} of {target_body['collection']} committed, {remaining} to go"


async def _commit(ctx: dict[str, Any], operation_id: str, number: int, body: dict[str, Any]) -> dict[str, Any]:
    gateway: GatewayClient = ctx["gateway"]
    return await _transient_retry(ctx, "commit", lambda: gateway.commit_batch(operation_id, number, body))


BUILD_SHARE_OF_JOB_TIMEOUT = 0.8
"""Extracting and embedding may take this share of the job's time: the rest is the commit's, so the
last try can still record the batch's files as failed."""


async def _build_in_time(ctx: dict[str, Any], target: IndexTarget, files: list[tuple[str, str]]) -> dict[str, Any]:
    config: WorkerConfig = ctx["config"]
    limit = config.worker_job_timeout * BUILD_SHARE_OF_JOB_TIMEOUT
    deadline = asyncio.timeout(limit)
    try:
        async with deadline:
            return await _build_batch(ctx, target, files)
    except TimeoutError as exc:
        if not deadline.expired():
            raise
        raise TimeoutError(f"extracting and embedding the batch outlasted {limit:.0f}s") from exc


async def _build_batch(ctx: dict[str, Any], target: IndexTarget, files: list[tuple[str, str]]) -> dict[str, Any]:
    embedder: Embedder = ctx["embedder"]
    extraction: ExtractionPool = ctx["extraction"]
    started = time.perf_counter()
    located = [(path, await asyncio.to_thread(locate_file, target.root, path)) for path, _ in files]
    gone = [(path, reason) for path, reason in located if isinstance(reason, str)]
    present = [file for _, file in located if isinstance(file, ScannedFile)]
    hashed = await asyncio.to_thread(hash_files, present, target.max_file_bytes)
    unreadable = [(file.relpath, outcome) for file, outcome in hashed if isinstance(outcome, str)]
    readable = [outcome for _, outcome in hashed if isinstance(outcome, HashedFile)]
    prepared = await asyncio.to_thread(prepare_files, readable, target.chunking, extraction, target.max_file_bytes)
    embedding_started = time.perf_counter()
    vectors = await _embed(embedder, prepared)
    embed_seconds = time.perf_counter() - embedding_started
    updates, _ = build_updates(target, prepared, vectors, {})
    documents = [_document(update) for update in updates]
    documents += [_failed_document(path, reason) for path, reason in gone + unreadable]
    return {
        "documents": documents,
        "extract_seconds": embedding_started - started,
        "embed_seconds": embed_seconds,
    }


async def _embed(embedder: Embedder, prepared: list[PreparedFile]) -> list[Any]:
    """Vectors of the prepared files' chunks, in `texts_to_embed` order; a file whose text the embedder
    refuses is marked failed with the embedder's reason."""
    try:
        return list((await embedder.embed(texts_to_embed(prepared), TextKind.DOCUMENT)).vectors)
    except InvalidInputError:
        pass
    # One file's text refused (longer than the embedder's cap, say) would otherwise fail the batch, try
    # after try, and every good file in it: embed file by file to find which.
    vectors: list[Any] = []  # rows of the embedder's arrays
    for item in prepared:
        if item.failure is not None:
            continue
        try:
            vectors += list((await embedder.embed([c.text for c in item.chunks], TextKind.DOCUMENT)).vectors)
        except InvalidInputError as exc:
            item.failure = f"the embedder refused its text ({exc.message})"
    return vectors


def _document(update: DocumentUpdate) -> dict[str, Any]:
    record = update.record
    return {
        "path": record.path,
        "content_hash": record.content_hash,
        "size": record.size,
        "mtime": record.mtime,
        "status": record.status.value,
        "error": record.error,
        "token_count": record.token_count,
        "format": record.format,
        "points": [
            {
                "id": point.id,
                "chunk_index": point.chunk_index,
                "text": point.text,
                "start": point.start,
                "end": point.end,
                "heading": point.heading,
                "vector": encode_vector(point.vector),  # type: ignore[arg-type]
            }
            for point in update.points
        ],
    }


def _failed_document(path: str, reason: str) -> dict[str, Any]:
    record = failed_record(ScannedFile(path, Path(path), 0, 0.0), None, reason, 0)
    return _document(DocumentUpdate(record))


async def finalize(ctx: dict[str, Any], operation_id: str) -> str:
    gateway: GatewayClient = ctx["gateway"]
    config: WorkerConfig = ctx["config"]
    try:
        result = await _transient_retry(ctx, "finalize", lambda: gateway.finalize(operation_id))
    except ConflictError as exc:
        # Batches still open (a re-delivered one racing this job): look again a little later.
        if ctx["job_try"] >= config.worker_max_tries:
            await gateway.fail(operation_id, f"could not finalize: {exc}")
            return "failed"
        raise Retry(defer=retry_delay(ctx["job_try"])) from exc
    except NotFoundError as exc:
        return f"nothing to do: {exc}"
    return f"operation {result['status']}"
