"""A folder of hostile files beside good ones: `semantik index` (the real CLI, embedded mode) and a service-mode
stack (gateway, embedder and a worker as real processes over real Redis and PostgreSQL) both finish, record
each hostile file's failure with its reason, and keep the good files searchable."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.hostile import (
    MAX_FILE_BYTES,
    TIMEOUT_SECONDS,
    Grower,
    HostileCorpus,
    build_hostile_corpus,
)
from tests.support.servers import drop_postgres_database, fresh_postgres_database, private_server
from tests.support.stack import Stack, free_port, wait_for_operation

SEMANTIK = [sys.executable, "-m", "semantik.cli"]
# Small limits keep the test fast; the defaults are 30 s and 1 GiB.
LIMITS = {
    "SEMANTIK_EXTRACT_TIMEOUT_SECONDS": str(TIMEOUT_SECONDS),
    "SEMANTIK_EXTRACT_CPU_SECONDS": str(TIMEOUT_SECONDS),
    "SEMANTIK_EXTRACT_MEMORY_BYTES": str(1024**3),
    "SEMANTIK_MAX_FILE_BYTES": str(MAX_FILE_BYTES),
}
FAILURE_LINE = re.compile(r"^  (\S+): (.+)$")
INDEXED_LINE = re.compile(r"^Indexed (\d+) files")


QUERIES = [
    ("how do I rotate api keys", "keys.md"),
    ("the pager fires at night, acknowledge the alert", "oncall.html"),
    ("how many days of paid leave do employees get", "vacation.txt"),
]


def run(*args: str, data_dir: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "SEMANTIK_DATA_DIR": str(data_dir), "COLUMNS": "1000", **LIMITS}
    environment.pop("SEMANTIK_DATABASE_URL", None)
    return subprocess.run([*SEMANTIK, *args], capture_output=True, text=True, env=environment, timeout=timeout)


def outcomes(corpus: HostileCorpus, stdout: str) -> dict[str, str]:
    """Each file's outcome from the index report: its failure reason, or "indexed".

    The report names failed files only; the count of indexed files must make up all the others.
    """
    failed = {m.group(1): m.group(2) for line in stdout.splitlines() if (m := FAILURE_LINE.match(line))}
    indexed = next(int(m.group(1)) for line in stdout.splitlines() if (m := INDEXED_LINE.match(line)))
    unnamed = [path for path in corpus.expected if path not in failed]
    assert indexed == len(unnamed), (indexed, unnamed, stdout)
    return {**{p: "indexed" for p in unnamed}, **failed}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> HostileCorpus:
    return build_hostile_corpus(tmp_path_factory.mktemp("hostile"))


def test_index_finishes_records_reasons_and_good_files_stay_searchable(corpus: HostileCorpus, tmp_path: Path) -> None:
    data = tmp_path / "data"
    started = time.monotonic()
    with Grower(corpus.root / "grows.txt"):
        result = run("index", str(corpus.root), "--collection", "hostile", data_dir=data)
    seconds = time.monotonic() - started
    assert result.returncode == 0, result.stderr[-3000:]
    print(result.stdout, f"\nindexed the hostile corpus in {seconds:.1f}s")

    found = outcomes(corpus, result.stdout)
    wrong = {path: got for path, got in found.items() if not corpus.expected[path].match(got)}
    assert wrong == {}, result.stdout
    assert re.search(r"\d+ files could not be indexed", result.stdout)

    for query, path in QUERIES:
        search = run("search", "hostile", query, "-k", "3", "--json", data_dir=data, timeout=120)
        assert search.returncode == 0, search.stderr[-3000:]
        assert json.loads(search.stdout)["hits"][0]["path"] == path, search.stdout

    # The link out of the folder was never followed: its target's words are nowhere in the index.
    leaked = run("search", "hostile", "where are the launch codes kept", "-k", "10", "--json", data_dir=data)
    assert all("launch codes" not in hit.get("snippet", "") for hit in json.loads(leaked.stdout)["hits"])
    assert all(hit["path"] != "escape.txt" for hit in json.loads(leaked.stdout)["hits"])


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    with (
        private_server("postgres.sh", "SEMANTIK_TEST_POSTGRES_URL") as postgres,
        private_server("redis.sh", "SEMANTIK_TEST_REDIS_URL") as redis,
    ):
        database = await fresh_postgres_database(postgres)
        # The gateway plans with its own max_file_bytes; the worker extracts under its own limits.
        service = Stack(
            workdir=tmp_path, redis_url=redis, database_url=database, embedder_port=free_port(), gateway_env=LIMITS
        )
        try:
            service.start_embedder()
            service.start_gateway()
            service.start_worker(LIMITS)
            yield service
        finally:
            service.stop_all()
            await drop_postgres_database(database)


def test_service_mode_worker_records_reasons_and_good_files_stay_searchable(
    corpus: HostileCorpus, stack: Stack
) -> None:
    with stack.api() as client, Grower(corpus.root / "grows.txt"):
        created = client.post("/api/v1/collections", json={"name": "hostile", "source_path": str(corpus.root)})
        assert created.status_code == 201, created.text
        started = client.post("/api/v1/collections/hostile/index", json={"full": True})
        assert started.status_code == 202, started.text
        finished = wait_for_operation(client, started.json()["operation_id"], timeout=400)
    assert finished["status"] == "succeeded", (finished, stack.logs())

    with stack.api() as client:
        items = client.get("/api/v1/collections/hostile/documents", params={"limit": 1000}).json()["items"]
        found = {d["path"]: "indexed" if d["status"] == "indexed" else d["error"] for d in items}
        # Every file has its row: the special files and links too, each with what it is.
        found.update({path: "no document row" for path in corpus.expected if path not in found})
        wrong = {path: got for path, got in found.items() if not corpus.expected[path].match(got or "")}
        assert wrong == {}, stack.logs()

        for query, path in QUERIES:
            hits = search(client, query)
            assert hits[0]["path"] == path, hits
        assert all(hit["path"] != "escape.txt" for hit in search(client, "where are the launch codes kept"))


def search(client: httpx.Client, query: str) -> list[dict[str, Any]]:
    response = client.post("/api/v1/collections/hostile/search", json={"query": query, "k": 5})
    assert response.status_code == 200, response.text
    hits: list[dict[str, Any]] = response.json()["hits"]
    return hits
