"""The embedding engine: tokenize once, sort by length, batch by a token budget, pool, normalise.

One request runs at a time. On a GPU, or in a request of one batch, one forward pass uses the whole
device; a torch request of several batches on the CPU runs one single-threaded pass per usable core
instead, because two-thread passes wait for each other at the end of every parallel region (measured
8-15 % slower on two cores, more when another process takes a core for a moment). On out-of-memory a
batch is split in half and retried; a single text that still does not fit is reported as failed
instead of taking the process down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn
from transformers import PreTrainedTokenizerBase

from semantik.contracts.models import ModelSpec
from semantik.core.cpus import usable_cpus
from semantik.core.embedding import EmbedBackend, Embeddings, TextKind
from semantik.core.embedding.encoders import OUT_OF_MEMORY_ERRORS, Encoder, TorchEncoder
from semantik.core.embedding.loading import MODEL_PATH_SETTING, load_model, load_tokenizer
from semantik.core.embedding.pooling import pool
from semantik.core.embedding.precision import Precision
from semantik.core.errors import InvalidInputError, SemantikError

log = logging.getLogger(__name__)


def default_batch_tokens(device: str, precision: Precision) -> int:
    """Token budget of one forward pass when none is configured.

    Measured on a 2-core AVX-512/AMX CPU (bench embedder section): float32 peaks at 1-2k padded tokens a
    pass (larger passes fall out of cache and run 30 % slower), AMX bfloat16 at 3-4k. A GPU wants
    large passes to fill its cores.
    """
    if torch.device(device).type == "cuda":
        return 32768
    return 4096 if precision in (Precision.BFLOAT16, Precision.FLOAT16) else 2048


DEFAULT_MAX_BATCH_SIZE = 256

TORCH_DEFAULT_THREADS = torch.get_num_threads()
"""torch's own choice at import (physical cores, or OMP_NUM_THREADS), before any engine changed it."""

ForwardHook = Callable[[int, int], None]
"""Called with (texts, padded tokens) before each forward pass; fault-injection tests raise from it."""


class TextTooLargeError(SemantikError):
    """A single text does not fit in the device's memory even alone."""

    code = "insufficient_storage"
    status = 507


@dataclass(slots=True)
class BatchStats:
    """What the last `embed_ids` call did, for metrics."""

    batches: list[tuple[int, int, float]] = field(default_factory=list)
    """(texts, padded tokens, forward seconds) of each forward pass."""
    oom_splits: int = 0


@dataclass(frozen=True, slots=True)
class EmbeddedIds:
    vectors: npt.NDArray[np.float32]
    failed: frozenset[int]
    """Rows that could not be embedded (out of memory even alone); their vectors are zeros."""
    stats: BatchStats


