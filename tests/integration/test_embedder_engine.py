"""The embedding engine on the real all-MiniLM-L6-v2: correctness, precision modes, OOM handling."""

from __future__ import annotations

import copy
import random
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from semantik.contracts.models import ModelSpec, model_spec
from semantik.core.embedding import Precision, TextKind
from semantik.core.embedding.engine import EmbeddingEngine, TextTooLargeError
from semantik.core.settings import bundled_model_path

SPEC = model_spec("sentence-transformers/all-MiniLM-L6-v2")


def mixed_texts(count: int, seed: int = 3) -> list[str]:
    words = Path("/usr/share/common-licenses/GPL-3").read_text().split()
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        start = rng.randrange(0, len(words) - 400)
        texts.append(" ".join(words[start : start + rng.randint(3, 400)]))
    return texts


@pytest.fixture(scope="module")
def reference(minilm_model: PreTrainedModel, minilm_tokenizer: PreTrainedTokenizerBase) -> np.ndarray:
    return EmbeddingEngine(SPEC, minilm_model, minilm_tokenizer).embed_sync(mixed_texts(120)).vectors


def test_float32_matches_sentence_transformers_in_input_order(reference: np.ndarray) -> None:
    from sentence_transformers import SentenceTransformer

    expected = SentenceTransformer(str(bundled_model_path()), device="cpu").encode(mixed_texts(120), batch_size=32)
    cosine = (reference * expected).sum(axis=1)
    assert cosine.min() >= 0.99999
    assert np.allclose(np.linalg.norm(reference, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize(
    ("precision", "min_cosine"),
    [(Precision.FLOAT16, 0.9999), (Precision.BFLOAT16, 0.9999), (Precision.INT8, 0.99)],
)
def test_each_precision_stays_close_to_float32(
    minilm_model: PreTrainedModel,
    minilm_tokenizer: PreTrainedTokenizerBase,
    reference: np.ndarray,
    precision: Precision,
    min_cosine: float,
) -> None:
    if precision is Precision.FLOAT16 and not torch.ops.mkldnn._is_mkldnn_fp16_supported():
        pytest.skip("this CPU has no float16 matrix units")
    if precision is Precision.BFLOAT16 and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        pytest.skip("this CPU has no bfloat16 matrix units")
    engine = EmbeddingEngine(SPEC, copy.deepcopy(minilm_model), minilm_tokenizer, precision=precision)

    vectors = engine.embed_sync(mixed_texts(120)).vectors

    cosine = (vectors * reference).sum(axis=1)
    print(f"{precision}: min cosine {cosine.min():.6f}, mean {cosine.mean():.6f}")
    assert cosine.min() >= min_cosine
    assert not np.array_equal(vectors, reference), "the precision mode did not change the computation"


def test_int8_quantizes_only_the_layers_the_spec_allows(
    minilm_model: PreTrainedModel, minilm_tokenizer: PreTrainedTokenizerBase
) -> None:
    engine = EmbeddingEngine(SPEC, copy.deepcopy(minilm_model), minilm_tokenizer, precision=Precision.INT8)
    modules = dict(engine._encoder._model.named_modules())
    assert isinstance(modules["encoder.layer.0.attention.self.query"], torch.ao.nn.quantized.dynamic.Linear)
    assert isinstance(modules["encoder.layer.0.attention.output.dense"], torch.ao.nn.quantized.dynamic.Linear)
    assert type(modules["encoder.layer.0.output.dense"]) is torch.nn.Linear
    assert type(modules["encoder.layer.0.intermediate.dense"]) is torch.nn.Linear


def test_batches_respect_the_token_budget_and_sort_by_length(
    minilm_model: PreTrainedModel, minilm_tokenizer: PreTrainedTokenizerBase
) -> None:
    engine = EmbeddingEngine(SPEC, minilm_model, minilm_tokenizer, max_batch_tokens=1000, max_batch_size=8)
    lengths = [300, 5, 120, 7, 250, 9, 60, 10, 11, 12, 13, 14, 15, 16]

    batches = engine.plan_batches(lengths)

    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    for batch in batches:
        assert len(batch) <= 8
        assert len(batch) * max(lengths[i] for i in batch) <= 1000
    flat = [lengths[i] for batch in batches for i in batch]
    assert flat == sorted(lengths)


def test_queries_get_the_instruction_and_documents_do_not(
    minilm_tokenizer: PreTrainedTokenizerBase, minilm_model: PreTrainedModel
) -> None:
    spec = ModelSpec(**{**{f: getattr(SPEC, f) for f in SPEC.__slots__}, "query_instruction": "search: "})
    engine = EmbeddingEngine(spec, minilm_model, minilm_tokenizer)
    query, document = (
        engine.tokenize(["rotate keys"], TextKind.QUERY)[0],
        engine.tokenize(["rotate keys"], TextKind.DOCUMENT)[0],
    )
    assert len(query) > len(document)
    assert minilm_tokenizer.decode(query, skip_special_tokens=True).startswith("search")


def test_fault_injection_oom_splits_batches_and_changes_no_result(
    minilm_model: PreTrainedModel, minilm_tokenizer: PreTrainedTokenizerBase, reference: np.ndarray
) -> None:
    def oom_above_600_tokens(texts: int, padded_tokens: int) -> None:
        if padded_tokens > 600:
            raise torch.OutOfMemoryError("injected: CUDA out of memory")

    engine = EmbeddingEngine(SPEC, minilm_model, minilm_tokenizer)
    engine.forward_hook = oom_above_600_tokens
    result = engine.embed_ids(engine.tokenize(mixed_texts(120), TextKind.DOCUMENT))

    assert result.stats.oom_splits > 0
    assert result.failed == frozenset()
    assert max(padded for _, padded, _ in result.stats.batches) <= 600
    assert (result.vectors * reference).sum(axis=1).min() >= 0.99999


def test_fault_injection_a_text_too_large_alone_fails_only_itself(
    minilm_model: PreTrainedModel, minilm_tokenizer: PreTrainedTokenizerBase
) -> None:
    texts = ["short one", "another short text", " ".join(["long"] * 300), "third short text"]

    def oom_for_the_long_text(texts: int, padded_tokens: int) -> None:
        if padded_tokens / texts > 100:
            raise torch.OutOfMemoryError("injected: CUDA out of memory")

    engine = EmbeddingEngine(SPEC, minilm_model, minilm_tokenizer)
    engine.forward_hook = oom_for_the_long_text
    result = engine.embed_ids(engine.tokenize(texts, TextKind.DOCUMENT))

    assert result.failed == frozenset({2})
    assert np.allclose(np.linalg.norm(result.vectors[[0, 1, 3]], axis=1), 1.0, atol=1e-5)
    with pytest.raises(TextTooLargeError):
        engine.embed_sync(texts)
    assert engine.embed_sync(["still serving"]).vectors.shape == (1, 384)


def test_on_the_cpu_a_request_of_several_batches_runs_one_pass_per_core_with_the_same_vectors(
    minilm_model: PreTrainedModel, minilm_tokenizer: PreTrainedTokenizerBase, reference: np.ndarray
) -> None:
    seen: list[tuple[str, int]] = []

    def note_thread(texts: int, padded_tokens: int) -> None:
        seen.append((threading.current_thread().name, torch.get_num_threads()))

    one_core = EmbeddingEngine(SPEC, minilm_model, minilm_tokenizer, cpu_threads=1)
    two_cores = EmbeddingEngine(SPEC, minilm_model, minilm_tokenizer, cpu_threads=2, forward_hook=note_thread)

    sequential = one_core.embed_sync(mixed_texts(120)).vectors
    concurrent = two_cores.embed_sync(mixed_texts(120)).vectors

    assert len({name for name, _ in seen}) == 2, "the passes did not share the two cores"
    assert {threads for _, threads in seen} == {1}
    assert (concurrent * sequential).sum(axis=1).min() >= 0.99999
    assert (concurrent * reference).sum(axis=1).min() >= 0.99999
    assert torch.get_num_threads() == 2, "torch's default was left at one thread"

    seen.clear()
    two_cores.embed_sync(["a query is one batch"])
    assert seen == [(threading.current_thread().name, 2)], "one batch should have both cores"


def test_fault_injection_a_failing_pass_fails_the_request_after_every_pass_has_ended(
    minilm_model: PreTrainedModel, minilm_tokenizer: PreTrainedTokenizerBase
) -> None:
    ended: list[int] = []

    def fail_the_first(texts: int, padded_tokens: int) -> None:
        if not ended:
            ended.append(padded_tokens)
            raise RuntimeError("injected: a pass failed")
        ended.append(padded_tokens)

    engine = EmbeddingEngine(
        SPEC, minilm_model, minilm_tokenizer, cpu_threads=2, max_batch_tokens=600, forward_hook=fail_the_first
    )
    ids = engine.tokenize(mixed_texts(60), TextKind.DOCUMENT)
    batches = len(engine.plan_batches([len(row) for row in ids]))

    with pytest.raises(RuntimeError, match="injected"):
        engine.embed_ids(ids)
    assert len(ended) == batches, "a pass was still running when the request failed"
    assert engine.embed_sync(["still serving"]).vectors.shape == (1, 384)
