"""Embedder throughput: the naive sentence-transformers loop beside each of our precision modes, in process
and through the HTTP service with 8 concurrent clients, on uniform and mixed-length texts."""

from __future__ import annotations

import asyncio
import copy
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import httpx
import numpy as np
import numpy.typing as npt
import torch

from bench.report import peak_rss_mib
from semantik.contracts.models import model_spec
from semantik.core.embedding import Precision, TextKind
from semantik.core.embedding.client import HttpEmbedder
from semantik.core.embedding.engine import EmbeddingEngine
from semantik.core.embedding.loading import load_model, load_tokenizer
from semantik.core.embedding.precision import quantize_int8
from semantik.core.settings import bundled_model_path

SPEC = model_spec("sentence-transformers/all-MiniLM-L6-v2")
TEXTS = int(os.environ.get("BENCH_TEXTS", "256"))
LAYER_GROUPS = {
    "attention q/k/v": [r"attention\.self\.(query|key|value)$"],
    "attention output": [r"attention\.output\.dense$"],
    "feed-forward in": [r"intermediate\.dense$"],
    "feed-forward out": [r"(?<!attention\.)output\.dense$"],
    "all Linear layers": [r".*"],
}


def text_sets(tokenizer: object) -> dict[str, list[str]]:
    """Real license text cut to exact token counts: uniform 200-256 tokens, and mixed 10-512."""
    words = " ".join(p.read_text() for p in Path("/usr/share/common-licenses").iterdir() if p.is_file()).split()
    rng = random.Random(11)

    def text_of(tokens: int) -> str:
        start = rng.randrange(0, len(words) - tokens)
        return " ".join(words[start : start + int(tokens * 0.75)])

    return {
        "uniform 200-256": [text_of(rng.randint(200, 256)) for _ in range(TEXTS)],
        "mixed 10-512": [text_of(rng.randint(10, 512)) for _ in range(TEXTS)],
    }


def timed(run: Callable[[], npt.NDArray[np.float32]]) -> tuple[npt.NDArray[np.float32], float]:
    run()  # warm-up: allocations, kernel choice
    started = time.perf_counter()
    vectors = run()
    return vectors, time.perf_counter() - started


def embed_vectors(engine: EmbeddingEngine, texts: list[str]) -> npt.NDArray[np.float32]:
    return engine.embed_sync(texts).vectors


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def through_http(url: str, texts: list[str]) -> tuple[npt.NDArray[np.float32], float]:
    """Eight clients, each sending its share of the texts 16 at a time; returns vectors and seconds."""
    client = await HttpEmbedder.connect(url)
    try:

        async def one_client(part: list[str]) -> npt.NDArray[np.float32]:
            return np.concatenate([(await client.embed(part[i : i + 16])).vectors for i in range(0, len(part), 16)])

        await client.embed(texts[:16])
        started = time.perf_counter()
        parts = await asyncio.gather(*(one_client(texts[i::8]) for i in range(8)))
        elapsed = time.perf_counter() - started
    finally:
        await client.aclose()
    vectors = np.empty((len(texts), parts[0].shape[1]), dtype=np.float32)
    for i, part in enumerate(parts):
        vectors[i::8] = part
    return vectors, elapsed


async def main() -> None:
    from sentence_transformers import SentenceTransformer

    path = bundled_model_path()
    tokenizer = load_tokenizer(path)
    model = load_model(path)
    sets = text_sets(tokenizer)
    baseline_model = SentenceTransformer(str(path), device="cpu")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {TEXTS} texts per set")
    throughput: dict[tuple[str, str], float] = {}
    for set_name, texts in sets.items():
        tokens = sum(len(ids) for ids in EmbeddingEngine(SPEC, model, tokenizer).tokenize(texts, TextKind.DOCUMENT))
        print(f"\n-- {set_name}: {len(texts)} texts, {tokens} tokens after truncation to {SPEC.max_seq_length}")
        base_vectors, base_seconds = timed(partial(baseline_model.encode, texts, batch_size=32))
        print(
            f"{'baseline: SentenceTransformer.encode(bs=32)':<46} {len(texts) / base_seconds:7.1f} texts/s "
            f"{tokens / base_seconds:8.0f} tokens/s   1.00x"
        )
        reference = None
        for precision in Precision:
            engine = EmbeddingEngine(SPEC, copy.deepcopy(model), tokenizer, precision=precision)
            vectors, seconds = timed(partial(embed_vectors, engine, texts))
            reference = vectors if precision is Precision.FLOAT32 else reference
            assert reference is not None
            cosine = (vectors * reference).sum(axis=1)
            throughput[(set_name, precision.value)] = len(texts) / seconds
            print(
                f"{'semantik ' + precision.value + ' (in-process)':<46} {len(texts) / seconds:7.1f} texts/s "
                f"{tokens / seconds:8.0f} tokens/s {base_seconds / seconds:6.2f}x   "
                f"cosine to float32 min {cosine.min():.6f} mean {cosine.mean():.6f}"
            )
        del base_vectors

    print("\n-- HTTP service, 8 concurrent clients, mixed 10-512, float32")
    port = free_port()
    server = subprocess.Popen(  # noqa: ASYNC220 - a server left running while we measure
        [sys.executable, "-m", "semantik.cli", "embedder", "--port", str(port)],
        env={**os.environ, "SEMANTIK_EMBEDDER_LOG_LEVEL": "WARNING"},
    )
    try:
        texts = sets["mixed 10-512"]
        # Best of three for both sides, alternated, so a noisy moment does not decide the ratio.
        engine = EmbeddingEngine(SPEC, model, tokenizer)
        await through_http(f"http://127.0.0.1:{port}", texts)  # warm-up
        local_runs, http_runs = [], []
        for _ in range(3):
            local_runs.append(timed(partial(embed_vectors, engine, texts))[1])
            http_runs.append((await through_http(f"http://127.0.0.1:{port}", texts))[1])
        seconds = min(http_runs)
        in_process = len(texts) / min(local_runs)
        print(f"{'semantik float32 in-process (best of 3)':<46} {in_process:7.1f} texts/s")
        print(
            f"{'semantik float32 over HTTP (8 clients)':<46} {len(texts) / seconds:7.1f} texts/s   "
            f"{len(texts) / seconds / in_process:.0%} of in-process"
        )
        async with httpx.AsyncClient() as client:
            metrics = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
        count = next(line for line in metrics.splitlines() if line.startswith("semantik_embedder_batch_size_count"))
        print(f"forward passes in the service: {count.split()[-1]} for {len(texts) // 16 + 1} requests")
    finally:
        server.terminate()
        server.wait(timeout=30)

    print("\n-- int8 per layer group (mixed 10-512): what the model table's int8_modules rests on")
    texts = sets["mixed 10-512"][:96]
    reference = EmbeddingEngine(SPEC, model, tokenizer).embed_sync(texts).vectors
    for group, patterns in LAYER_GROUPS.items():
        engine = EmbeddingEngine(SPEC, quantize_int8(copy.deepcopy(model), patterns), tokenizer)
        vectors, seconds = timed(partial(embed_vectors, engine, texts))
        cosine = (vectors * reference).sum(axis=1)
        print(
            f"int8 {group:<22} min cosine {cosine.min():.5f}  mean {cosine.mean():.5f}  "
            f"{len(texts) / seconds:6.1f} texts/s"
        )
    print(f"\npeak RSS of the bench process: {peak_rss_mib():.0f} MiB")