class EmbeddingEngine:
    def __init__(
        self,
        spec: ModelSpec,
        model: nn.Module | Encoder,
        tokenizer: PreTrainedTokenizerBase,
        *,
        device: str = "cpu",
        precision: Precision = Precision.FLOAT32,
        max_batch_tokens: int | None = None,
        max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
        forward_hook: ForwardHook | None = None,
        cpu_threads: int | None = None,
    ) -> None:
        """`model`: a torch module (run by torch at `precision` on `device`) or a ready encoder.
        `cpu_threads`: the cores torch may use, by default torch's own count capped by the process's
        affinity and cgroup quota (torch counts the host's cores, which a pod's quota then throttles)."""
        self.spec = spec
        self.precision = precision
        self._encoder: Encoder = (
            TorchEncoder(model, precision, torch.device(device), spec.int8_modules)
            if isinstance(model, nn.Module)
            else model
        )
        self.backend: EmbedBackend = self._encoder.backend
        self.device = self._encoder.device
        self._tokenizer = tokenizer
        self._tokenizer.padding_side = spec.padding_side
        self._pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)
        self.max_batch_tokens = max_batch_tokens or default_batch_tokens(device, precision)
        self.max_batch_size = max_batch_size
        self.forward_hook = forward_hook
        self._lock = threading.Lock()
        self.cpu_threads = cpu_threads or min(TORCH_DEFAULT_THREADS, usable_cpus())
        self._torch_on_cpu = self.backend is EmbedBackend.TORCH and self.device.type == "cpu"
        self._passes: ThreadPoolExecutor | None = None
        if self._torch_on_cpu and self.cpu_threads > 1:
            self._passes = ThreadPoolExecutor(self.cpu_threads, thread_name_prefix="semantik-forward")

    @classmethod
    def load(
        cls,
        spec: ModelSpec,
        path: Path,
        *,
        device: str = "cpu",
        precision: Precision = Precision.FLOAT32,
        max_batch_tokens: int | None = None,
        max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
        setting: str = MODEL_PATH_SETTING,
        backend: EmbedBackend = EmbedBackend.TORCH,
        onnx_cache_dir: Path | None = None,
    ) -> EmbeddingEngine:
        """Load from a local directory; `setting` is what an error tells the user to fix. The ONNX backend
        exports the model once and caches the graph in `onnx_cache_dir`."""
        tokenizer = load_tokenizer(path, setting)
        model: nn.Module | Encoder
        if backend is EmbedBackend.ONNX:
            if device != "cpu":
                raise InvalidInputError("the onnx backend runs on the CPU; use torch for a GPU", field="backend")
            if onnx_cache_dir is None:
                raise InvalidInputError("the onnx backend needs a cache directory for its export", field="backend")
            from semantik.core.embedding.onnx_backend import OnnxEncoder

            model = OnnxEncoder.load(spec, path, onnx_cache_dir, precision)
        else:
            model = load_model(path, setting)
        return cls(
            spec,
            model,
            tokenizer,
            device=device,
            precision=precision,
            max_batch_tokens=max_batch_tokens,
            max_batch_size=max_batch_size,
        )

    @property
    def dimension(self) -> int:
        return self.spec.dimension

    def tokenize(self, texts: Sequence[str], kind: TextKind) -> list[list[int]]:
        prefix = self.spec.query_instruction if kind is TextKind.QUERY else self.spec.document_instruction
        inputs = [prefix + text for text in texts] if prefix else list(texts)
        ids: list[list[int]] = self._tokenizer(
            inputs, truncation=True, max_length=self.spec.max_seq_length, add_special_tokens=True
        )["input_ids"]
        return ids

    def plan_batches(self, lengths: Sequence[int]) -> list[list[int]]:
        """Indexes grouped so each batch's padded size (texts x longest) stays within the token budget."""
        order = sorted(range(len(lengths)), key=lambda i: lengths[i])
        batches: list[list[int]] = []
        current: list[int] = []
        for index in order:
            longest = lengths[index]  # ascending order: the newest text is the longest
            if current and (
                (len(current) + 1) * longest > self.max_batch_tokens or len(current) == self.max_batch_size
            ):
                batches.append(current)
                current = []
            current.append(index)
        if current:
            batches.append(current)
        return batches

    def embed_ids(self, ids: Sequence[Sequence[int]]) -> EmbeddedIds:
        out = np.zeros((len(ids), self.dimension), dtype=np.float32)
        failed: set[int] = set()
        stats = BatchStats()
        batches = self.plan_batches([len(row) for row in ids])
        with self._lock:
            if self._passes is None or len(batches) < 2:
                with self._forward_context(self.cpu_threads):
                    for batch in batches:
                        self._run(batch, ids, out, failed, stats)
            else:
                # Each pass writes its own rows of `out`; the pool's queue hands the next batch to
                # whichever thread finishes first, so no core idles while batches remain.
                per_pass = [BatchStats() for _ in batches]
                passes = [
                    self._passes.submit(self._single_threaded, partial(self._run, batch, ids, out, failed, part))
                    for batch, part in zip(batches, per_pass, strict=True)
                ]
                # Every pass ends before the lock is let go, even when one raised: none may still be
                # running when the next request starts.
                futures.wait(passes)
                # The passes left torch's process-wide default at one thread; threads that start using
                # torch later (a reranker, a new executor thread) take that default.
                torch.set_num_threads(self.cpu_threads)
                for done in passes:
                    done.result()
                for part in per_pass:
                    stats.batches.extend(part.batches)
                    stats.oom_splits += part.oom_splits
        return EmbeddedIds(out, frozenset(failed), stats)

    @contextlib.contextmanager
    def _forward_context(self, threads: int) -> Iterator[None]:
        # torch's thread count is per calling thread for OpenMP and MKL, so each pass sets its own.
        if self._torch_on_cpu:
            torch.set_num_threads(threads)
        with torch.inference_mode(), self._encoder.inference_context():
            yield

    def _single_threaded(self, run_pass: Callable[[], None]) -> None:
        with self._forward_context(1):
            run_pass()

    def embed_sync(self, texts: Sequence[str], kind: TextKind = TextKind.DOCUMENT) -> Embeddings:
        if not texts:
            return Embeddings(np.zeros((0, self.dimension), dtype=np.float32), 0)
        ids = self.tokenize(texts, kind)
        result = self.embed_ids(ids)
        if result.failed:
            raise TextTooLargeError(
                f"{len(result.failed)} text(s) do not fit in {self.device.type} memory even alone; "
                "shorten them or lower max_seq_length"
            )
        return Embeddings(result.vectors, sum(len(row) for row in ids))

    def _run(
        self,
        batch: list[int],
        ids: Sequence[Sequence[int]],
        out: npt.NDArray[np.float32],
        failed: set[int],
        stats: BatchStats,
    ) -> None:
        try:
            started = time.perf_counter()
            out[batch] = self._forward([ids[i] for i in batch])
            stats.batches.append(
                (len(batch), len(batch) * max(len(ids[i]) for i in batch), time.perf_counter() - started)
            )
        except OUT_OF_MEMORY_ERRORS:
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            if len(batch) == 1:
                log.warning("text does not fit in memory alone tokens=%d", len(ids[batch[0]]))
                failed.add(batch[0])
                return
            stats.oom_splits += 1
            half = len(batch) // 2
            log.warning("out of memory; splitting batch texts=%d", len(batch))
            self._run(batch[:half], ids, out, failed, stats)
            self._run(batch[half:], ids, out, failed, stats)

    def _forward(self, rows: list[Sequence[int]]) -> npt.NDArray[np.float32]:
        width = max(len(row) for row in rows)
        input_ids = torch.full((len(rows), width), self._pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            if self.spec.padding_side == "left":
                input_ids[i, width - len(row) :] = torch.tensor(row)
                mask[i, width - len(row) :] = 1
            else:
                input_ids[i, : len(row)] = torch.tensor(row)
                mask[i, : len(row)] = 1
        if self.forward_hook is not None:
            self.forward_hook(len(rows), len(rows) * width)
        input_ids, mask = input_ids.to(self.device), mask.to(self.device)
        hidden = self._encoder(input_ids, mask)
        vectors = pool(hidden, mask, self.spec.pooling).float()
        if self.spec.normalize:
            vectors = F.normalize(vectors, p=2, dim=1)
        result: npt.NDArray[np.float32] = vectors.cpu().numpy()
        return result


class TransformerEmbedder:
    """The in-process embedder the pipeline and the gateway use when no embedder URL is set."""

    def __init__(self, engine: EmbeddingEngine) -> None:
        self.engine = engine

    @property
    def spec(self) -> ModelSpec:
        return self.engine.spec

    @property
    def model_name(self) -> str:
        return self.engine.spec.name

    @property
    def dimension(self) -> int:
        return self.engine.dimension

    async def embed(self, texts: Sequence[str], kind: TextKind = TextKind.DOCUMENT) -> Embeddings:
        return await asyncio.to_thread(self.engine.embed_sync, texts, kind)

    def embed_sync(self, texts: Sequence[str], kind: TextKind = TextKind.DOCUMENT) -> Embeddings:
        return self.engine.embed_sync(texts, kind)

    async def aclose(self) -> None:
        return None
