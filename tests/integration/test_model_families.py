"""Qwen3-Embedding's loading path (last-token pooling, left padding, query instruction) on a tiny,
randomly initialised model of the same architecture that the test builds and saves to disk."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from semantik.contracts.models import MODEL_SPECS, Pooling
from semantik.core.embedding import Precision, TextKind
from semantik.core.embedding.engine import EmbeddingEngine
from semantik.core.errors import ModelUnavailableError
from tests.support.tiny_models import build_tiny_qwen3

QWEN = MODEL_SPECS["Qwen/Qwen3-Embedding-0.6B"]


CORPUS = Path("/usr/share/common-licenses/GPL-3").read_text().splitlines()


@pytest.fixture(scope="module")
def tiny_qwen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_qwen3(tmp_path_factory.mktemp("tiny-qwen3"), hidden_size=32, max_position_embeddings=256)


def tiny_spec() -> object:
    return dataclasses.replace(QWEN, dimension=32, max_seq_length=128)


def test_the_table_entry_is_what_qwen3_embedding_needs() -> None:
    assert QWEN.pooling is Pooling.LAST_TOKEN
    assert QWEN.padding_side == "left"
    assert QWEN.query_instruction.startswith("Instruct:")
    assert QWEN.document_instruction == ""


def test_tiny_qwen3_loads_from_disk_and_pads_on_the_left(tiny_qwen: Path) -> None:
    engine = EmbeddingEngine.load(tiny_spec(), tiny_qwen)  # type: ignore[arg-type]
    short, long = "patent license", " ".join(CORPUS[40:60])

    alone = engine.embed_sync([short]).vectors[0]
    batched = engine.embed_sync([long, short]).vectors

    assert engine._tokenizer.padding_side == "left"
    assert batched.shape == (2, 32)
    assert np.allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
    # Last-token pooling with left padding: padding a text to a longer neighbour changes nothing.
    assert float(alone @ batched[1]) > 0.9999


def test_last_token_pooling_also_finds_the_last_real_token_with_right_padding(tiny_qwen: Path) -> None:
    wrong = dataclasses.replace(tiny_spec(), padding_side="right")  # type: ignore[type-var]
    engine = EmbeddingEngine.load(wrong, tiny_qwen)
    short, long = "patent license", " ".join(CORPUS[40:60])
    alone = engine.embed_sync([short]).vectors[0]
    batched = engine.embed_sync([long, short]).vectors
    assert float(alone @ batched[1]) > 0.9999


def test_queries_get_the_instruction(tiny_qwen: Path) -> None:
    engine = EmbeddingEngine.load(tiny_spec(), tiny_qwen)  # type: ignore[arg-type]
    query = engine.tokenize(["rotate keys"], TextKind.QUERY)[0]
    document = engine.tokenize(["rotate keys"], TextKind.DOCUMENT)[0]
    assert len(query) > len(document)
    as_query = engine.embed_sync(["rotate keys"], TextKind.QUERY).vectors[0]
    as_document = engine.embed_sync(["rotate keys"], TextKind.DOCUMENT).vectors[0]
    assert float(as_query @ as_document) < 0.9999


def test_int8_touches_the_attention_projections_of_qwen3(tiny_qwen: Path) -> None:
    import torch

    engine = EmbeddingEngine.load(tiny_spec(), tiny_qwen, precision=Precision.INT8)  # type: ignore[arg-type]
    modules = dict(engine._encoder._model.named_modules())
    assert isinstance(modules["layers.0.self_attn.q_proj"], torch.ao.nn.quantized.dynamic.Linear)
    assert type(modules["layers.0.mlp.gate_proj"]) is torch.nn.Linear


def test_a_cache_path_without_the_model_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailableError, match="SEMANTIK_MODEL_PATH"):
        EmbeddingEngine.load(QWEN, tmp_path / "models--Qwen--Qwen3-Embedding-0.6B")
