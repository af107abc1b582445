"""The ONNX Runtime backend on the real all-MiniLM-L6-v2: exported from the local weights, fused, quantized,
cached; its vectors against torch float32's, and the cache's behaviour when an entry is corrupt or stale."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from semantik.contracts.models import model_spec
from semantik.core.cpus import usable_cpus
from semantik.core.embedding import EmbedBackend, Precision, TextKind
from semantik.core.embedding.encoders import EncoderOutOfMemoryError
from semantik.core.embedding.engine import EmbeddingEngine
from semantik.core.embedding.onnx_backend import OnnxEncoder
from semantik.core.embedding.onnx_export import MANIFEST_FILE, MODEL_FILE, ensure_onnx_model, file_digest
from semantik.core.errors import InvalidInputError
from semantik.core.settings import bundled_model_path
from tests.integration.test_embedder_engine import mixed_texts

SPEC = model_spec("sentence-transformers/all-MiniLM-L6-v2")
CACHE = Path(os.environ["SEMANTIK_ONNX_CACHE_DIR"])


@pytest.fixture(scope="module")
def torch_float32(minilm_model: PreTrainedModel, minilm_tokenizer: PreTrainedTokenizerBase) -> np.ndarray:
    return EmbeddingEngine(SPEC, minilm_model, minilm_tokenizer).embed_sync(mixed_texts(120)).vectors


def onnx_engine(tokenizer: PreTrainedTokenizerBase, precision: Precision, cache: Path = CACHE) -> EmbeddingEngine:
    return EmbeddingEngine(SPEC, OnnxEncoder.load(SPEC, bundled_model_path(), cache, precision), tokenizer)


def test_onnx_float32_gives_torch_float32_vectors(
    minilm_tokenizer: PreTrainedTokenizerBase, torch_float32: np.ndarray
) -> None:
    engine = onnx_engine(minilm_tokenizer, Precision.FLOAT32)

    vectors = engine.embed_sync(mixed_texts(120)).vectors

    cosine = (vectors * torch_float32).sum(axis=1)
    assert engine.backend is EmbedBackend.ONNX
    assert cosine.min() >= 0.99999
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_onnx_int8_stays_close_and_quantizes_only_the_layers_the_spec_allows(
    minilm_tokenizer: PreTrainedTokenizerBase, torch_float32: np.ndarray
) -> None:
    path = ensure_onnx_model(SPEC, bundled_model_path(), CACHE, Precision.INT8)
    engine = onnx_engine(minilm_tokenizer, Precision.INT8)

    vectors = engine.embed_sync(mixed_texts(120)).vectors

    cosine = (vectors * torch_float32).sum(axis=1)
    print(f"onnx int8: min cosine {cosine.min():.6f}, mean {cosine.mean():.6f}")
    assert cosine.min() >= 0.99
    assert cosine.mean() < 0.99999, "int8 did not change the computation"
    ops = [node.op_type for node in onnx.load(str(path), load_external_data=False).graph.node]
    # q, k, v and the attention output of six layers are int8; both feed-forward layers stay float, and the
    # attention products run inside the fused Attention node.
    assert ops.count("MatMulInteger") + ops.count("DynamicQuantizeMatMul") == 6 * 4
    assert ops.count("MatMul") == 6 * 2
    assert ops.count("Attention") == 6


def test_a_second_load_reuses_the_export_and_a_corrupt_one_is_rebuilt(
    tmp_path: Path, minilm_tokenizer: PreTrainedTokenizerBase, torch_float32: np.ndarray
) -> None:
    first = ensure_onnx_model(SPEC, bundled_model_path(), tmp_path, Precision.FLOAT32)
    written = first.stat().st_mtime_ns
    assert ensure_onnx_model(SPEC, bundled_model_path(), tmp_path, Precision.FLOAT32) == first
    assert first.stat().st_mtime_ns == written, "a valid entry was exported again"

    with first.open("r+b") as handle:  # a disk error or an interrupted copy, in the middle of the weights
        handle.seek(first.stat().st_size // 2)
        handle.write(os.urandom(4096))
    rebuilt = ensure_onnx_model(SPEC, bundled_model_path(), tmp_path, Precision.FLOAT32)

    manifest = json.loads((rebuilt.parent / MANIFEST_FILE).read_text())
    assert manifest["files"][MODEL_FILE] == file_digest(rebuilt)
    vectors = onnx_engine(minilm_tokenizer, Precision.FLOAT32, tmp_path).embed_sync(mixed_texts(120)).vectors
    assert (vectors * torch_float32).sum(axis=1).min() >= 0.99999
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == [rebuilt.parent.name]


def test_changed_weights_get_a_new_export_and_the_stale_one_is_removed(tmp_path: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(bundled_model_path(), model)
    cache = tmp_path / "cache"
    old = ensure_onnx_model(SPEC, model, cache, Precision.FLOAT32).parent
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "layer_norm_eps": 1e-6}))  # a fine-tune's new file

    new = ensure_onnx_model(SPEC, model, cache, Precision.FLOAT32).parent

    assert new != old
    assert not old.exists()
    assert new.exists()


def test_onnx_refuses_what_it_cannot_run(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError) as bf16:
        ensure_onnx_model(SPEC, bundled_model_path(), tmp_path, Precision.BFLOAT16)
    assert bf16.value.field == "dtype"
    with pytest.raises(InvalidInputError) as gpu:
        EmbeddingEngine.load(
            SPEC, bundled_model_path(), device="cuda", backend=EmbedBackend.ONNX, onnx_cache_dir=tmp_path
        )
    assert gpu.value.field == "backend"
    assert not any(tmp_path.iterdir()), "nothing is exported for a refused configuration"


def test_loading_by_setting_sizes_the_threads_to_the_cpus_allowed() -> None:
    engine = EmbeddingEngine.load(SPEC, bundled_model_path(), backend=EmbedBackend.ONNX, onnx_cache_dir=CACHE)

    assert engine.backend is EmbedBackend.ONNX
    assert engine._encoder.threads == usable_cpus()  # type: ignore[attr-defined]
    assert EmbeddingEngine.load(SPEC, bundled_model_path()).backend is EmbedBackend.TORCH


def test_an_onnx_out_of_memory_splits_the_batch_simulated(
    minilm_tokenizer: PreTrainedTokenizerBase, torch_float32: np.ndarray
) -> None:
    """Simulated: no real allocation failure is provoked here; the encoder refuses batches over 4 rows."""
    encoder = OnnxEncoder.load(SPEC, bundled_model_path(), CACHE, Precision.FLOAT32)

    class Refusing:
        backend = encoder.backend
        device = encoder.device
        inference_context = encoder.inference_context

        def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            if input_ids.shape[0] > 4:
                raise EncoderOutOfMemoryError("Failed to allocate memory for requested buffer")
            return encoder(input_ids, attention_mask)

    engine = EmbeddingEngine(SPEC, Refusing(), minilm_tokenizer)  # type: ignore[arg-type]
    result = engine.embed_ids(engine.tokenize(mixed_texts(120), TextKind.DOCUMENT))

    assert not result.failed
    assert result.stats.oom_splits > 0
    assert max(texts for texts, _, _ in result.stats.batches) <= 4
    assert (result.vectors * torch_float32).sum(axis=1).min() >= 0.99999
