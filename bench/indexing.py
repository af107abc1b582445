"""Indexing throughput end to end beside embedder-only throughput on the same chunks, and gateway
search latency beside a direct qdrant-client query on the same store."""

from __future__ import annotations

import asyncio
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from qdrant_client import AsyncQdrantClient

from bench.report import latency_line, peak_rss_mib, percentile
from semantik.core.context import open_semantik
from semantik.core.embedding import TextKind
from semantik.core.pipeline.chunk import ChunkingConfig
from semantik.core.pipeline.sandbox import ExtractionPool, FileRequest, extract_and_chunk
from semantik.core.pipeline.tokens import load_tokenizer
from semantik.core.services import collections, indexing
from semantik.core.settings import Settings

LICENSES = Path("/usr/share/common-licenses")
DOCS = Path(__file__).resolve().parent.parent / "docs"
MIN_CHUNKS = 2000
QUERIES = [
    "what must I include in a NOTICE file when I redistribute",
    "may I link this library into a proprietary program",
    "warranty disclaimer and limitation of liability",
    "how do I create an API key",
    "patent license termination if I sue",
    "waive copyright and dedicate to the public domain",
    "distribute modified versions under the same license",
    "what happens to failed files during indexing",
]


def generate_corpus(root: Path, files: int = 400, seed: int = 7) -> None:
    """Documents made of shuffled paragraphs of real text, in nested folders, of mixed sizes."""
    paragraphs = [
        p.strip()
        for source in [*LICENSES.iterdir(), *DOCS.glob("*.md")]
        if source.is_file()
        for p in source.read_text(errors="replace").split("\n\n")
        if len(p.strip()) > 80
    ]
    rng = random.Random(seed)
    for number in range(files):
        folder = root / f"team-{number % 7}" / f"topic-{number % 13}"
        folder.mkdir(parents=True, exist_ok=True)
        body = "\n\n".join(rng.choice(paragraphs) for _ in range(rng.randint(3, 30)))
        suffix = ".md" if number % 3 == 0 else ".txt"
        (folder / f"doc-{number:04d}{suffix}").write_text(f"# Document {number}\n\n{body}\n")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def main() -> None:
    with tempfile.TemporaryDirectory(prefix="semantik-bench-") as tmp:
        corpus = Path(tmp) / "corpus"
        generate_corpus(corpus)
        settings = Settings(data_dir=Path(tmp) / "data")
        await asyncio.to_thread(extraction_throughput, corpus, settings)
        async with open_semantik(settings) as app:
            embedder = await app.embedder()
            await embedder.embed(["warm-up"] * 8)
            await collections.create_collection(app, collections.CollectionSpec(name="bench"))
            operation = await indexing.open_index_operation(app, "bench", str(corpus), full=False)
            started = time.perf_counter()
            report = await indexing.run_index_operation(app, operation.id)
            e2e = time.perf_counter() - started
            progress = report.progress
            if progress.chunks < MIN_CHUNKS:
                raise SystemExit(f"corpus too small: {progress.chunks} chunks < {MIN_CHUNKS}")

            row = await collections.load_collection(app, "bench")
            texts = await all_chunk_texts(app.store.client, row.qdrant_collection)
            started = time.perf_counter()
            embedded = await embedder.embed(texts, TextKind.DOCUMENT)
            embed_only = time.perf_counter() - started

            query_vectors = [(await embedder.embed([q], TextKind.QUERY)).vectors[0].tolist() for q in QUERIES]
            embed_query = []
            for query in QUERIES * 5:
                started = time.perf_counter()
                await embedder.embed([query], TextKind.QUERY)
                embed_query.append(time.perf_counter() - started)
            direct = await direct_query_latencies(app.store.client, row.qdrant_collection, query_vectors)

        print(f"corpus: {progress.files_total} files, {progress.chunks} chunks, {progress.tokens} tokens")
        print(
            f"{'end-to-end indexing (scan..record)':<44} {progress.chunks / e2e:8.1f} chunks/s "
            f"{progress.tokens / e2e:9.0f} tokens/s  ({e2e:.1f} s)"
        )
        print(
            f"{'embedder only, same chunks':<44} {len(texts) / embed_only:8.1f} chunks/s "
            f"{embedded.tokens / embed_only:9.0f} tokens/s  ({embed_only:.1f} s)"
        )
        print(f"ratio end-to-end / embedder-only: {embed_only / e2e:.2f}")
        print(latency_line("direct qdrant-client query (local mode)", direct))
        print(latency_line("query embedding alone (in-process)", embed_query))
        gateway = await gateway_latencies(settings)
        print(latency_line("gateway POST /search over HTTP", gateway))
        ratio = percentile(gateway, 50) / percentile(direct, 50)
        print(f"ratio gateway p50 / direct p50: {ratio:.1f}")
        print(f"peak RSS of the bench process: {peak_rss_mib():.0f} MiB")


