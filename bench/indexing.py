"""Indexing throughput end to end beside embedder-only throughput on the same chunks, gateway search latency
beside a direct query of the same store, and hybrid beside dense search latency on the embedded default store
engine (edge) and on local mode holding the same points.

The corpus is BENCH_INDEX_FILES documents (default 400) cut into chunks of BENCH_INDEX_CHUNK_SIZE tokens (default
32): at least 20,000 chunks, few enough tokens to embed in a run on two shared cores. The embedder's cost grows
with tokens and the store's with chunks, so short chunks also give the store its largest share of the time, which
is what the end-to-end goal guards. Embedder-only throughput is measured on BENCH_INDEX_EMBED_SAMPLE of the same
chunk texts (default 4000, drawn with a fixed seed).
"""

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

from bench.report import latency_line, peak_rss_mib, percentile
from semantik.core.context import Semantik, open_semantik
from semantik.core.embedding import TextKind
from semantik.core.pipeline.chunk import ChunkingConfig
from semantik.core.pipeline.sandbox import ExtractionPool, FileRequest, extract_and_chunk
from semantik.core.pipeline.tokens import load_tokenizer
from semantik.core.services import collections, indexing
from semantik.core.services.search import Mode, SearchOptions, search_collections
from semantik.core.settings import Settings
from semantik.core.store.backend import StoreEngine, VectorBackend, open_backend
from semantik.core.store.vectors import DENSE, ChunkPoint, RetrieverQuery

LICENSES = Path("/usr/share/common-licenses")
DOCS = Path(__file__).resolve().parent.parent / "docs"
FILES = int(os.environ.get("BENCH_INDEX_FILES", "400"))
CHUNK_SIZE = int(os.environ.get("BENCH_INDEX_CHUNK_SIZE", "32"))
EMBED_SAMPLE = int(os.environ.get("BENCH_INDEX_EMBED_SAMPLE", "4000"))
MIN_CHUNKS = int(os.environ.get("BENCH_INDEX_MIN_CHUNKS", "20000"))
GOAL_E2E_RATIO = 0.85
GOAL_HYBRID_RATIO = 1.5
SEARCH_MODES = {mode: SearchOptions(mode=mode, rerank=False) for mode in (Mode.DENSE, Mode.HYBRID)}
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


