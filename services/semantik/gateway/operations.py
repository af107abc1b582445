"""Index operations run as tasks inside the gateway's process in embedded mode."""

from __future__ import annotations

import asyncio
import logging

from semantik.core.context import Semantik
from semantik.core.services.indexing import run_index_operation
from semantik.gateway import metrics

log = logging.getLogger(__name__)


class OperationTasks:
    def __init__(self, semantik: Semantik) -> None:
        self._semantik = semantik
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, operation_id: str) -> None:
        task = asyncio.create_task(self._run(operation_id), name=f"operation-{operation_id}")
        self._tasks[operation_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(operation_id, None))

    async def _run(self, operation_id: str) -> None:
        try:
            report = await run_index_operation(self._semantik, operation_id)
        except Exception:
            # run_index_operation already marked the operation failed and logged why.
            metrics.OPERATIONS.labels("failed").inc()
            return
        metrics.OPERATIONS.labels("succeeded").inc()
        metrics.INDEXED_CHUNKS.inc(report.progress.chunks)
        metrics.INDEXED_FILES.labels("failed").inc(report.progress.files_failed)
        metrics.INDEXED_FILES.labels("unchanged").inc(report.progress.files_unchanged)
        metrics.INDEXED_FILES.labels("indexed").inc(
            report.progress.files_processed - report.progress.files_unchanged - report.progress.files_failed
        )

    async def wait(self, operation_id: str) -> None:
        task = self._tasks.get(operation_id)
        if task is not None:
            await asyncio.shield(task)

    async def shutdown(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
