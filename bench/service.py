"""Service mode: index throughput with 1, 2 and 4 workers against the HTTP embedder, beside the
embedded mode on the same corpus, and where the time goes per stage (extract, embed, store)."""

from __future__ import annotations

import os
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from tests.support.servers import fresh_postgres_database, hack, private_server_directory
from tests.support.stack import Stack, free_port, operation, wait_for_operation

from bench.indexing import generate_corpus
from semantik.core.context import open_semantik
from semantik.core.services import collections, indexing
from semantik.core.settings import Settings

FILES = int(os.environ.get("BENCH_SERVICE_FILES", "160"))
WORKER_COUNTS = tuple(int(n) for n in os.environ.get("BENCH_SERVICE_WORKERS", "1,2,4").split(","))
ONE_WORKER_GOAL = 0.90


def stage_line(label: str, seconds: float, chunks: int, extract: float, embed: float, store: float) -> str:
    busy = extract + embed + store or 1.0
    return (
        f"{label:<28} {seconds:7.1f} s {chunks / seconds:8.1f} chunks/s   "
        f"extract {extract:6.1f} s ({extract / busy:4.0%})  embed {embed:6.1f} s ({embed / busy:4.0%})  "
        f"store {store:6.1f} s ({store / busy:4.0%})"
    )


EMBEDDER_SERIES = (
    "semantik_embedder_forward_seconds_sum",
    "semantik_embedder_forward_seconds_count",
    "semantik_embedder_batch_size_sum",
    "semantik_embedder_batch_tokens_sum",
    "semantik_embedder_tokens_total",
)


def embedder_counters(url: str) -> dict[str, float]:
    """The embedder's forward-pass counters, to tell a busy model from one waiting for work."""
    exposition = httpx.get(f"{url}/metrics", timeout=10).text
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name in EMBEDDER_SERIES
    }


def embedder_line(before: dict[str, float], after: dict[str, float], seconds: float) -> str:
    delta = {name: after.get(name, 0.0) - before.get(name, 0.0) for name in EMBEDDER_SERIES}
    forward = delta["semantik_embedder_forward_seconds_sum"]
    passes = delta["semantik_embedder_forward_seconds_count"] or 1.0
    padded = delta["semantik_embedder_batch_tokens_sum"]
    real = delta["semantik_embedder_tokens_total"] or 1.0
    return (
        f"{'':<28} embedder: forward passes {forward:6.1f} s ({forward / seconds:4.0%} of the wall), "
        f"{passes:.0f} passes of {delta['semantik_embedder_batch_size_sum'] / passes:5.1f} texts, "
        f"padding {padded / real - 1:4.0%}"
    )


def wait_until_logged(log_path: Path, words: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while words not in (log_path.read_text(errors="replace") if log_path.exists() else ""):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{log_path.name} did not say {words!r} in {timeout:.0f}s")
        time.sleep(0.1)


async def main() -> None:
    with tempfile.TemporaryDirectory(prefix="semantik-bench-service-") as tmp:
        corpus = Path(tmp) / "corpus"
        generate_corpus(corpus, files=FILES)

        async with open_semantik(Settings(data_dir=Path(tmp) / "embedded")) as app:
            await (await app.embedder()).embed(["warm-up"] * 8)
            await collections.create_collection(app, collections.CollectionSpec(name="bench"))
            opened = await indexing.open_index_operation(app, "bench", str(corpus), full=False)
            started = time.perf_counter()
            report = await indexing.run_index_operation(app, opened.id)
            embedded_seconds = time.perf_counter() - started
        p = report.progress
        print(f"corpus: {p.files_total} files, {p.chunks} chunks, {p.tokens} tokens")
        print("stage seconds are summed over concurrent workers, so they can exceed the wall time")
        print(
            stage_line(
                "embedded (in-process model)",
                embedded_seconds,
                p.chunks,
                p.extract_seconds,
                p.embed_seconds,
                p.store_seconds,
            )
            + f"\n{'':<28} engine: forward passes and tokenizing {p.embed_seconds:6.1f} s "
            f"({p.embed_seconds / embedded_seconds:4.0%} of the wall)"
        )

        with private_server_directory("postgres.sh") as pg_dir, private_server_directory("redis.sh") as redis_dir:
            server = hack("postgres.sh", "start", pg_dir)
            stack = Stack(
                workdir=Path(tmp) / "service",
                redis_url=hack("redis.sh", "start", redis_dir),
                database_url=await fresh_postgres_database(server),
                embedder_port=free_port(),
                job_timeout=300,
            )
            stack.workdir.mkdir()
            try:
                stack.start_embedder()
                stack.start_gateway()
                for count in WORKER_COUNTS:
                    workers = [stack.start_worker() for _ in range(count)]
                    # Their start (imports, tokenizer, connections) is not indexing, as the embedded run's
                    # model load is not: the clock starts once every worker says it is ready.
                    for worker in workers:
                        wait_until_logged(worker.log_path, "worker ready")
                    name = f"bench-{count}"
                    before = embedder_counters(stack.embedder_url)
                    with stack.api() as client:
                        client.post("/api/v1/collections", json={"name": name, "source_path": str(corpus)})
                        accepted = client.post(f"/api/v1/collections/{name}/index", json={}).json()
                        final = wait_for_operation(client, accepted["operation_id"], timeout=1800, every=2.0)
                        body = operation(client, accepted["operation_id"])
                    # The gateway's own clock, from queued to finished: polling finely enough to time the end
                    # here would take CPU from the model being measured.
                    seconds = (
                        datetime.fromisoformat(body["finished_at"]) - datetime.fromisoformat(body["created_at"])
                    ).total_seconds()
                    assert final["status"] == "succeeded", final
                    print(
                        stage_line(
                            f"service, {count} worker{'s' if count > 1 else ''}",
                            seconds,
                            body["chunks"],
                            body["extract_seconds"],
                            body["embed_seconds"],
                            body["store_seconds"],
                        )
                        + f"   ratio to embedded {embedded_seconds / seconds:.2f}"
                    )
                    print(embedder_line(before, embedder_counters(stack.embedder_url), seconds))
                    if count == 1:
                        ratio = embedded_seconds / seconds
                        verdict = "met" if ratio >= ONE_WORKER_GOAL else "NOT met"
                        print(f"goal: one worker >= {ONE_WORKER_GOAL:.2f} of embedded: {ratio:.2f} ({verdict})")
                    for worker in workers:
                        worker.stop()
            finally:
                stack.stop_all()