def generate_corpus(root: Path, files: int = FILES, seed: int = 7) -> None:
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
    # Local mode's copy of the store lives in memory-backed files where there are some: it commits every point
    # on its own, which on a shared disk takes minutes, and its searches never read the files.
    with (
        tempfile.TemporaryDirectory(prefix="semantik-bench-") as tmp,
        tempfile.TemporaryDirectory(prefix="semantik-bench-local-", dir=shm_or_none()) as local_dir,
    ):
        corpus = Path(tmp) / "corpus"
        generate_corpus(corpus)
        settings = Settings(data_dir=Path(tmp) / "data")
        await asyncio.to_thread(extraction_throughput, corpus, settings)
        async with open_semantik(settings) as app:
            embedder = await app.embedder()
            await embedder.embed(["warm-up"] * 8)
            chunking = collections.ChunkingSpec(chunk_size=CHUNK_SIZE, chunk_overlap=min(4, CHUNK_SIZE - 1))
            await collections.create_collection(app, collections.CollectionSpec(name="bench", chunking=chunking))
            operation = await indexing.open_index_operation(app, "bench", str(corpus), full=False)
            started = time.perf_counter()
            report = await indexing.run_index_operation(app, operation.id)
            e2e = time.perf_counter() - started
            progress = report.progress
            if progress.chunks < MIN_CHUNKS:
                raise SystemExit(f"corpus too small: {progress.chunks} chunks < {MIN_CHUNKS}")

            row = await collections.load_collection(app, "bench")
            texts = await all_chunk_texts(app.store, row.qdrant_collection)
            sample = random.Random(3).sample(texts, min(EMBED_SAMPLE, len(texts)))
            started = time.perf_counter()
            embedded = await embedder.embed(sample, TextKind.DOCUMENT)
            embed_only = time.perf_counter() - started

            query_vectors = [(await embedder.embed([q], TextKind.QUERY)).vectors[0].tolist() for q in QUERIES]
            embed_query = []
            for query in QUERIES * 5:
                started = time.perf_counter()
                await embedder.embed([query], TextKind.QUERY)
                embed_query.append(time.perf_counter() - started)
            direct = await direct_query_latencies(app.store, row.qdrant_collection, query_vectors)
            searches = {settings.store_engine: await search_latencies(app, repeats=5)}
            await copy_store(app.store, row.qdrant_collection, Path(local_dir), len(query_vectors[0]))

        print(f"corpus: {progress.files_total} files, {progress.chunks} chunks, {progress.tokens} tokens")
        chunks_per_s, embed_per_s = progress.chunks / e2e, len(sample) / embed_only
        print(
            f"{f'end-to-end indexing, {settings.store_engine} store':<44} {chunks_per_s:8.1f} chunks/s "
            f"{progress.tokens / e2e:9.0f} tokens/s  ({e2e:.1f} s)"
        )
        print(
            f"{f'embedder only, {len(sample)} of the same chunks':<44} {embed_per_s:8.1f} chunks/s "
            f"{embedded.tokens / embed_only:9.0f} tokens/s  ({embed_only:.1f} s)"
        )
        print(
            f"  of which (stage time, stages may overlap): extract {progress.extract_seconds:.1f} s, "
            f"embed {progress.embed_seconds:.1f} s, store {progress.store_seconds:.1f} s"
        )
        ratio = chunks_per_s / embed_per_s
        goal = f"(goal ≥ {GOAL_E2E_RATIO}) {verdict(ratio >= GOAL_E2E_RATIO)}"
        print(f"ratio end-to-end / embedder-only: {ratio:.2f} {goal}")
        print(latency_line(f"direct store query ({settings.store_engine}, k=10)", direct))
        print(latency_line("query embedding alone (in-process)", embed_query))
        gateway = await gateway_latencies(settings)
        print(latency_line("gateway POST /search over HTTP", gateway))
        ratio = percentile(gateway, 50) / percentile(direct, 50)
        print(f"ratio gateway p50 / direct p50: {ratio:.1f}")

        local = settings.model_copy(update={"store_engine": StoreEngine.QDRANT_LOCAL, "qdrant_path": Path(local_dir)})
        async with open_semantik(local) as app:
            searches[local.store_engine] = await search_latencies(app, repeats=2)
        print(f"\nsearch service, k=10, rerank off, modes taking turns query by query, {progress.chunks} chunks:")
        for engine, latencies in searches.items():
            for mode, seconds in latencies.items():
                print(latency_line(f"  {engine} {mode}", seconds))
            hybrid = percentile(latencies[Mode.HYBRID], 50) / percentile(latencies[Mode.DENSE], 50)
            print(
                f"  {engine}: hybrid p50 / dense p50 = {hybrid:.2f} (goal ≤ {GOAL_HYBRID_RATIO}) "
                f"{verdict(hybrid <= GOAL_HYBRID_RATIO)}"
            )
        print(f"peak RSS of the bench process: {peak_rss_mib():.0f} MiB")


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def shm_or_none() -> str | None:
    return "/dev/shm" if Path("/dev/shm").is_dir() else None


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


async def all_chunk_texts(store: VectorBackend, name: str) -> list[str]:
    texts: list[str] = []
    offset = None
    while True:
        points, offset = await store.scroll(name, limit=512, offset=offset)
        texts += [str(p.payload["text"]) for p in points]
        if offset is None:
            return texts


async def copy_store(store: VectorBackend, name: str, path: Path, dimension: int) -> None:
    """The collection's points, vectors and payloads as they are, into a local-mode store at `path`."""
    local = open_backend(url=None, path=path, engine=StoreEngine.QDRANT_LOCAL)
    try:
        await local.ensure_collection(name, dimension)
        offset = None
        while True:
            points, offset = await store.scroll(name, limit=512, offset=offset)
            await local.upsert(
                name,
                [
                    ChunkPoint(
                        id=p.id,
                        vector=p.vector,
                        path=p.payload["path"],
                        chunk_index=p.payload["chunk_index"],
                        text=p.payload["text"],
                        start=p.payload["start"],
                        end=p.payload["end"],
                        heading=p.payload.get("heading"),
                        sparse=p.sparse,
                    )
                    for p in points
                ],
            )
            if offset is None:
                return
    finally:
        await local.close()


async def direct_query_latencies(store: VectorBackend, name: str, vectors: list[list[float]]) -> list[float]:
    samples = []
    for vector in vectors * 25:
        started = time.perf_counter()
        await store.retrieve(name, [RetrieverQuery(DENSE, vector)], limit=10)
        samples.append(time.perf_counter() - started)
    return samples


async def search_latencies(app: Semantik, repeats: int) -> dict[Mode, list[float]]:
    """Every query through the search service in each mode, the modes taking turns so load weighs alike."""
    for options in SEARCH_MODES.values():
        await search_collections(app, ["bench"], QUERIES[0], k=10, options=options)  # loads what later calls reuse
    samples: dict[Mode, list[float]] = {mode: [] for mode in SEARCH_MODES}
    for query in QUERIES * repeats:
        for mode, options in SEARCH_MODES.items():
            started = time.perf_counter()
            await search_collections(app, ["bench"], query, k=10, options=options)
            samples[mode].append(time.perf_counter() - started)
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
