"""A job past SEMANTIK_WORKER_JOB_TIMEOUT is retried, not ended: arq ends a job that outlasts its own
timeout for good, which would leave the job's batch uncommitted and its operation open forever."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from arq import Retry

from semantik.worker.config import WorkerConfig
from semantik.worker.tasks import TriesExhaustedError, within_job_timeout


def job_context(job_try: int, *, timeout: float = 0.05, max_tries: int = 3) -> dict[str, Any]:
    # model_construct: the setting's floor of 5 s is for operators, not for this test's clock.
    config = WorkerConfig.model_construct(worker_job_timeout=timeout, worker_max_tries=max_tries)
    return {"config": config, "job_try": job_try, "job_id": "op:batch:1"}


@within_job_timeout
async def stalls(ctx: dict[str, Any]) -> str:
    await asyncio.sleep(10)
    return "done"


@within_job_timeout
async def times_out_by_itself(ctx: dict[str, Any]) -> str:
    raise TimeoutError("the task's own limit")


async def test_a_job_past_its_timeout_is_retried_later() -> None:
    with pytest.raises(Retry) as raised:
        await stalls(job_context(job_try=2))
    assert raised.value.defer_score == 4000  # 2 ** try seconds, as for any passing fault


async def test_on_its_last_try_a_job_past_its_timeout_says_so() -> None:
    with pytest.raises(TriesExhaustedError, match=r"outlasted SEMANTIK_WORKER_JOB_TIMEOUT.* 3 times"):
        await stalls(job_context(job_try=3))


async def test_a_timeout_of_the_task_itself_is_not_taken_for_the_jobs() -> None:
    with pytest.raises(TimeoutError, match="the task's own limit"):
        await times_out_by_itself(job_context(job_try=1))


def test_the_wrapped_task_keeps_the_name_jobs_are_enqueued_by() -> None:
    assert stalls.__name__ == "stalls" and stalls.__qualname__ == "stalls"
