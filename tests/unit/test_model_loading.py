from __future__ import annotations

from pathlib import Path

import pytest

from semantik.contracts.models import MODEL_SPECS, Pooling, UnknownModelError, model_spec
from semantik.core.embedding import model_for
from semantik.core.embedding.loading import check_model_dir, load_tokenizer
from semantik.core.errors import InvalidInputError, ModelUnavailableError


def test_a_missing_model_dir_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailableError, match="SEMANTIK_MODEL_PATH") as caught:
        check_model_dir(tmp_path / "absent")
    assert "never downloads" in caught.value.message


def test_a_hub_id_is_not_downloaded(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailableError, match="does not exist"):
        load_tokenizer(Path("sentence-transformers/all-MiniLM-L6-v2"))


def test_a_dir_without_config_is_not_a_model(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailableError, match=r"no config\.json"):
        check_model_dir(tmp_path)


def test_model_table() -> None:
    minilm = model_spec("sentence-transformers/all-MiniLM-L6-v2")
    assert (minilm.dimension, minilm.pooling, minilm.max_seq_length) == (384, Pooling.MEAN, 256)
    qwen = MODEL_SPECS["Qwen/Qwen3-Embedding-0.6B"]
    assert qwen.pooling is Pooling.LAST_TOKEN and qwen.padding_side == "left" and qwen.query_instruction
    with pytest.raises(UnknownModelError, match="known models"):
        model_spec("bert-base")


def test_an_unknown_model_is_the_callers_mistake_on_the_model_field() -> None:
    with pytest.raises(InvalidInputError, match="known models") as caught:
        model_for("bert-base")
    assert (caught.value.status, caught.value.field) == (422, "model")
