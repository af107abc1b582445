"""How arq jobs are written to Redis: JSON, never pickle.

arq's default (pickle) runs code chosen by whoever can write to Redis: any payload a worker unpickles can
construct any object. Every process that enqueues (the gateway, the workers' fan-out) or runs jobs passes
these two functions to `create_pool` and `Worker`, so a job is plain data and a pickled one is refused.
Job arguments are ids and numbers (tasks take ids, never payloads), so JSON carries them all.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit, urlunsplit


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


def redacted(url: str) -> str:
    """A Redis URL fit for a log line or an error: its password replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
