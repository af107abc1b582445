"""Who runs an index operation: tasks inside the gateway (embedded mode) or arq workers (service mode)."""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from redis.exceptions import RedisError

from semantik.contracts.queue import ACTIVE_QUEUES, deserialize_job, scan_job_id, serialize_job
from semantik.core.context import Semantik
from semantik.core.errors import BackendUnavailableError
from semantik.core.pipeline.runner import IndexReport
from semantik.core.services.indexing import cancel_operation, fail_and_report, run_index_operation
from semantik.gateway import metrics

log = logging.getLogger(__name__)


class OperationExecutor(Protocol):
    async def start(self, operation_id: str, queue: str | None) -> None: ...

    async def cancel(self, operation_id: str, queue: str | None) -> None: ...

    async def shutdown(self) -> None: ...


def record_report(report: IndexReport) -> None:
    metrics.OPERATIONS.labels("cancelled" if report.cancelled else "succeeded").inc()
    metrics.INDEXED_CHUNKS.inc(report.progress.chunks)
    metrics.INDEXED_FILES.labels("failed").inc(report.progress.files_failed)
    metrics.INDEXED_FILES.labels("unchanged").inc(report.progress.files_unchanged)
    metrics.INDEXED_FILES.labels("indexed").inc(
        report.progress.files_processed - report.progress.files_unchanged - report.progress.files_failed
    )


class InlineOperations:
    """Embedded mode: each operation is an asyncio task of the gateway; cancel stops it between batches."""

    def __init__(self, semantik: Semantik) -> None:
        self._semantik = semantik
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._cancel_requests: set[str] = set()

    async def start(self, operation_id: str, queue: str | None) -> None:
        task = asyncio.create_task(self._run(operation_id), name=f"operation-{operation_id}")
        self._tasks[operation_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(operation_id, None))

    async def _run(self, operation_id: str) -> None:
        try:
            report = await run_index_operation(
                self._semantik, operation_id, cancelled=lambda: operation_id in self._cancel_requests
            )
        except Exception:
            # run_index_operation already marked the operation failed and logged why.
            metrics.OPERATIONS.labels("failed").inc()
            return
        finally:
            self._cancel_requests.discard(operation_id)
        record_report(report)

    async def cancel(self, operation_id: str, queue: str | None) -> None:
        task = self._tasks.get(operation_id)
        if task is None:
            await cancel_operation(self._semantik, operation_id)
            return
        self._cancel_requests.add(operation_id)
        await asyncio.shield(task)

    async def wait(self, operation_id: str) -> None:
        task = self._tasks.get(operation_id)
        if task is not None:
            await asyncio.shield(task)

    async def shutdown(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)


class QueuedOperations:
    """Service mode: an operation is a `scan` job on its own arq queue; workers do the rest."""

    def __init__(self, semantik: Semantik, redis: ArqRedis) -> None:
        self._semantik = semantik
        self._redis = redis

    @classmethod
    async def connect(cls, semantik: Semantik, redis_url: str) -> QueuedOperations:
        settings = RedisSettings.from_dsn(redis_url)
        settings.conn_retries = 2
        pool = await create_pool(settings, job_serializer=serialize_job, job_deserializer=deserialize_job)
        return cls(semantik, pool)

    async def start(self, operation_id: str, queue: str | None) -> None:
        assert queue is not None
        try:
            await self._redis.enqueue_job("scan", operation_id, _job_id=scan_job_id(operation_id), _queue_name=queue)
            await self._redis.sadd(ACTIVE_QUEUES, queue)  # type: ignore[misc]
        except (RedisError, OSError) as exc:
            await fail_and_report(self._semantik, operation_id, f"could not queue the operation: {exc}")
            raise BackendUnavailableError(f"the work queue (Redis) is unreachable: {exc}") from exc

    async def cancel(self, operation_id: str, queue: str | None) -> None:
        await cancel_operation(self._semantik, operation_id)
        metrics.OPERATIONS.labels("cancelled").inc()
        if queue is not None:
            await self.forget(queue)

    async def forget(self, queue: str) -> None:
        """Drop a finished operation's queue, so its burst workers exit and no job of it starts again."""
        try:
            await self._redis.delete(queue)
            await self._redis.srem(ACTIVE_QUEUES, queue)  # type: ignore[misc]
        except (RedisError, OSError) as exc:
            log.warning("could not drop queue=%s error=%r", queue, exc)

    async def shutdown(self) -> None:
        await self._redis.aclose()
