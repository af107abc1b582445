"""The work queue's protocol: queue names, job ids, the set of queues with work, and jobs as JSON.

The gateway and the operator name an operation's queue, the gateway and the workers enqueue its jobs, and
workers serve it: all of them take these names from here, so a job enqueued twice has one id.

Jobs are JSON, never pickle. arq's default (pickle) runs code chosen by whoever can write to Redis: any
payload a worker unpickles can construct any object. Every process that enqueues (the gateway, the
workers' fan-out) or runs jobs passes these two functions to `create_pool` and `Worker`, so a job is plain
data and a pickled one is refused. Job arguments are ids and numbers (tasks take ids, never payloads), so
JSON carries them all.
"""

from __future__ import annotations

import json
from typing import Any

ACTIVE_QUEUES = "semantik:queues"
"""Redis set of the queues with work, which long-running workers (no --queue) serve in turn."""


def queue_name(operation_id: str) -> str:
    """The operation's own arq queue, so burst workers stop when its work is done."""
    return f"semantik:job:{operation_id}"


def scan_job_id(operation_id: str) -> str:
    return f"{operation_id}:scan"


def batch_job_id(operation_id: str, number: int) -> str:
    return f"{operation_id}:batch:{number}"


def finalize_job_id(operation_id: str) -> str:
    return f"{operation_id}:finalize"


def serialize_job(data: dict[str, Any]) -> bytes:
    # A failed job's result is its exception, which JSON cannot hold: its text is what a reader needs.
    return json.dumps(data, separators=(",", ":"), default=_as_text).encode()


def deserialize_job(raw: bytes) -> dict[str, Any]:
    """The job or result arq wrote; anything that is not a JSON object raises (arq fails the job and logs it)."""
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError(f"a queued job is a JSON object, not {type(data).__name__}")
    return data


def _as_text(value: object) -> str:
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {value}"
    return str(value)
