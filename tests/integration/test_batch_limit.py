"""A worker's batch that is larger than the gateway's internal request limit: the gateway refuses it with
413, the worker records that batch's files as failed with the reason, and the run still ends, with the
other files searchable. Real processes: embedder, gateway (service mode) and worker."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.corpus import COMMON_LICENSES, VACATION_TXT
from tests.support.servers import drop_postgres_database, fresh_postgres_database
from tests.support.stack import Stack, free_port, wait_for_operation

LIMIT = 16 * 1024


@pytest.fixture
def stack(tmp_path: Path, postgres_url: str, redis_url: str) -> Iterator[Stack]:
    database = asyncio.run(fresh_postgres_database(postgres_url))
    service = Stack(
        workdir=tmp_path,
        redis_url=redis_url,
        database_url=database,
        embedder_port=free_port(),
        job_timeout=60,  # embedding on a busy machine may be slow: no retries for that here
        gateway_env={"SEMANTIK_MAX_INTERNAL_REQUEST_BYTES": str(LIMIT)},
    )
    try:
        service.start_embedder()
        service.start_gateway()
        service.start_worker({"SEMANTIK_WORKER_BATCH_FILES": "1"})  # one file a batch
        yield service
    finally:
        service.stop_all()
        asyncio.run(drop_postgres_database(database))


def test_a_batch_over_the_internal_limit_fails_its_files_and_the_run_ends(stack: Stack, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "vacation.txt").write_text(VACATION_TXT)
    # ~10 chunks: as chunk text and vectors (~3 KiB each), twice the limit; vacation.txt is one chunk.
    (folder / "licence.txt").write_bytes((COMMON_LICENSES / "GPL-3").read_bytes()[: 8 * 1024])

    with stack.api() as api:
        created = api.post("/api/v1/collections", json={"name": "limits", "source_path": str(folder)})
        assert created.status_code == 201, created.text
        started = api.post("/api/v1/collections/limits/index")
        assert started.status_code == 202, started.text
        operation = wait_for_operation(api, started.json()["operation_id"], timeout=180)

        assert operation["status"] == "succeeded", stack.logs()
        assert operation["files_processed"] == 2 and operation["files_failed"] == 1
        documents = {d["path"]: d for d in api.get("/api/v1/collections/limits/documents").json()["items"]}
        assert documents["licence.txt"]["status"] == "failed"
        assert "too large for the gateway" in documents["licence.txt"]["error"]
        assert "SEMANTIK_MAX_INTERNAL_REQUEST_BYTES" in documents["licence.txt"]["error"]
        assert documents["vacation.txt"]["status"] == "indexed"
        hits = api.post("/api/v1/collections/limits/search", json={"query": "vacation days", "k": 1}).json()["hits"]
        assert [hit["path"] for hit in hits] == ["vacation.txt"]
