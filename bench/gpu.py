"""The embedder on a CUDA GPU: texts/s and tokens/s at float16 and bfloat16 on the embedder bench's two text
sets, min and mean cosine to torch float32 on the CPU, and the largest batch of max-length texts one forward pass
holds. Run by the embedder section, or alone where only a GPU is (`python -m bench.gpu`); without CUDA it says so
and measures nothing.

BENCH_GPU_TEXTS (default 16384) sizes each timed run: a GPU finishes the CPU sections' 256 texts before its
kernels are even busy.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt
import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from semantik.contracts.models import ModelSpec
from semantik.core.embedding import TextKind
from semantik.core.embedding.encoders import OUT_OF_MEMORY_ERRORS
from semantik.core.embedding.engine import EmbeddingEngine
from semantik.core.embedding.precision import Precision

GPU_PRECISIONS = (Precision.FLOAT16, Precision.BFLOAT16)
GPU_TEXTS = int(os.environ.get("BENCH_GPU_TEXTS", "16384"))
PROBE_LIMIT = 1 << 17
"""The largest batch the probe tries: 65k max-length texts is past any single GPU's memory for this model."""


def largest_batch(engine: EmbeddingEngine, row: Sequence[int]) -> int:
    """The most copies of `row` one forward pass holds: doubled until out of memory, then bisected."""

    def fits(size: int) -> bool:
        try:
            # The engine's own forward pass, unsplit: `embed_ids` would halve an oversized batch and hide the limit.
            with engine._forward_context(1):
                engine._forward([row] * size)
            return True
        except OUT_OF_MEMORY_ERRORS:
            return False
        finally:
            torch.cuda.empty_cache()

    low, high = 0, 256
    while high <= PROBE_LIMIT and fits(high):
        low, high = high, high * 2
    if high > PROBE_LIMIT:
        return low
    while high - low > max(1, low // 64):  # to within 1.5 %: each probe is a full pass
        middle = (low + high) // 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    return low


def gpu_section(
    spec: ModelSpec,
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    sets: Mapping[str, list[str]],
    references: Mapping[str, npt.NDArray[np.float32]],
) -> None:
    """`references`: each set's torch float32 vectors computed on the CPU."""
    if not torch.cuda.is_available():
        print("no CUDA device here: nothing measured (run `python -m bench.gpu` where there is one)")
        return
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, CUDA {torch.version.cuda}, {GPU_TEXTS} texts")
    for precision in GPU_PRECISIONS:
        engine = EmbeddingEngine(spec, copy.deepcopy(model), tokenizer, device="cuda", precision=precision)
        for set_name, texts in sets.items():
            many = texts * max(1, GPU_TEXTS // len(texts))
            tokens = sum(len(ids) for ids in engine.tokenize(many, TextKind.DOCUMENT))
            engine.embed_sync(many[: len(texts)])  # warm-up: kernels chosen, memory pooled
            torch.cuda.reset_peak_memory_stats()
            started = time.perf_counter()
            vectors = engine.embed_sync(many).vectors
            seconds = time.perf_counter() - started
            cosine = (vectors[: len(texts)] * references[set_name]).sum(axis=1)
            print(
                f"cuda {precision.value:<9} {set_name:<16} {len(many) / seconds:9.0f} texts/s "
                f"{tokens / seconds:10.0f} tokens/s  cosine to CPU float32 min {cosine.min():.6f} "
                f"mean {cosine.mean():.6f}  peak {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB "
                f"(budget {engine.max_batch_tokens} tokens a pass)"
            )
        longest = engine.tokenize([" ".join(next(iter(sets.values())))], TextKind.DOCUMENT)[0]
        size = largest_batch(engine, longest)
        print(f"cuda {precision.value:<9} largest batch of {len(longest)}-token texts in one pass: {size}")
        del engine
        torch.cuda.empty_cache()


def main() -> None:
    from bench.embedder import SPEC, text_sets  # here, not at the top: the embedder section imports this module
    from semantik.core.embedding.loading import load_model, load_tokenizer
    from semantik.core.settings import bundled_model_path

    path = bundled_model_path()
    tokenizer, model = load_tokenizer(path), load_model(path)
    sets = text_sets(tokenizer)
    cpu = EmbeddingEngine(SPEC, model, tokenizer)
    gpu_section(SPEC, model, tokenizer, sets, {name: cpu.embed_sync(texts).vectors for name, texts in sets.items()})


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
