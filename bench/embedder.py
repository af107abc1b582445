"""Embedder throughput: the naive sentence-transformers loop beside each of our backends and precision modes
(torch float32/float16/bfloat16/int8, ONNX Runtime float32/int8, CUDA float16/bfloat16 where a GPU is), in
process and through the HTTP service with 8 concurrent clients, on uniform and mixed-length texts; the int8
layer-group tables both backends' model-table rows rest on; and nDCG@10 of dense search on the eval collection
for each backend and precision."""

from __future__ import annotations

import asyncio
import copy
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import replace
from functools import partial
from pathlib import Path

import httpx
import numpy as np
import numpy.typing as npt
import torch

from bench.gpu import gpu_section
from bench.quality import dense_ndcg_by_embedder
from bench.report import peak_rss_mib
from semantik.contracts.models import model_spec
from semantik.core.embedding import EmbedBackend, Precision, TextKind
from semantik.core.embedding.client import HttpEmbedder
from semantik.core.embedding.engine import EmbeddingEngine
from semantik.core.embedding.loading import load_model, load_tokenizer
from semantik.core.embedding.onnx_backend import OnnxEncoder
from semantik.core.embedding.onnx_export import ensure_onnx_model
from semantik.core.embedding.precision import quantize_int8
from semantik.core.errors import InvalidInputError
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
ONNX_PRECISIONS = (Precision.FLOAT32, Precision.INT8)
GOAL_ONNX_FLOAT32 = (1.5, 0.99999)
GOAL_ONNX_INT8 = (3.0, 0.99, 0.005)


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


def onnx_engine(cache: Path, precision: Precision, tokenizer: object, int8: list[str] | None = None) -> EmbeddingEngine:
    spec = SPEC if int8 is None else replace(SPEC, onnx_int8_modules=tuple(int8))
    started = time.perf_counter()
    encoder = OnnxEncoder.load(spec, bundled_model_path(), cache, precision)
    if int8 is None:
        print(f"onnx {precision.value}: exported or loaded in {time.perf_counter() - started:.1f} s")
    return EmbeddingEngine(spec, encoder, tokenizer, precision=precision)  # type: ignore[arg-type]


async def http_vs_in_process(engine: EmbeddingEngine, texts: list[str], cache_root: Path) -> None:
    port = free_port()
    backend = engine.backend.value
    server = subprocess.Popen(  # noqa: ASYNC220 - a server left running while we measure
        [sys.executable, "-m", "semantik.cli", "embedder", "--port", str(port), "--backend", backend],
        env={**os.environ, "SEMANTIK_EMBEDDER_LOG_LEVEL": "WARNING", "SEMANTIK_EMBEDDER_CACHE_DIR": str(cache_root)},
    )
    try:
        # Best of three for both sides, alternated, so a noisy moment does not decide the ratio.
        await through_http(f"http://127.0.0.1:{port}", texts)  # warm-up
        local_runs, http_runs = [], []
        for _ in range(3):
            local_runs.append(timed(partial(embed_vectors, engine, texts))[1])
            http_runs.append((await through_http(f"http://127.0.0.1:{port}", texts))[1])
        seconds = min(http_runs)
        in_process = len(texts) / min(local_runs)
        print(f"{'semantik ' + backend + ' float32 in-process (best of 3)':<46} {in_process:7.1f} texts/s")
        print(
            f"{'semantik ' + backend + ' float32 over HTTP (8 clients)':<46} {len(texts) / seconds:7.1f} texts/s   "
            f"{len(texts) / seconds / in_process:.0%} of in-process"
        )
        async with httpx.AsyncClient() as client:
            metrics = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
        count = next(line for line in metrics.splitlines() if line.startswith("semantik_embedder_batch_size_count"))
        print(f"forward passes in the service: {count.split()[-1]} for {len(texts) // 16 + 1} requests")
    finally:
        server.terminate()
        server.wait(timeout=30)


