"""The parts one Semantik process holds open: settings, the metadata DB, the store, the embedder."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from semantik.core.db.engine import create_engine, migrate, session_factory
from semantik.core.embedding import Embedder, model_for
from semantik.core.pipeline.sandbox import ExtractionPool
from semantik.core.pipeline.tokens import TextTokenizer, load_tokenizer
from semantik.core.settings import Mode, Settings
from semantik.core.store import metadata
from semantik.core.store.backend import StoreEngine, VectorBackend, open_backend

if TYPE_CHECKING:
    # torch and transformers: imported when a reranker is first loaded, not by every CLI command.
    from semantik.core.search.rerank import Reranker

log = logging.getLogger(__name__)


@dataclass
class Semantik:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    store: VectorBackend
    _embedder: Embedder | None = None
    _tokenizer: TextTokenizer | None = None
    _load_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _remote_embedders: dict[str, Embedder] = field(default_factory=dict)
    _extraction: ExtractionPool | None = None
    _reranker: Reranker | None = None
    # Its own lock: loading a reranker must not hold up the embedder's first use.
    _rerank_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def embedder(self) -> Embedder:
        """Loaded (or connected) on first use, so `collections list` never pays for a model."""
        async with self._load_lock:
            if self._embedder is None:
                if self.settings.embedder_url:
                    from semantik.core.embedding.client import HttpEmbedder

                    self._embedder = await HttpEmbedder.connect(
                        self.settings.embedder_url, token=self._embedder_token()
                    )
                else:
                    self._embedder = await asyncio.to_thread(self._load_embedder)
            return self._embedder

    def _embedder_token(self) -> str | None:
        # One token for every embedder of a deployment: the query embedder and the operator's.
        token = self.settings.embedder_token
        return token.get_secret_value() if token else None

    async def embedder_at(self, url: str | None) -> Embedder:
        """The embedder serving a collection's model (cluster mode: one per model); None: this process's."""
        if url is None:
            return await self.embedder()
        async with self._load_lock:
            if url not in self._remote_embedders:
                from semantik.core.embedding.client import HttpEmbedder

                self._remote_embedders[url] = await HttpEmbedder.connect(url, token=self._embedder_token())
            return self._remote_embedders[url]

    async def tokenizer(self) -> TextTokenizer:
        async with self._load_lock:
            if self._tokenizer is None:
                path = self.settings.resolved_model_path
                self._tokenizer = await asyncio.to_thread(load_tokenizer, path)
            return self._tokenizer

    async def extraction(self) -> ExtractionPool:
        """The processes that read and chunk files; made on first use, their children on first file."""
        tokenizer = await self.tokenizer()
        async with self._load_lock:
            if self._extraction is None:
                self._extraction = ExtractionPool(tokenizer, self.settings.extraction_limits)
            return self._extraction

    async def reranker(self) -> Reranker | None:
        """The cross-encoder of SEMANTIK_RERANK_MODEL_PATH, loaded on first use (a search that reranks), in a
        thread; None when unset. A bad path raises ModelUnavailableError each time and is not cached, so
        fixing the files needs no restart."""
        path = self.settings.rerank_model_path
        if path is None:
            return None
        async with self._rerank_lock:
            if self._reranker is None:
                from semantik.core.search.rerank import Reranker

                self._reranker = await asyncio.to_thread(
                    Reranker.load,
                    path,
                    device=self.settings.rerank_device,
                    batch_size=self.settings.rerank_batch_size,
                )
                log.info("loaded reranker model=%s device=%s", self._reranker.model_name, self.settings.rerank_device)
            return self._reranker

    def _load_embedder(self) -> Embedder:
        from semantik.core.embedding.engine import EmbeddingEngine, TransformerEmbedder

        settings = self.settings
        engine = EmbeddingEngine.load(
            model_for(settings.model_name),
            settings.resolved_model_path,
            device=settings.device,
            precision=settings.dtype,
            max_batch_tokens=settings.embed_batch_tokens,
            backend=settings.embed_backend,
            onnx_cache_dir=settings.resolved_onnx_cache_dir,
        )
        return TransformerEmbedder(engine)


@asynccontextmanager
async def open_semantik(
    settings: Settings, *, embedder: Embedder | None = None, tokenizer: TextTokenizer | None = None
) -> AsyncIterator[Semantik]:
    """Open every part; an `embedder` passed in is shared and stays open (tests, the gateway's reuse)."""
    engine = create_engine(
        settings.resolved_database_url,
        lock_timeout_seconds=settings.database_lock_timeout_seconds,
        idle_in_transaction_seconds=settings.database_idle_in_transaction_seconds,
    )
    store: VectorBackend | None = None
    try:
        await migrate(engine)
        sessions = session_factory(engine)
        if settings.qdrant_url is None and settings.store_engine is StoreEngine.EDGE:
            from semantik.core.store.migrate import migrate_on_open

            await migrate_on_open(settings.resolved_qdrant_path, settings.resolved_store_path)
        store = open_backend(
            url=settings.qdrant_url,
            path=settings.resolved_store_path,
            api_key=settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None,
            engine=settings.store_engine,
            memory=settings.store_memory,
        )
        if settings.qdrant_url is None and settings.mode is Mode.EMBEDDED:
            # The embedded store is locked to this process, and in embedded mode this process runs every
            # operation: one still marked active was cut off when a process died, so say so instead of
            # blocking the collection forever. In service mode workers run them and outlive a gateway
            # restart (the chart's qdrant.mode embedded): their operations go on.
            async with sessions.begin() as session:
                interrupted = await metadata.fail_interrupted_operations(
                    session, "interrupted: the process running it stopped"
                )
            if interrupted:
                log.warning("marked interrupted operations as failed count=%d", interrupted)
        app = Semantik(settings, engine, sessions, store, _embedder=embedder, _tokenizer=tokenizer)
        try:
            yield app
        finally:
            if embedder is None and app._embedder is not None:
                await app._embedder.aclose()
            for remote in app._remote_embedders.values():
                await remote.aclose()
            if app._extraction is not None:
                await asyncio.to_thread(app._extraction.close)
            if app._reranker is not None:
                app._reranker.close()
    finally:
        if store is not None:
            await store.close()
        await engine.dispose()
