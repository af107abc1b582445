"""The gateway's backfills: keyword vectors built from stored text, in the gateway's own tasks.

A backfill copies a store collection into a new one (see `core/services/backfill.py`): work for the one
owner of data, not for workers, in both modes. A sweep starts one for every collection that needs it and
is not busy: at start (collections upgraded from before hybrid search) and then every SWEEP_SECONDS
(a language changed, or a backfill that had to wait for an index run)."""

from __future__ import annotations

import asyncio
import functools
import logging
import time

from semantik.core.context import Semantik
from semantik.core.services.backfill import KIND, open_due_backfills, run_backfill
from semantik.core.store import metadata

log = logging.getLogger(__name__)

SWEEP_SECONDS = 30.0
RETRY_SECONDS = 600.0


class Backfills:
    def __init__(
        self, semantik: Semantik, sweep_seconds: float = SWEEP_SECONDS, retry_seconds: float = RETRY_SECONDS
    ) -> None:
        self._semantik = semantik
        self._sweep_seconds = sweep_seconds
        self._retry_seconds = retry_seconds
        self._failed: dict[str, float] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        # Only gateways run backfills, so one still marked active was cut off by a gateway's stop. With
        # several replicas this may end a live one's run: that run then finds its operation ended at
        # commit and drops its copy, so nothing is lost but the work.
        async with self._semantik.sessions.begin() as session:
            interrupted = await metadata.fail_interrupted_operations(
                session, "interrupted: the gateway running it stopped", kinds=(KIND,)
            )
        if interrupted:
            log.warning("marked interrupted backfills as failed count=%d", interrupted)
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="backfill-sweep")

    async def sweep(self) -> None:
        """Start a backfill for every collection that needs one and has no operation running; one that
        failed waits RETRY_SECONDS, so a broken store is not copied again every sweep."""
        now = time.monotonic()
        waiting = {name for name, failed in self._failed.items() if now - failed < self._retry_seconds}
        for collection, operation in (await open_due_backfills(self._semantik, skip=waiting)).items():
            task = asyncio.create_task(self._run(operation.id, collection), name=f"backfill-{operation.id}")
            self._tasks[operation.id] = task
            task.add_done_callback(functools.partial(self._forget, operation.id))

    def _forget(self, operation_id: str, _: asyncio.Task[None]) -> None:
        self._tasks.pop(operation_id, None)

    async def wait(self) -> None:
        """Until the running backfills end (tests, and the CLI's embedded path)."""
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def _run(self, operation_id: str, collection: str) -> None:
        try:
            await run_backfill(self._semantik, operation_id)
        except Exception:  # run_backfill failed the operation and logged why
            self._failed[collection] = time.monotonic()
        else:
            self._failed.pop(collection, None)

    async def _sweep_forever(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:
                log.exception("backfill sweep failed; next in %.0f s", self._sweep_seconds)
            await asyncio.sleep(self._sweep_seconds)

    async def shutdown(self) -> None:
        tasks = [*self._tasks.values(), *([self._sweeper] if self._sweeper else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