def extraction_throughput(corpus: Path, settings: Settings) -> None:
    """Reading, extracting and chunking in the sandbox's processes beside the same work in this process."""
    tokenizer = load_tokenizer(settings.resolved_model_path)
    requests = [
        FileRequest(str(path), path.name, settings.max_file_bytes, ChunkingConfig())
        for path in sorted(corpus.rglob("*"))
        if path.is_file()
    ]
    limits = settings.extraction_limits
    started = time.perf_counter()
    for request in requests:
        extract_and_chunk(request, tokenizer, limits.max_text_chars)
    in_process = time.perf_counter() - started
    with ExtractionPool(tokenizer, limits) as pool:
        started = time.perf_counter()
        pool.prepare(requests[: limits.processes * 8])  # starts every process
        warm_up = time.perf_counter() - started
        started = time.perf_counter()
        pool.prepare(requests)
        pooled = time.perf_counter() - started
    files = len(requests)
    print(f"{'extract+chunk in this process':<44} {files / in_process:8.1f} files/s  ({in_process:.2f} s)")
    print(
        f"{f'extract+chunk in the sandbox ({limits.processes} processes)':<44} {files / pooled:8.1f} files/s  "
        f"({pooled:.2f} s; first start {warm_up:.2f} s)"
    )
    print(f"ratio sandbox / in-process: {in_process / pooled:.2f}")


async def all_chunk_texts(client: AsyncQdrantClient, name: str) -> list[str]:
    texts: list[str] = []
    offset = None
    while True:
        points, offset = await client.scroll(name, limit=512, offset=offset, with_payload=["text"])
        texts += [str((p.payload or {})["text"]) for p in points]
        if offset is None:
            return texts


async def direct_query_latencies(client: AsyncQdrantClient, name: str, vectors: list[list[float]]) -> list[float]:
    samples = []
    for vector in vectors * 25:
        started = time.perf_counter()
        await client.query_points(name, query=vector, limit=10, with_payload=True)
        samples.append(time.perf_counter() - started)
    return samples


async def gateway_latencies(settings: Settings) -> list[float]:
    port = free_port()
    env = {**os.environ, "SEMANTIK_DATA_DIR": str(settings.data_dir), "SEMANTIK_LOG_LEVEL": "WARNING"}
    command = [sys.executable, "-m", "semantik.cli", "serve", "--port", str(port)]
    server = subprocess.Popen(command, env=env)  # noqa: ASYNC220 - a server we leave running, not awaited
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            for _ in range(600):
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            for query in QUERIES:
                await client.post("/api/v1/collections/bench/search", json={"query": query, "k": 10})
            samples = []
            for query in QUERIES * 25:
                started = time.perf_counter()
                response = await client.post("/api/v1/collections/bench/search", json={"query": query, "k": 10})
                samples.append(time.perf_counter() - started)
                response.raise_for_status()
            return samples
    finally:
        server.terminate()
        server.wait(timeout=30)
