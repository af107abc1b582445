"""What crosses Redis: arq jobs as JSON, never pickle, and Redis URLs that never log their password."""

from __future__ import annotations

import pickle

import pytest
from arq.jobs import DeserializationError, deserialize_job_raw, serialize_job, serialize_result

from semantik.contracts.queue import deserialize_job
from semantik.contracts.queue import serialize_job as to_json
from semantik.worker.config import redacted


def test_a_job_round_trips_through_arq_as_json() -> None:
    raw = serialize_job("process_batch", ("op-1", 3), {}, None, 1_700_000_000_000, serializer=to_json)
    assert raw.startswith(b"{") and b"op-1" in raw
    assert deserialize_job_raw(raw, deserializer=deserialize_job) == (
        "process_batch",
        ["op-1", 3],
        {},
        None,
        1_700_000_000_000,
    )


def test_a_failed_jobs_exception_is_kept_as_text() -> None:
    raw = serialize_result(
        "scan", ("op-1",), {}, 2, 0, False, TimeoutError("took too long"), 0, 1, "ref", "q", "id", serializer=to_json
    )
    assert raw is not None and deserialize_job(raw)["r"] == "TimeoutError: took too long"


def test_a_pickled_job_is_refused_and_anything_but_a_json_object_too() -> None:
    # The worker-level test (tests/integration/test_service_mode.py) shows a forged payload's code never runs.
    forged = pickle.dumps({"t": 1, "f": "scan", "a": ["op"], "k": {}, "et": 0})
    with pytest.raises(DeserializationError):
        deserialize_job_raw(forged, deserializer=deserialize_job)
    with pytest.raises(ValueError, match="JSON object"):
        deserialize_job(b'["scan"]')


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:s3cret@redis:6379/0", "redis://:***@redis:6379/0"),
        ("redis://worker:s3cret@redis:6379/2", "redis://worker:***@redis:6379/2"),
        ("redis://redis:6379/0", "redis://redis:6379/0"),
        ("rediss://:s3cret@redis.example.com/1", "rediss://:***@redis.example.com/1"),
    ],
)
def test_a_redis_url_in_a_log_line_hides_its_password(url: str, shown: str) -> None:
    assert redacted(url) == shown
