"""Service mode as real processes: gateway, embedder service and three `semantik worker`s over private
Redis and PostgreSQL servers. Each fault test kills one part with SIGKILL at a random moment of an index
of 322 files and checks the end state against an embedded-mode run of the same folder: the operation
succeeded, the store holds exactly the same chunks (none lost, none twice, none from a second split of a
file), and every document row agrees with its points."""

from __future__ import annotations

import asyncio
import json
import pickle
import random
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from redis import Redis as SyncRedis
from redis.asyncio import Redis

from semantik.core.context import open_semantik
from semantik.core.embedding.engine import TransformerEmbedder
from semantik.core.pipeline.ids import LATEST_SCHEME, point_id
from semantik.core.services.collections import qdrant_collection_name
from semantik.core.settings import Settings
from semantik.core.store import metadata
from semantik.core.store.backend import open_backend
from semantik.worker.main import health_check_key
from tests.support.corpus import build_many_files
from tests.support.indexing import index_folder
from tests.support.servers import (
    drop_postgres_database,
    fresh_postgres_database,
    hack,
    private_server_directory,
)
from tests.support.stack import (
    EMBEDDER_TOKEN,
    Process,
    Stack,
    free_port,
    jobs_in_flight,
    operation,
    wait_for_operation,
    wait_for_progress,
    wait_until_ready,
)

pytestmark = pytest.mark.timeout(600)

NAME = "handbook"
WORKERS = 3


@dataclass(frozen=True)
class IndexState:
    """What an index holds: chunk text by (path, chunk index), and each document's row."""

    chunks: dict[tuple[str, int], str]
    documents: dict[str, tuple[str, int]]
    """path -> (status, chunk_count)"""
    terms: dict[tuple[str, int], tuple[int, ...]]
    """The term ids of each chunk's keyword vector: the weights depend on the average chunk length when each
    batch was written, which differs with batch order; the terms must not."""


async def read_store(data_dir: Path) -> tuple[dict[tuple[str, int], str], dict[tuple[str, int], tuple[int, ...]]]:
    """Every point of the collection, read from the embedded store once its owner has stopped."""
    store = open_backend(url=None, path=Settings(data_dir=data_dir).resolved_store_path)
    try:
        chunks: dict[tuple[str, int], str] = {}
        terms: dict[tuple[str, int], tuple[int, ...]] = {}
        offset: str | None = None
        while True:
            points, offset = await store.scroll(qdrant_collection_name(NAME), limit=1000, offset=offset)
            for point in points:
                key = (str(point.payload["path"]), int(point.payload["chunk_index"]))
                assert key not in chunks, f"two points for {key}"
                assert point.id == point_id(NAME, *key, scheme=LATEST_SCHEME), f"point of {key} has a foreign id"
                chunks[key] = str(point.payload["text"])
                assert point.sparse is not None
                terms[key] = point.sparse.indices
            if offset is None:
                return chunks, terms
    finally:
        await store.close()


# --- Servers of this module: killed by its tests, so never the session's shared ones ---


@pytest.fixture(scope="module")
def postgres_dir() -> Iterator[Path]:
    with private_server_directory("postgres.sh") as directory:
        hack("postgres.sh", "start", directory)
        yield directory


@pytest.fixture(scope="module")
def redis_dir() -> Iterator[Path]:
    with private_server_directory("redis.sh") as directory:
        hack("redis.sh", "start", directory)
        yield directory


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_many_files(tmp_path_factory.mktemp("many") / "docs")


@pytest.fixture(scope="module")
def embedder_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    port = free_port()
    process = Process(
        "embedder",
        ["embedder", "--port", str(port)],
        {"HF_HUB_OFFLINE": "1", "SEMANTIK_EMBEDDER_TOKEN": EMBEDDER_TOKEN},
        tmp_path_factory.mktemp("embedder") / "embedder.log",
    )
    process.start()
    wait_until_ready(f"http://127.0.0.1:{port}/readyz", process)
    yield process
    process.stop()


def embedder_port(process: Process) -> int:
    return int(process.args[process.args.index("--port") + 1])