def onnx_profile(cache: Path, precision: Precision, tokenizer: object, texts: list[str]) -> None:
    path = ensure_onnx_model(SPEC, bundled_model_path(), cache, precision)
    encoder = OnnxEncoder(path, profile_prefix=str(cache / f"profile-{precision.value}"))
    EmbeddingEngine(SPEC, encoder, tokenizer).embed_sync(texts)  # type: ignore[arg-type]
    by_operator: Counter[str] = Counter()
    for event in json.loads(encoder.end_profiling().read_text()):
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            by_operator[event["args"]["op_name"]] += event["dur"]
    total = sum(by_operator.values())
    shares = ", ".join(f"{op} {micros / total:.0%}" for op, micros in by_operator.most_common(6))
    print(f"onnx {precision.value:<8} {total / 1e6:5.1f} s in kernels: {shares}")


def layer_group_table(
    engine_for: Callable[[list[str]], EmbeddingEngine], texts: list[str], reference: npt.NDArray[np.float32]
) -> None:
    for group, patterns in LAYER_GROUPS.items():
        vectors, seconds = timed(partial(embed_vectors, engine_for(patterns), texts))
        cosine = (vectors * reference).sum(axis=1)
        print(
            f"int8 {group:<22} min cosine {cosine.min():.5f}  mean {cosine.mean():.5f}  "
            f"{len(texts) / seconds:6.1f} texts/s"
        )


