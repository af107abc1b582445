"""Dynamic batching: requests that arrive while a forward pass runs share the next ones.

The engine sorts the texts of all waiting requests by length and cuts them into batches by a token
budget, so short texts of many clients fill one pass instead of many half-empty ones.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from semantik.core.embedding.engine import EmbeddingEngine, TextTooLargeError
from semantik.core.errors import SemantikError
from semantik.embedder import metrics

log = logging.getLogger(__name__)


TAKE_MIN_TOKENS = 65536
IDLE_GATHER_SECONDS = 0.003


class QueueFullError(SemantikError):
    code = "overloaded"
    status = 503

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(slots=True)
class _Request:
    ids: Sequence[Sequence[int]]
    future: asyncio.Future[npt.NDArray[np.float32]]
    tokens: int = field(init=False)

    def __post_init__(self) -> None:
        self.tokens = sum(len(row) for row in self.ids)


class DynamicBatcher:
    def __init__(self, engine: EmbeddingEngine, *, max_queue_texts: int) -> None:
        self._engine = engine
        self._max_queue_texts = max_queue_texts
        self._waiting: list[_Request] = []
        self._queued_texts = 0
        self._wakeup = asyncio.Event()
        self._tokens_per_second = 5000.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="embedder-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for request in self._waiting:
            if not request.future.done():
                request.future.set_exception(SemantikError("the embedder is shutting down"))

    async def embed(self, ids: Sequence[Sequence[int]]) -> npt.NDArray[np.float32]:
        if self._queued_texts + len(ids) > self._max_queue_texts:
            backlog = sum(r.tokens for r in self._waiting)
            retry_after = max(1, math.ceil(backlog / self._tokens_per_second))
            raise QueueFullError(
                f"the embedder is busy ({self._queued_texts} texts waiting); retry in {retry_after}s",
                retry_after,
            )
        request = _Request(ids, asyncio.get_running_loop().create_future())
        self._waiting.append(request)
        self._queued_texts += len(ids)
        metrics.QUEUE_DEPTH.set(self._queued_texts)
        self._wakeup.set()
        return await request.future

    async def _loop(self) -> None:
        while True:
            await self._wakeup.wait()
            # Coming out of idle, give requests sent together a moment to arrive and share passes.
            await asyncio.sleep(IDLE_GATHER_SECONDS)
            self._wakeup.clear()
            while self._waiting:
                taken, self._waiting = self._take(self._waiting)
                await self._run(taken)

    def _take(self, waiting: list[_Request]) -> tuple[list[_Request], list[_Request]]:
        # Everything waiting, up to a bound so one huge request cannot starve the rest: the more texts one
        # round sorts together, the less padding its passes carry.
        budget = max(self._engine.max_batch_tokens * 16, TAKE_MIN_TOKENS)
        taken: list[_Request] = []
        tokens = 0
        waiting = self._without_abandoned(waiting)
        for index, request in enumerate(waiting):
            if taken and tokens + request.tokens > budget:
                return taken, waiting[index:]
            taken.append(request)
            tokens += request.tokens
        return taken, []

    def _without_abandoned(self, waiting: list[_Request]) -> list[_Request]:
        # A request whose client left (its future cancelled) is not computed: under overload, clients
        # that time out and retry would otherwise queue the same work again behind their own dead copies.
        kept = [request for request in waiting if not request.future.done()]
        dropped = sum(len(request.ids) for request in waiting) - sum(len(request.ids) for request in kept)
        if dropped:
            self._queued_texts -= dropped
            metrics.QUEUE_DEPTH.set(self._queued_texts)
            metrics.ABANDONED_TEXTS.inc(dropped)
        return kept

    async def _run(self, requests: list[_Request]) -> None:
        rows = [row for request in requests for row in request.ids]
        started = time.perf_counter()
        try:
            result = await asyncio.to_thread(self._engine.embed_ids, rows)
        except Exception as exc:
            log.exception("forward pass failed texts=%d", len(rows))
            for request in requests:
                if not request.future.done():
                    request.future.set_exception(exc)
            return
        finally:
            self._queued_texts -= len(rows)
            metrics.QUEUE_DEPTH.set(self._queued_texts)
        elapsed = max(time.perf_counter() - started, 1e-6)
        self._tokens_per_second = 0.8 * self._tokens_per_second + 0.2 * (sum(len(r) for r in rows) / elapsed)
        for texts, padded, seconds in result.stats.batches:
            metrics.BATCH_SIZE.observe(texts)
            metrics.BATCH_TOKENS.observe(padded)
            metrics.FORWARD_SECONDS.observe(seconds)
        metrics.OOM_SPLITS.inc(result.stats.oom_splits)
        offset = 0
        for request in requests:
            span = range(offset, offset + len(request.ids))
            offset += len(request.ids)
            if request.future.done():
                continue
            if any(i in result.failed for i in span):
                request.future.set_exception(
                    TextTooLargeError("a text of this request does not fit in device memory even alone")
                )
            else:
                request.future.set_result(result.vectors[span.start : span.stop])
