"""Running workers: `semantik worker` (or `arq semantik.worker.main.WorkerSettings`).

With `--queue` a worker serves one operation's queue (`--burst`: until it is drained, as in a
Kubernetes Job). Without it, a long-running worker serves every queue with work in turn. A lost Redis
is waited for (jobs are retried from Redis once it is back); a Redis that is wrong at start is an error.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from typing import Any

from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from arq.worker import Worker, async_check_health
from redis.exceptions import AuthenticationError, RedisError

from semantik.contracts.queue import ACTIVE_QUEUES, deserialize_job, serialize_job
from semantik.core.embedding.client import HttpEmbedder
from semantik.core.pipeline.sandbox import ExtractionPool
from semantik.core.pipeline.tokens import load_tokenizer
from semantik.worker.config import WorkerConfig, redacted
from semantik.worker.gateway_client import GatewayClient
from semantik.worker.tasks import JOB_TIMEOUT_MARGIN_SECONDS, finalize, process_batch, scan, within_job_timeout

log = logging.getLogger(__name__)

FUNCTIONS = [within_job_timeout(task) for task in (scan, process_batch, finalize)]
IDLE_POLL_SECONDS = 0.25
"""How often an idle worker looks for a new operation's queue: one SMEMBERS, a small price for starting
an operation within a quarter of a second."""
HEALTH_CHECK_SECONDS = 30


class StartupError(Exception):
    """The worker cannot start: a wrong URL or a service that is not there."""


def health_check_key() -> str:
    return f"semantik:worker:{socket.gethostname()}:health-check"


def redis_settings(config: WorkerConfig, *, retries: int) -> RedisSettings:
    settings = RedisSettings.from_dsn(config.redis_url)
    settings.conn_retries = retries
    settings.conn_timeout = 2
    return settings


async def open_context(config: WorkerConfig) -> dict[str, Any]:
    """What every task reads from ctx: the gateway, the embedder and the extraction pool, made once."""
    token = config.internal_token.get_secret_value() if config.internal_token else None
    gateway = GatewayClient(config.gateway_url, token)
    try:
        embedder = await HttpEmbedder.connect(
            config.embedder_url,
            token=config.embedder_token.get_secret_value() if config.embedder_token else None,
            deadline=max(5.0, config.worker_job_timeout / 2),
        )
    except Exception as exc:
        await gateway.aclose()
        raise StartupError(f"cannot reach the embedder at {config.embedder_url}: {exc}") from exc
    tokenizer = await asyncio.to_thread(load_tokenizer, config.resolved_model_path)
    extraction = ExtractionPool(tokenizer, config.extraction_limits)
    await asyncio.to_thread(extraction.start_children)
    return {"config": config, "gateway": gateway, "embedder": embedder, "extraction": extraction}


async def close_context(ctx: dict[str, Any]) -> None:
    await ctx["gateway"].aclose()
    await ctx["embedder"].aclose()
    await asyncio.to_thread(ctx["extraction"].close)


def build_worker(config: WorkerConfig, pool: ArqRedis, ctx: dict[str, Any], queue: str, *, burst: bool) -> Worker:
    return Worker(
        functions=FUNCTIONS,  # type: ignore[arg-type]
        redis_pool=pool,
        queue_name=queue,
        burst=burst,
        max_jobs=config.worker_concurrency,
        job_timeout=config.worker_job_timeout + JOB_TIMEOUT_MARGIN_SECONDS,
        # arq's own limit sits above ours, so the last try still reaches the code that records the
        # batch's files as failed instead of dropping the job.
        max_tries=config.worker_max_tries + 2,
        keep_result=600,
        poll_delay=0.2,
        health_check_interval=HEALTH_CHECK_SECONDS,
        health_check_key=health_check_key(),
        handle_signals=False,
        job_serializer=serialize_job,
        job_deserializer=deserialize_job,
        ctx=ctx,
    )


async def connect_redis(config: WorkerConfig) -> ArqRedis:
    # Tasks fan out through this pool (ctx["redis"]), so what they enqueue is JSON too.
    try:
        pool = await create_pool(
            redis_settings(config, retries=3), job_serializer=serialize_job, job_deserializer=deserialize_job
        )
        await pool.ping()
    except AuthenticationError as exc:
        raise StartupError(f"Redis at {redacted(config.redis_url)} refused the password: {exc}") from exc
    except (RedisError, OSError) as exc:
        raise StartupError(f"cannot reach Redis at {redacted(config.redis_url)}: {exc}") from exc
    return pool


async def run_worker(config: WorkerConfig, *, queue: str | None, burst: bool) -> None:
    """Serve until the work is done (burst) or forever; raise StartupError when it cannot begin."""
    pool = await connect_redis(config)
    ctx = await open_context(config)
    log.info("worker ready queue=%s concurrency=%d", queue or "any", config.worker_concurrency)
    lost_since: float | None = None
    worker: Worker | None = None
    try:
        while True:
            try:
                if queue is not None:
                    worker = build_worker(config, pool, ctx, queue, burst=burst)
                    await worker.async_run()
                    return
                # Between queues no arq Worker runs to report health, so the loop reports it itself.
                await pool.psetex(health_check_key(), (HEALTH_CHECK_SECONDS + 1) * 1000, b"idle")
                queues = sorted(q.decode() for q in await pool.smembers(ACTIVE_QUEUES))  # type: ignore[misc]
                for name in queues:
                    worker = build_worker(config, pool, ctx, name, burst=True)
                    await worker.async_run()
                lost_since = None
                if burst and not queues:
                    return
                if not queues:
                    await asyncio.sleep(IDLE_POLL_SECONDS)
            except (RedisError, OSError) as exc:
                if worker is not None:
                    # Jobs of a lost connection run again from Redis once their in-progress marks expire.
                    for task in [*worker.tasks.values(), *worker.job_tasks.values()]:
                        task.cancel()
                now = time.monotonic()
                lost_since = lost_since or now
                if now - lost_since > config.worker_redis_grace:
                    raise StartupError(
                        f"lost Redis at {redacted(config.redis_url)} for over {config.worker_redis_grace:.0f}s: {exc}"
                    ) from exc
                log.warning("redis unreachable url=%s error=%r; retrying", redacted(config.redis_url), exc)
                await asyncio.sleep(1.0)
    finally:
        await close_context(ctx)
        await pool.aclose()


async def check(config: WorkerConfig, queue: str | None) -> int:
    """`semantik worker --check`: 0 when this host's worker reported recently (a liveness probe)."""
    return await async_check_health(redis_settings(config, retries=1), health_check_key(), queue or "arq:queue")


class WorkerSettings:
    """For `arq semantik.worker.main.WorkerSettings`: the SEMANTIK_* variables, one queue (SEMANTIK_WORKER_QUEUE)."""

    _config = WorkerConfig()
    functions = FUNCTIONS
    queue_name = _config.worker_queue
    redis_settings = RedisSettings.from_dsn(_config.redis_url)
    job_timeout = _config.worker_job_timeout + JOB_TIMEOUT_MARGIN_SECONDS
    max_tries = _config.worker_max_tries + 2
    max_jobs = _config.worker_concurrency
    health_check_interval = 30
    job_serializer = staticmethod(serialize_job)
    job_deserializer = staticmethod(deserialize_job)

    @staticmethod
    async def on_startup(ctx: dict[str, Any]) -> None:
        ctx.update(await open_context(WorkerSettings._config))

    @staticmethod
    async def on_shutdown(ctx: dict[str, Any]) -> None:
        await close_context(ctx)
