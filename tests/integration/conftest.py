"""Embedded Semantik on real backends: SQLite or the private PostgreSQL, Qdrant local mode, the model."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from semantik.core.context import Semantik, open_semantik
from semantik.core.embedding import Embedder, Embeddings, TextKind
from semantik.core.embedding.engine import TransformerEmbedder
from semantik.core.settings import Settings
from tests.support.corpus import KEYS_MD, build_corpus
from tests.support.servers import drop_postgres_database, fresh_postgres_database


class CountingEmbedder:
    """The real embedder, counting the documents and the queries it embeds: how tests see that unchanged
    files cost nothing and that a query is embedded once per model."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.texts = 0
        self.queries = 0

    @property
    def model_name(self) -> str:
        return self.inner.model_name

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    async def embed(self, texts: Sequence[str], kind: TextKind = TextKind.DOCUMENT) -> Embeddings:
        if kind is TextKind.DOCUMENT:
            self.texts += len(texts)
        else:
            self.queries += len(texts)
        return await self.inner.embed(texts, kind)

    async def aclose(self) -> None:
        return None


@pytest.fixture
def embedder(real_embedder: TransformerEmbedder) -> CountingEmbedder:
    return CountingEmbedder(real_embedder)


@pytest.fixture(params=["sqlite", "postgres"])
async def settings(
    request: pytest.FixtureRequest, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Settings]:
    data_dir = tmp_path / "data"
    # The REST API indexes only under SEMANTIK_SOURCE_ROOTS: the tests' folders all live under pytest's base.
    roots = [tmp_path_factory.getbasetemp()]
    if request.param == "sqlite":
        yield Settings(data_dir=data_dir, source_roots=roots)
        return
    server_url: str = request.getfixturevalue("postgres_url")
    url = await fresh_postgres_database(server_url)
    try:
        yield Settings(data_dir=data_dir, database_url=url, source_roots=roots)
    finally:
        await drop_postgres_database(url)


@pytest.fixture
async def semantik(settings: Settings, embedder: CountingEmbedder) -> AsyncIterator[Semantik]:
    async with open_semantik(settings, embedder=embedder) as app:
        yield app


@pytest.fixture
def keys_folder(tmp_path: Path) -> Path:
    """One small Markdown file: enough for a collection to index and answer."""
    root = tmp_path / "docs"
    root.mkdir()
    (root / "keys.md").write_text(KEYS_MD)
    return root


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return build_corpus(tmp_path / "corpus")