@pytest.fixture(scope="module")
async def embedded_run(
    corpus: Path, tmp_path_factory: pytest.TempPathFactory, real_embedder: TransformerEmbedder
) -> IndexState:
    """The same folder indexed in embedded mode: the answer every service-mode run must match."""
    data_dir = tmp_path_factory.mktemp("embedded")
    async with open_semantik(Settings(data_dir=data_dir), embedder=real_embedder) as app:
        report = await index_folder(app, NAME, corpus)
        async with app.sessions() as session:
            row = await metadata.get_collection(session, NAME)
            assert row is not None
            docs = await metadata.known_documents(session, row.id)
    assert report.progress.files_total == 322
    chunks, terms = await read_store(data_dir)
    return IndexState(chunks, {path: (doc.status, doc.chunk_count) for path, doc in docs.items()}, terms)


@pytest.fixture
async def stack(
    tmp_path: Path, postgres_dir: Path, redis_dir: Path, embedder_process: Process, request: pytest.FixtureRequest
) -> AsyncIterator[Stack]:
    database = await fresh_postgres_database(hack("postgres.sh", "url", postgres_dir))
    service = Stack(
        workdir=tmp_path,
        redis_url=hack("redis.sh", "url", redis_dir),
        database_url=database,
        embedder_port=embedder_port(embedder_process),
    )
    service.embedder = embedder_process
    try:
        service.start_gateway()
        yield service
    finally:
        for worker in service.workers:
            worker.stop()
        if service.gateway is not None:
            service.gateway.stop()
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            print(service.logs())
        await drop_postgres_database(database)


def start_index(stack: Stack, corpus: Path) -> str:
    with stack.api() as client:
        created = client.post("/api/v1/collections", json={"name": NAME, "source_path": str(corpus)})
        assert created.status_code == 201, created.text
        started = client.post(f"/api/v1/collections/{NAME}/index", json={})
        assert started.status_code == 202, started.text
        operation_id: str = started.json()["operation_id"]
        return operation_id


def read_service_state(stack: Stack) -> IndexState:
    with stack.api() as client:
        items = client.get(f"/api/v1/collections/{NAME}/documents", params={"limit": 1000}).json()["items"]
    assert stack.gateway is not None
    stack.gateway.stop()  # the embedded store belongs to one process: read it once the gateway is gone
    chunks, terms = asyncio.run(read_store(stack.workdir / "data"))
    return IndexState(chunks, {d["path"]: (d["status"], d["chunk_count"]) for d in items}, terms)


def assert_same_index(state: IndexState, expected: IndexState) -> None:
    assert len(state.chunks) == len(expected.chunks), "points lost or duplicated"
    assert state.chunks == expected.chunks, "a document was split or embedded differently than in embedded mode"
    assert state.documents == expected.documents
    assert state.terms == expected.terms, "keyword vectors differ from embedded mode's"
    per_document: dict[str, int] = {}
    for path, _ in state.chunks:
        per_document[path] = per_document.get(path, 0) + 1
    for path, (status, count) in state.documents.items():
        assert per_document.get(path, 0) == count, f"row of {path} ({status}) disagrees with its points"