async def main() -> None:
    from sentence_transformers import SentenceTransformer

    path = bundled_model_path()
    tokenizer = load_tokenizer(path)
    model = load_model(path)
    sets = text_sets(tokenizer)
    baseline_model = SentenceTransformer(str(path), device="cpu")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {TEXTS} texts per set")
    cache_root = Path(tempfile.mkdtemp(prefix="semantik-bench-cache-"))
    onnx_cache = cache_root / "onnx"  # where the service, given SEMANTIK_EMBEDDER_CACHE_DIR=cache_root, looks
    onnx_engines = {p: onnx_engine(onnx_cache, p, tokenizer) for p in ONNX_PRECISIONS}
    print(f"onnx runtime threads: {next(iter(onnx_engines.values()))._encoder.threads}")  # type: ignore[attr-defined]
    throughput: dict[tuple[str, str], float] = {}
    onnx_ratio: dict[tuple[str, Precision], float] = {}
    onnx_cosine: dict[tuple[str, Precision], float] = {}
    references: dict[str, npt.NDArray[np.float32]] = {}
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
            try:
                engine = EmbeddingEngine(SPEC, copy.deepcopy(model), tokenizer, precision=precision)
            except InvalidInputError as exc:
                print(f"{'semantik torch ' + precision.value:<46} skipped: {exc}")
                continue
            vectors, seconds = timed(partial(embed_vectors, engine, texts))
            reference = vectors if precision is Precision.FLOAT32 else reference
            assert reference is not None
            cosine = (vectors * reference).sum(axis=1)
            throughput[(set_name, precision.value)] = len(texts) / seconds
            print(
                f"{'semantik torch ' + precision.value + ' (in-process)':<46} {len(texts) / seconds:7.1f} texts/s "
                f"{tokens / seconds:8.0f} tokens/s {base_seconds / seconds:6.2f}x   "
                f"cosine to float32 min {cosine.min():.6f} mean {cosine.mean():.6f}"
            )
        assert reference is not None
        references[set_name] = reference
        for precision, engine in onnx_engines.items():
            vectors, seconds = timed(partial(embed_vectors, engine, texts))
            cosine = (vectors * reference).sum(axis=1)
            onnx_ratio[(set_name, precision)] = base_seconds / seconds
            onnx_cosine[(set_name, precision)] = float(cosine.min())
            print(
                f"{'semantik onnx ' + precision.value + ' (in-process)':<46} {len(texts) / seconds:7.1f} texts/s "
                f"{tokens / seconds:8.0f} tokens/s {base_seconds / seconds:6.2f}x   "
                f"cosine to float32 min {cosine.min():.6f} mean {cosine.mean():.6f}"
            )
        del base_vectors

    print("\n-- HTTP service, 8 concurrent clients, mixed 10-512, float32, against the same backend in-process")
    await http_vs_in_process(EmbeddingEngine(SPEC, model, tokenizer), sets["mixed 10-512"], cache_root)
    await http_vs_in_process(onnx_engines[Precision.FLOAT32], sets["mixed 10-512"], cache_root)

    print("\n-- int8 per layer group (mixed 10-512): what the model table's int8_modules rests on")
    texts = sets["mixed 10-512"][:96]
    reference = EmbeddingEngine(SPEC, model, tokenizer).embed_sync(texts).vectors
    layer_group_table(
        lambda patterns: EmbeddingEngine(SPEC, quantize_int8(copy.deepcopy(model), patterns), tokenizer),
        texts,
        reference,
    )
    print("\n-- onnx int8 per layer group (mixed 10-512, per-channel scales): what onnx_int8_modules rests on")
    layer_group_table(lambda patterns: onnx_engine(onnx_cache, Precision.INT8, tokenizer, patterns), texts, reference)

    print("\n-- where the ONNX time goes (mixed 10-512, ORT's per-node profile): share of kernel time by operator")
    for precision in ONNX_PRECISIONS:
        onnx_profile(onnx_cache, precision, tokenizer, texts)

    print("\n-- dense nDCG@10 on the eval collection, through the project's index and search, per embedder")
    configs: dict[str, Mapping[str, object]] = {
        f"{backend.value} {precision.value}": {"embed_backend": backend, "dtype": precision}
        for backend, precision in [
            (EmbedBackend.TORCH, Precision.FLOAT32),
            (EmbedBackend.TORCH, Precision.BFLOAT16),
            (EmbedBackend.TORCH, Precision.INT8),
            (EmbedBackend.ONNX, Precision.FLOAT32),
            (EmbedBackend.ONNX, Precision.INT8),
        ]
        if precision is not Precision.BFLOAT16 or torch.ops.mkldnn._is_mkldnn_bf16_supported()
    }
    ndcg = await dense_ndcg_by_embedder(configs)
    if ndcg is not None:
        for label, score in ndcg.items():
            print(f"{label:<16} nDCG@10 {score:.4f}  ({score - ndcg['torch float32']:+.4f} vs torch float32)")

    print("\n-- CUDA: float16 and bfloat16 where a GPU is, against torch float32 on the CPU")
    gpu_section(SPEC, model, tokenizer, sets, references)

    mixed = "mixed 10-512"
    ratio, cosine_min = onnx_ratio[(mixed, Precision.FLOAT32)], onnx_cosine[(mixed, Precision.FLOAT32)]
    print(
        f"\nonnx float32 on {mixed}: {ratio:.2f}x naive, min cosine {cosine_min:.6f} "
        f"(goal >= {GOAL_ONNX_FLOAT32[0]}x, >= {GOAL_ONNX_FLOAT32[1]})"
    )
    ratio, cosine_min = onnx_ratio[(mixed, Precision.INT8)], onnx_cosine[(mixed, Precision.INT8)]
    gap = "n/a" if ndcg is None else f"{ndcg['onnx int8'] - ndcg['onnx float32']:+.4f}"
    print(
        f"onnx int8 on {mixed}: {ratio:.2f}x naive, min cosine {cosine_min:.4f}, nDCG@10 vs onnx float32 {gap} "
        f"(goal >= {GOAL_ONNX_INT8[0]}x, >= {GOAL_ONNX_INT8[1]}, within {GOAL_ONNX_INT8[2]})"
    )
    print(f"\npeak RSS of the bench process: {peak_rss_mib():.0f} MiB")
