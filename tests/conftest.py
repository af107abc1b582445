"""Fixtures every tier may use. Each group lives in its own section; the machinery is in tests/support."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support.servers import private_server

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from semantik.core.embedding.engine import TransformerEmbedder

TESTS = Path(__file__).parent

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# ONNX exports are keyed by the model's digest and the library versions, so one cache outside the clone
# serves every data directory the tests make (and the next run) without exporting again per test.
ONNX_CACHE = Path(os.environ.get("SEMANTIK_CACHE_DIR") or Path.home() / ".cache" / "semantik") / "onnx"
os.environ.setdefault("SEMANTIK_ONNX_CACHE_DIR", str(ONNX_CACHE))
os.environ.setdefault("SEMANTIK_EMBEDDER_CACHE_DIR", str(ONNX_CACHE.parent))


# --- Private PostgreSQL and Redis servers (tests/support/servers.py, hack/postgres.sh, hack/redis.sh) ---
# The servers `make test` started when SEMANTIK_TEST_POSTGRES_URL / SEMANTIK_TEST_REDIS_URL are set,
# otherwise private ones started for this session and stopped at its end.


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """SQLAlchemy URL (postgresql+asyncpg://) of the server's `semantik` database.

    Tests make their own databases on the server with tests.support.servers.fresh_postgres_database.
    """
    with private_server("postgres.sh", "SEMANTIK_TEST_POSTGRES_URL") as url:
        yield url


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL (redis://127.0.0.1:PORT/0) of a Redis server with an append-only file."""
    with private_server("redis.sh", "SEMANTIK_TEST_REDIS_URL") as url:
        yield url


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    """Keep each phase's report on the item, so a fixture's teardown knows whether its test failed."""
    report: pytest.TestReport = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The cluster and e2e tiers time only their tests' bodies (600 s): a session's cluster `up` may
    include a cold build of the binaries or the images."""
    for item in items:
        in_tier = item.path.is_relative_to(TESTS / "cluster") or item.path.is_relative_to(TESTS / "e2e")
        if in_tier and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(600, func_only=True))


# --- The real embedding model (all-MiniLM-L6-v2 from its PyPI package), loaded once per session ---


# Imported inside the fixtures: a run of the unit tier alone never pays for loading transformers.


@pytest.fixture(scope="session")
def minilm_model() -> PreTrainedModel:
    from semantik.core.embedding.loading import load_model
    from semantik.core.settings import bundled_model_path

    return load_model(bundled_model_path())


@pytest.fixture(scope="session")
def minilm_tokenizer() -> PreTrainedTokenizerBase:
    from semantik.core.embedding.loading import load_tokenizer
    from semantik.core.settings import bundled_model_path

    return load_tokenizer(bundled_model_path())


@pytest.fixture(scope="session")
def real_embedder(minilm_model: PreTrainedModel, minilm_tokenizer: PreTrainedTokenizerBase) -> TransformerEmbedder:
    """The model behind the Embedder interface, shared by the integration and browser tiers."""
    from semantik.contracts.models import model_spec
    from semantik.core.embedding.engine import EmbeddingEngine, TransformerEmbedder

    spec = model_spec("sentence-transformers/all-MiniLM-L6-v2")
    return TransformerEmbedder(EmbeddingEngine(spec, minilm_model, minilm_tokenizer))
