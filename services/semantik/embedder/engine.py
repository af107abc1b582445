"""The in-process embedder: tokenize once, sort by length, batch, pool, normalise."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F  # noqa: N812
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from semantik.core.embedding import Embeddings, TextKind
from semantik.embedder.loading import load_model, load_tokenizer
from semantik.embedder.pooling import pool
from semantik.embedder.specs import ModelSpec


class TransformerEmbedder:
    """Runs a transformers model in this process; `embed` is safe to call from many tasks."""

    def __init__(
        self,
        spec: ModelSpec,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        device: str = "cpu",
        batch_size: int = 32,
    ) -> None:
        self.spec = spec
        self._model = model.to(torch.device(device))  # type: ignore[arg-type]
        self._tokenizer = tokenizer
        self._tokenizer.padding_side = spec.padding_side
        self._device = torch.device(device)
        self._batch_size = batch_size
        # One forward pass at a time: torch already uses every core for one batch.
        self._lock = threading.Lock()

    @classmethod
    def load(
        cls, spec: ModelSpec, path: Path, *, device: str = "cpu", batch_size: int = 32
    ) -> TransformerEmbedder:
        return cls(spec, load_model(path), load_tokenizer(path), device=device, batch_size=batch_size)

    @property
    def model_name(self) -> str:
        return self.spec.name

    @property
    def dimension(self) -> int:
        return self.spec.dimension

    async def embed(self, texts: Sequence[str], kind: TextKind = TextKind.DOCUMENT) -> Embeddings:
        return await asyncio.to_thread(self.embed_sync, texts, kind)

    async def aclose(self) -> None:
        return None

    def embed_sync(self, texts: Sequence[str], kind: TextKind = TextKind.DOCUMENT) -> Embeddings:
        if not texts:
            return Embeddings(np.zeros((0, self.dimension), dtype=np.float32), 0)
        prefix = self.spec.query_instruction if kind is TextKind.QUERY else self.spec.document_instruction
        inputs = [prefix + text for text in texts] if prefix else list(texts)
        encoded = self._tokenizer(
            inputs, truncation=True, max_length=self.spec.max_seq_length, add_special_tokens=True
        )["input_ids"]
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        out = np.empty((len(encoded), self.dimension), dtype=np.float32)
        with self._lock, torch.inference_mode():
            for begin in range(0, len(order), self._batch_size):
                rows = order[begin : begin + self._batch_size]
                out[rows] = self._forward([encoded[i] for i in rows])
        return Embeddings(out, sum(len(ids) for ids in encoded))

    def _forward(self, input_ids: list[list[int]]) -> npt.NDArray[np.float32]:
        batch = self._tokenizer.pad({"input_ids": input_ids}, padding=True, return_tensors="pt")
        mask = batch["attention_mask"].to(self._device)
        hidden = self._model(
            input_ids=batch["input_ids"].to(self._device), attention_mask=mask
        ).last_hidden_state
        vectors = pool(hidden, mask, self.spec.pooling).float()
        if self.spec.normalize:
            vectors = F.normalize(vectors, p=2, dim=1)
        result: npt.NDArray[np.float32] = vectors.cpu().numpy()
        return result