def run_with_fault(
    stack: Stack,
    corpus: Path,
    expected: IndexState,
    what: str,
    fault: Callable[[], None],
    seed: int,
    on_start: Callable[[str], None] = lambda _: None,
    on_end: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    """Index with three workers, run `fault` once a random share of the files is done, check the end.
    `on_end` runs once the operation has ended, while the gateway still serves (its state is read after)."""
    for _ in range(WORKERS):
        stack.start_worker()
    operation_id = start_index(stack, corpus)
    on_start(operation_id)
    share = random.Random(seed).uniform(0.1, 0.6)
    started = time.monotonic()
    with stack.api() as client:
        at = wait_for_progress(client, operation_id, int(322 * share), stack.workers)
        print(f"\n{what}: killed at {time.monotonic() - started:.1f}s, {at['files_processed']}/322 files processed")
        fault()
        final = wait_for_operation(client, operation_id)
    on_end()
    print(
        f"{what}: ended {final['status']} after {time.monotonic() - started:.1f}s: files {final['files_processed']}"
        f" processed, {final['files_failed']} failed, {final['chunks']} chunks"
    )
    assert final["status"] == "succeeded", final
    assert (final["files_total"], final["files_processed"]) == (322, 322)
    assert final["files_failed"] == sum(1 for status, _ in expected.documents.values() if status == "failed")
    assert final["chunks"] == len(expected.chunks), "a batch was counted twice or not at all"
    state = read_service_state(stack)
    assert_same_index(state, expected)
    print(f"{what}: {len(state.chunks)} points, {len(state.documents)} documents, as in embedded mode")
    return final


def test_one_worker_killed(stack: Stack, corpus: Path, embedded_run: IndexState) -> None:
    events: list[tuple[str, dict[str, Any]]] = []

    def kill_one() -> None:
        # The one in the middle of a job, so the test proves a cut-off job is taken up again.
        deadline = time.monotonic() + 30
        while not (busy := [w for w in stack.workers if jobs_in_flight(w)]) and time.monotonic() < deadline:
            time.sleep(0.05)
        victim = (busy or stack.workers)[0]
        held = jobs_in_flight(victim)
        victim.kill9()
        print(f"{victim.name} held {held or 'no job'}")

    def listen(operation_id: str) -> None:
        with (
            httpx.Client(base_url=stack.gateway_url, timeout=None) as client,
            client.stream("GET", f"/api/v1/operations/{operation_id}/events") as stream,
        ):
            event = ""
            for line in stream.iter_lines():
                if line.startswith("event:"):
                    event = line.split(":", 1)[1].strip()
                elif line.startswith("data:"):
                    events.append((event, json.loads(line.split(":", 1)[1])))

    def listen_in_background(operation_id: str) -> None:
        threading.Thread(target=listen, args=(operation_id,), daemon=True).start()

    searched: list[dict[str, Any]] = []

    def wait_for_the_end_event_then_search() -> None:
        # Before the state is read, which stops the gateway: the stream polls its row every 0.25 s.
        deadline = time.monotonic() + 10
        while (not events or events[-1][0] != "end") and time.monotonic() < deadline:
            time.sleep(0.1)
        with stack.api() as client:
            searched.append(client.post(f"/api/v1/collections/{NAME}/search", json={"query": "API keys"}).json())

    final = run_with_fault(
        stack,
        corpus,
        embedded_run,
        "one worker",
        kill_one,
        seed=1,
        on_start=listen_in_background,
        on_end=wait_for_the_end_event_then_search,
    )
    # The stream is made of the REST answer's own counters: it ends with exactly the final state.
    assert events[-1] == ("end", final)
    processed = [body["files_processed"] for _, body in events]
    assert processed == sorted(processed) and len(events) >= 3
    # The service-mode gateway searches with the same service: hybrid, each hit explained by both retrievers.
    (answer,) = searched
    assert answer["modes"] == {NAME: "hybrid"} and answer["notes"] == [], answer
    assert {c["retriever"] for hit in answer["hits"] for c in hit["explain"]} == {"dense", "sparse"}


def test_all_workers_killed_then_new_ones(stack: Stack, corpus: Path, embedded_run: IndexState) -> None:
    def kill_all_then_replace() -> None:
        for worker in stack.workers:
            worker.kill9()
            print(f"{worker.name} held {jobs_in_flight(worker) or 'no job'}")
        for _ in range(WORKERS):
            stack.start_worker()

    run_with_fault(stack, corpus, embedded_run, "all workers", kill_all_then_replace, seed=2)


def test_embedder_killed_and_restarted(stack: Stack, corpus: Path, embedded_run: IndexState) -> None:
    def kill_and_restart() -> None:
        assert stack.embedder is not None
        stack.embedder.kill9()
        time.sleep(2)
        stack.embedder.start()

    run_with_fault(stack, corpus, embedded_run, "embedder", kill_and_restart, seed=3)


def test_gateway_killed_and_restarted(stack: Stack, corpus: Path, embedded_run: IndexState) -> None:
    # Workers hand every batch to the gateway: the batches in flight at the kill are retried against the
    # new process and applied once.
    def kill_and_restart() -> None:
        assert stack.gateway is not None
        stack.gateway.kill9()
        time.sleep(2)
        stack.gateway.start()
        wait_until_ready(f"{stack.gateway_url}/healthz", stack.gateway)

    run_with_fault(stack, corpus, embedded_run, "gateway", kill_and_restart, seed=6)


def test_an_embedder_that_stops_answering_past_the_job_timeout(
    stack: Stack, corpus: Path, embedded_run: IndexState
) -> None:
    # SIGSTOP: connections stay open and nothing answers, so the jobs in flight outlast their timeout.
    # Each is retried like any passing fault; none is dropped, which would leave its batch uncommitted
    # and the operation open for good.
    def freeze_then_thaw() -> None:
        assert stack.embedder is not None and stack.embedder.popen is not None
        stack.embedder.popen.send_signal(signal.SIGSTOP)
        try:
            time.sleep(2.5 * stack.job_timeout)
        finally:
            stack.embedder.popen.send_signal(signal.SIGCONT)

    run_with_fault(stack, corpus, embedded_run, "embedder stopped", freeze_then_thaw, seed=7)
    timed_out = [w.name for w in stack.workers if "outlasted" in w.log_path.read_text(errors="replace")]
    assert timed_out, "no job ran into its timeout: the fault did not test what it should"


def test_redis_killed_and_restarted(stack: Stack, corpus: Path, embedded_run: IndexState, redis_dir: Path) -> None:
    def kill_and_restart() -> None:
        hack("redis.sh", "kill9", redis_dir)
        time.sleep(2)
        hack("redis.sh", "restart", redis_dir)

    run_with_fault(stack, corpus, embedded_run, "redis", kill_and_restart, seed=4)


def test_postgres_killed_and_restarted(
    stack: Stack, corpus: Path, embedded_run: IndexState, postgres_dir: Path
) -> None:
    def kill_and_restart() -> None:
        hack("postgres.sh", "kill9", postgres_dir)
        time.sleep(2)
        hack("postgres.sh", "restart", postgres_dir)

    run_with_fault(stack, corpus, embedded_run, "postgres", kill_and_restart, seed=5)


def test_cancel_mid_run_leaves_every_document_whole(stack: Stack, corpus: Path, embedded_run: IndexState) -> None:
    for _ in range(WORKERS):
        stack.start_worker()
    operation_id = start_index(stack, corpus)
    with stack.api() as client:
        wait_for_progress(client, operation_id, 60, stack.workers)
        cancelled = client.post(f"/api/v1/operations/{operation_id}/cancel")
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        second = client.post(f"/api/v1/collections/{NAME}/index", json={})
        assert second.status_code == 202  # the collection is free again
        client.post(f"/api/v1/operations/{second.json()['operation_id']}/cancel")
        time.sleep(2 * stack.job_timeout)  # batches in flight at the cancel finish or are refused
        final = operation(client, operation_id)
    state = read_service_state(stack)
    print(f"\ncancelled at {final['files_processed']}/322 files; {len(state.documents)} documents in the index")
    assert final["status"] == "cancelled" and final["files_processed"] < 322
    assert 0 < len(state.documents) < 322
    for path, (status, count) in state.documents.items():
        assert (status, count) == embedded_run.documents[path], path
        for index in range(count):
            assert state.chunks[(path, index)] == embedded_run.chunks[(path, index)]
            assert state.terms[(path, index)] == embedded_run.terms[(path, index)]
    assert len(state.chunks) == sum(count for _, count in state.documents.values())


def test_second_operation_while_one_runs_is_rejected(stack: Stack, corpus: Path) -> None:
    operation_id = start_index(stack, corpus)  # no workers: it stays pending
    with stack.api() as client:
        second = client.post(f"/api/v1/collections/{NAME}/index", json={})
        assert second.status_code == 409
        assert second.json()["error"]["field"] == "collection" and operation_id in second.json()["error"]["message"]


def test_a_fault_that_outlasts_the_tries_fails_the_files_not_the_operation(
    stack: Stack, corpus: Path, tmp_path: Path, embedder_process: Process
) -> None:
    small = tmp_path / "small"
    small.mkdir()
    for file in sorted(corpus.rglob("note-000*.md")):
        (small / file.name).write_bytes(file.read_bytes())
    with stack.api() as client:
        client.post("/api/v1/collections", json={"name": "small", "source_path": str(small)})
        operation_id = client.post("/api/v1/collections/small/index", json={}).json()["operation_id"]
    env = {"SEMANTIK_WORKER_MAX_TRIES": "2", "SEMANTIK_WORKER_JOB_TIMEOUT": "6"}
    worker = stack.start_worker({**env})
    worker.args += ["--queue", f"semantik:job:{operation_id}", "--burst"]
    worker.stop()
    worker.start()
    deadline = time.monotonic() + 60
    while "Starting worker" not in worker.log_tail() and time.monotonic() < deadline:
        time.sleep(0.1)  # connected to the embedder; now it goes away for good
    embedder_process.kill9()
    try:
        assert worker.wait(timeout=180) == 0, worker.log_tail()  # a burst worker leaves when its queue is done
        with stack.api() as client:
            final = operation(client, operation_id)
            documents = client.get("/api/v1/collections/small/documents").json()["items"]
    finally:
        embedder_process.start()
        wait_until_ready(f"http://127.0.0.1:{embedder_port(embedder_process)}/readyz", embedder_process)
    print(f"\nembedder gone for good: operation {final['status']}, {final['files_failed']} files failed")
    assert final["status"] == "succeeded" and final["files_failed"] == final["files_total"] == 10
    assert {d["status"] for d in documents} == {"failed"}
    assert all("embed" in d["error"] and "2 times" in d["error"] for d in documents), documents[0]


def test_worker_with_a_wrong_redis_url_exits_with_a_clear_message(stack: Stack) -> None:
    worker = stack.start_worker({"SEMANTIK_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"})
    assert worker.wait(timeout=60) != 0
    assert "cannot reach Redis at redis://127.0.0.1:" in worker.log_tail()


def test_worker_check_is_a_liveness_probe(stack: Stack) -> None:
    def check() -> int:
        probe = Process("check", ["worker", "--check"], stack.common_env(), stack.workdir / "check.log")
        probe.start()
        return probe.wait(timeout=60)

    # Workers of earlier tests share this host's health key, and their last report lives 31 s: start
    # from a host where no worker has reported.
    with SyncRedis.from_url(stack.redis_url) as redis:
        redis.delete(health_check_key())
    assert check() != 0
    worker = stack.start_worker()
    deadline = time.monotonic() + 60
    while (status := check()) != 0 and worker.running and time.monotonic() < deadline:
        time.sleep(0.5)
    assert status == 0, (stack.workdir / "check.log").read_text()
    worker.stop()


def test_worker_without_the_redis_password_exits_with_a_clear_message(stack: Stack) -> None:
    password = urlsplit(stack.redis_url).password
    assert password, "the test Redis requires a password, as the chart's does"
    worker = stack.start_worker({"SEMANTIK_REDIS_URL": stack.redis_url.replace(f":{password}@", "")})
    assert worker.wait(timeout=60) != 0
    assert "Redis at redis://127.0.0.1:" in worker.log_tail() and "refused the password" in worker.log_tail()
    wrong = stack.start_worker({"SEMANTIK_REDIS_URL": stack.redis_url.replace(password, "not-the-password")})
    assert wrong.wait(timeout=60) != 0
    assert "refused the password" in wrong.log_tail()
    assert "not-the-password" not in wrong.log_tail(), "a Redis password is never logged"


class _CreatesMarker:
    """Unpickling this opens (so creates) a file: what a forged job would do with code instead."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.path), "w"))


async def test_worker_refuses_a_pickled_job(stack: Stack) -> None:
    marker = stack.workdir / "unpickled"
    queue = "semantik:job:forged"
    # Written the way arq's pickle serializer does (arq.jobs.serialize_job): job key, then the queue entry.
    forged = pickle.dumps({"t": 1, "f": "scan", "a": [_CreatesMarker(marker)], "k": {}, "et": int(time.time() * 1000)})
    redis = Redis.from_url(stack.redis_url)
    try:
        await redis.set("arq:job:forged-1", forged, px=60_000)
        await redis.zadd(queue, {"forged-1": int(time.time() * 1000)})
        worker = Process(
            "worker-forged", ["worker", "--queue", queue, "--burst"], stack.common_env(), stack.workdir / "forged.log"
        )
        worker.start()
        stack.workers.append(worker)
        assert worker.wait(timeout=120) == 0, worker.log_tail()
        assert not marker.exists(), "the worker unpickled a job"
        assert "deserializing job forged-1 failed" in worker.log_tail(80)
        assert await redis.zcard(queue) == 0, "the forged job is dropped, not retried"
    finally:
        await redis.delete(queue, "arq:job:forged-1", "arq:result:forged-1")
        await redis.aclose()
