"""An optional cross-encoder reranker: reads (query, text) pairs together and scores their relevance.

The model is a transformers sequence-classification model read from a local directory only
(SEMANTIK_RERANK_MODEL_PATH). A search hands it the fused candidates and a time limit; past the limit the
search keeps its fused order and says why, rather than making the caller wait.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from semantik.core.errors import ModelUnavailableError

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)

RERANK_MODEL_PATH_SETTING = "SEMANTIK_RERANK_MODEL_PATH"

# Characters of a text that reach the tokenizer: truncation keeps at most max_length tokens, and a
# WordPiece/BPE token rarely spans more than a few characters, so longer input is work thrown away.
_CHARS_PER_TOKEN_BOUND = 32


@dataclass(frozen=True, slots=True)
class RerankOutcome:
    scores: list[float] | None
    """One relevance score per text, in the texts' order; None when the reranker did not finish in time."""
    note: str | None
    """Why there are no scores, for the search response; None when there are."""


def model_name_of(path: Path) -> str:
    """`org/name` for a Hugging Face cache snapshot (models--org--name/snapshots/<rev>), else the folder's name."""
    for part in reversed(path.parts):
        if part.startswith("models--"):
            return part.removeprefix("models--").replace("--", "/")
    return path.name


def _on_device(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    # Typed as a plain Module: transformers' wrapped PreTrainedModel.to confuses mypy.
    return model.to(device).eval()


class Reranker:
    """Scores with one forward pass at a time: torch already spreads one pass over every core, and two
    searches racing for them would both miss their time limit."""

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        path: Path,
        device: str = "cpu",
        batch_size: int = 16,
        max_length: int = 512,
    ) -> None:
        labels = model.config.num_labels or 0
        if labels not in (1, 2):
            raise ModelUnavailableError(
                f"{str(path)!r} is a classifier with {labels} labels, not a relevance cross-encoder (1 or 2); "
                f"set {RERANK_MODEL_PATH_SETTING} to a reranker such as cross-encoder/ms-marco-MiniLM-L-6-v2",
                field=RERANK_MODEL_PATH_SETTING,
            )
        if batch_size < 1 or max_length < 2:
            raise ValueError("batch_size must be at least 1 and max_length at least 2")
        self.path = path
        self.model_name = model_name_of(path)
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.max_length = max_length
        self._labels = labels
        self._model = _on_device(model, self.device)
        self._tokenizer = tokenizer
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rerank")

    @classmethod
    def load(cls, path: Path, *, device: str = "cpu", batch_size: int = 16, max_length: int = 512) -> Reranker:
        """Load from a local directory; a missing or non-model directory names SEMANTIK_RERANK_MODEL_PATH."""
        # Here, as core/pipeline/tokens.py does, so transformers loads only when a reranker does; loading
        # first, since it sets the offline switches transformers reads when imported.
        from semantik.core.embedding.loading import load_model, load_tokenizer  # noqa: I001
        from transformers import AutoModelForSequenceClassification

        tokenizer = load_tokenizer(path, RERANK_MODEL_PATH_SETTING)
        model = load_model(path, RERANK_MODEL_PATH_SETTING, auto_class=AutoModelForSequenceClassification)
        # A model's own limit (512 for BERT's position embeddings) caps what is asked for.
        limit = getattr(tokenizer, "model_max_length", max_length)
        return cls(model, tokenizer, path=path, device=device, batch_size=batch_size, max_length=min(max_length, limit))

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        """One relevance score per text, in order: higher is more relevant.

        A one-label model's score is its logit. A two-label model's is the positive class's logit minus
        the negative's: the log-odds of relevance, which orders as the softmax probability does but does
        not saturate at 1.0 for the strong matches a reranker has to tell apart.
        """
        return self._score(query, texts, threading.Event())

    # A `timeout` argument, not asyncio.timeout around the call: running out of time is an answer here
    # (the fused order and a note), not an exception, and the worker must be told to stop.
    async def rerank(self, query: str, texts: Sequence[str], *, timeout: float) -> RerankOutcome:  # noqa: ASYNC109
        """`score` on the reranker's one worker thread, if it finishes within `timeout` seconds.

        The limit counts the wait for the thread too. A timed-out call still queued is dropped; one already
        running cannot be killed, so it stops at its next batch and the next call waits for that batch
        (inside its own limit).
        """
        if not texts:
            return RerankOutcome([], None)
        stop = threading.Event()
        loop = asyncio.get_running_loop()
        pending = loop.run_in_executor(self._executor, self._score, query, list(texts), stop)
        try:
            scores = await asyncio.wait_for(pending, timeout)
        except TimeoutError:
            stop.set()
            log.warning("rerank timed out texts=%d timeout_s=%s model=%s", len(texts), timeout, self.model_name)
            return RerankOutcome(None, f"reranker took longer than {timeout:g} s; results are in fused order")
        return RerankOutcome(scores, None)

    def close(self) -> None:
        """Drop queued work and let a running batch finish; the reranker is unusable afterwards."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _score(self, query: str, texts: Sequence[str], stop: threading.Event) -> list[float]:
        limit = self.max_length * _CHARS_PER_TOKEN_BOUND
        bounded = [text[:limit] for text in texts]
        # Similar lengths together pad less; scores go back to the texts' order.
        order = sorted(range(len(bounded)), key=lambda i: len(bounded[i]))
        scores = [0.0] * len(bounded)
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                if stop.is_set():
                    break
                batch = order[start : start + self.batch_size]
                for index, value in zip(batch, self._forward(query[:limit], [bounded[i] for i in batch]), strict=True):
                    scores[index] = value
        return scores

    def _forward(self, query: str, texts: list[str]) -> list[float]:
        inputs = self._tokenizer(
            [query] * len(texts),
            texts,
            padding=True,
            truncation="longest_first",
            max_length=self.max_length,
            return_tensors="pt",
        ).to(self.device)
        logits = self._model(**inputs).logits.float()
        relevance = logits[:, 0] if self._labels == 1 else logits[:, 1] - logits[:, 0]
        values: list[float] = relevance.cpu().tolist()
        return values
