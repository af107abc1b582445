"""The cross-encoder reranker on a tiny randomly initialised BERT built here: plumbing, not quality. Its
scores are the model's own, whatever the batching; a slow pass gives the fused order and says why; a bad
SEMANTIK_RERANK_MODEL_PATH is named; the app context loads it from that setting."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from semantik.core.context import open_semantik
from semantik.core.errors import ModelUnavailableError
from semantik.core.search.rerank import RERANK_MODEL_PATH_SETTING, Reranker, model_name_of
from semantik.core.settings import Settings
from tests.support.tiny_models import build_tiny_cross_encoder

QUERY = "where is the quick fox"
TEXTS = [
    "the quick fox jumps over the lazy dog",
    "apple and banana bread",
    "cats",
    "what is the weather in the rain",
    "the lazy dog",
    "a fox",
    "how to search for fruit about cats and dogs and the weather",
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_cross_encoder(tmp_path_factory.mktemp("rerank") / "tiny-cross-encoder")


def direct_logits(path: Path, query: str, texts: Sequence[str]) -> list[torch.Tensor]:
    """The model run by hand on all pairs at once: what the reranker must reproduce."""
    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(str(path), local_files_only=True).eval()
    inputs = tokenizer([query] * len(texts), list(texts), padding=True, return_tensors="pt")
    with torch.inference_mode():
        return list(model(**inputs).logits)


def test_scores_are_the_models_logits_for_each_pair(model_dir: Path) -> None:
    scores = Reranker.load(model_dir).score(QUERY, TEXTS)
    expected = [float(row[0]) for row in direct_logits(model_dir, QUERY, TEXTS)]
    assert scores == pytest.approx(expected, abs=1e-5)
    assert len(set(scores)) == len(TEXTS), "distinct texts should score differently"


def test_a_two_label_model_scores_the_positive_logit_minus_the_negative(tmp_path: Path) -> None:
    path = build_tiny_cross_encoder(tmp_path / "two-labels", num_labels=2)
    scores = Reranker.load(path).score(QUERY, TEXTS)
    expected = [float(row[1] - row[0]) for row in direct_logits(path, QUERY, TEXTS)]
    assert scores == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("batch_size", [2, 3, 16])
def test_batching_does_not_change_the_scores(model_dir: Path, batch_size: int) -> None:
    one_by_one = Reranker.load(model_dir, batch_size=1).score(QUERY, TEXTS)
    assert Reranker.load(model_dir, batch_size=batch_size).score(QUERY, TEXTS) == pytest.approx(one_by_one, abs=1e-5)


def test_a_long_text_is_scored_on_what_fits_in_max_length(model_dir: Path) -> None:
    words = ("the quick fox jumps over the lazy dog " * 40).split()
    reranker = Reranker.load(model_dir, max_length=32)
    # [CLS] fox [SEP] ... [SEP]: 28 of the text's one-token words fit.
    cut = " ".join(words[:28])
    assert reranker.score("fox", [" ".join(words)]) == pytest.approx(reranker.score("fox", [cut]), abs=1e-5)
    assert reranker.score("fox", [" ".join(words)]) != pytest.approx(reranker.score("fox", [" ".join(words[:20])]))


async def test_rerank_in_time_returns_the_scores(model_dir: Path) -> None:
    reranker = Reranker.load(model_dir, batch_size=3)
    try:
        outcome = await reranker.rerank(QUERY, TEXTS, timeout=30)
        assert outcome.note is None
        assert outcome.scores == pytest.approx(reranker.score(QUERY, TEXTS), abs=1e-6)
        assert (await reranker.rerank(QUERY, [], timeout=30)).scores == []
    finally:
        reranker.close()


async def test_concurrent_reranks_each_get_their_own_scores(model_dir: Path) -> None:
    reranker = Reranker.load(model_dir, batch_size=2)
    try:
        first, second = await asyncio.gather(
            reranker.rerank(QUERY, TEXTS, timeout=30), reranker.rerank("apple bread", TEXTS[::-1], timeout=30)
        )
        assert first.scores == pytest.approx(reranker.score(QUERY, TEXTS), abs=1e-6)
        assert second.scores == pytest.approx(reranker.score("apple bread", TEXTS[::-1]), abs=1e-6)
    finally:
        reranker.close()


async def test_rerank_past_its_time_gives_no_scores_says_why_and_stops_its_pass(model_dir: Path) -> None:
    reranker = Reranker.load(model_dir, batch_size=1)
    passes = 0

    def count(*_: Any) -> None:
        nonlocal passes
        passes += 1

    reranker._model.register_forward_hook(count)
    long_texts = [f"{TEXTS[0]} {i % 7} " * 50 for i in range(40)]  # ~480 tokens each, one pass per text
    try:
        started = time.perf_counter()
        outcome = await reranker.rerank(QUERY, long_texts, timeout=0.01)
        assert time.perf_counter() - started < 1.0
        assert outcome.scores is None
        assert outcome.note == "reranker took longer than 0.01 s; results are in fused order"
        # The next call waits for the abandoned pass's current batch, not its 40 texts, and is answered.
        after = await reranker.rerank(QUERY, TEXTS[:2], timeout=30)
        abandoned = passes - 2
        assert abandoned < len(long_texts) // 4, f"the timed-out call ran {abandoned} passes"
        assert after.scores == pytest.approx(reranker.score(QUERY, TEXTS[:2]), abs=1e-6)
    finally:
        reranker.close()


def test_a_missing_directory_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailableError, match=RERANK_MODEL_PATH_SETTING) as caught:
        Reranker.load(tmp_path / "absent")
    assert "does not exist" in caught.value.message and caught.value.field == RERANK_MODEL_PATH_SETTING


def test_a_folder_that_is_not_a_model_names_the_setting(tmp_path: Path, model_dir: Path) -> None:
    with pytest.raises(ModelUnavailableError, match=rf"no config\.json.*{RERANK_MODEL_PATH_SETTING}"):
        Reranker.load(tmp_path)
    weightless = tmp_path / "weightless"
    shutil.copytree(model_dir, weightless)
    (weightless / "model.safetensors").unlink()
    with pytest.raises(ModelUnavailableError, match=rf"cannot load the model.*{RERANK_MODEL_PATH_SETTING}"):
        Reranker.load(weightless)


def test_a_classifier_with_more_labels_is_not_a_reranker(tmp_path: Path) -> None:
    path = build_tiny_cross_encoder(tmp_path / "three-labels", num_labels=3)
    with pytest.raises(ModelUnavailableError, match=rf"3 labels.*{RERANK_MODEL_PATH_SETTING}"):
        Reranker.load(path)


def test_the_model_name_of_a_hub_cache_snapshot_is_the_repository() -> None:
    snapshot = Path("/models/models--cross-encoder--ms-marco-MiniLM-L-6-v2/snapshots/c5ee24cb")
    assert model_name_of(snapshot) == "cross-encoder/ms-marco-MiniLM-L-6-v2"
    assert model_name_of(Path("/models/my-reranker")) == "my-reranker"


async def test_the_context_loads_the_reranker_from_the_setting_once(tmp_path: Path, model_dir: Path) -> None:
    async with open_semantik(Settings(data_dir=tmp_path / "plain")) as app:
        assert await app.reranker() is None
    settings = Settings(data_dir=tmp_path / "reranking", rerank_model_path=model_dir, rerank_batch_size=5)
    async with open_semantik(settings) as app:
        first, second = await asyncio.gather(app.reranker(), app.reranker())
        assert first is not None and first is second
        assert (first.path, first.batch_size, first.model_name) == (model_dir, 5, "tiny-cross-encoder")
        outcome = await first.rerank(QUERY, TEXTS, timeout=settings.rerank_timeout_seconds)
        assert outcome.scores == pytest.approx(Reranker.load(model_dir).score(QUERY, TEXTS), abs=1e-5)


async def test_the_context_names_the_setting_when_the_path_is_wrong(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", rerank_model_path=tmp_path / "no-such-model")
    async with open_semantik(settings) as app:
        with pytest.raises(ModelUnavailableError, match=RERANK_MODEL_PATH_SETTING):
            await app.reranker()
