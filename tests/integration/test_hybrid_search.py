"""Hybrid search on the real model and store: what only keywords find, what only meaning finds, and both.

Also the backfill that gives a collection made before hybrid search its keyword vectors without
re-embedding anything, and filters under every mode."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from qdrant_client import models
from sqlalchemy import update

from semantik.core.context import Semantik, open_semantik
from semantik.core.db.models import Collection, Operation
from semantik.core.errors import InvalidInputError
from semantik.core.search.fusion import Fusion
from semantik.core.services import backfill, collections, search
from semantik.core.services.generations import qdrant_collection_name
from semantik.core.services.search import Mode, SearchOptions
from semantik.core.settings import Settings
from semantik.core.store.backend import StoreEngine
from semantik.core.store.vectors import SearchFilter, VectorStore
from semantik.gateway.backfills import Backfills
from tests.integration.conftest import CountingEmbedder
from tests.support.indexing import index_folder, point_count
from tests.support.tiny_models import build_tiny_cross_encoder

FILES = {
    # An exact identifier among look-alike catalogue lines: only keywords tell these apart.
    "parts/bearing.txt": "Catalogue entry: spare part QX-2291-B, a sealed bearing for the left wheel hub.",
    "parts/seal.txt": "Catalogue entry: spare part QX-2290-A, a rubber seal for the right wheel hub.",
    "parts/axle.txt": "Catalogue entry: spare part QX-2292-C, a steel axle for the rear wheel hub.",
    "parts/washer.txt": "Catalogue entry: spare part QX-2293-D, a brass washer for the front wheel hub.",
    # A paraphrase: no word of the query below occurs in it.
    "policies/expenses.md": "Reimbursement: submit travel receipts within thirty days and finance repays you.",
    "policies/laptops.md": "Engineers receive a new laptop every three years from the IT department.",
    "policies/oncall.md": "The on-call engineer acknowledges pages within five minutes, day or night.",
}
IDENTIFIER_QUERY = "QX-2291-B"
PARAPHRASE_QUERY = "how do I get my money back after a business trip"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    for path, text in FILES.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text + "\n")
    return root


async def paths(app: Semantik, query: str, k: int = 3, **options: object) -> list[str]:
    result = await search.search(app, "docs", query, k=k, options=SearchOptions(**options))  # type: ignore[arg-type]
    return [hit.path for hit in result.hits]


async def test_sparse_finds_the_identifier_dense_the_paraphrase_and_hybrid_both(
    semantik: Semantik, folder: Path
) -> None:
    await index_folder(semantik, "docs", folder)

    assert (await paths(semantik, IDENTIFIER_QUERY, k=1, mode=Mode.SPARSE)) == ["parts/bearing.txt"]
    assert (await paths(semantik, IDENTIFIER_QUERY, k=1, mode=Mode.DENSE)) != ["parts/bearing.txt"]
    assert "policies/expenses.md" not in await paths(semantik, PARAPHRASE_QUERY, k=7, mode=Mode.SPARSE)
    assert (await paths(semantik, PARAPHRASE_QUERY, k=1, mode=Mode.DENSE)) == ["policies/expenses.md"]

    for fusion in Fusion:
        assert "parts/bearing.txt" in await paths(semantik, IDENTIFIER_QUERY, k=2, fusion=fusion)
        assert "policies/expenses.md" in await paths(semantik, PARAPHRASE_QUERY, k=2, fusion=fusion)
    # DBSF sees the keyword score's margin, so the exact identifier comes first.
    assert (await paths(semantik, IDENTIFIER_QUERY, k=1, fusion=Fusion.DBSF)) == ["parts/bearing.txt"]


async def test_the_default_is_hybrid_and_hits_explain_both_retrievers(semantik: Semantik, folder: Path) -> None:
    await index_folder(semantik, "docs", folder)

    # Without feedback, so the dense run is the plain query's (feedback moves it: the next test).
    result = await search.search(semantik, "docs", IDENTIFIER_QUERY, k=3, options=SearchOptions(feedback=0))
    assert result.modes == {"docs": Mode.HYBRID} and result.notes == []
    top = result.hits[0]
    assert top.path == "parts/bearing.txt" and top.collection == "docs"
    by_retriever = {c.retriever: c for c in top.explain}
    assert by_retriever["sparse"].rank == 1
    dense = await search.search(semantik, "docs", IDENTIFIER_QUERY, k=7, options=SearchOptions(mode=Mode.DENSE))
    dense_rank = [hit.path for hit in dense.hits].index("parts/bearing.txt") + 1
    assert by_retriever["dense"].rank == dense_rank
    assert by_retriever["dense"].score == pytest.approx(dense.hits[dense_rank - 1].score)
    # The snippet's highlights come from the same analyzer: the identifier's pieces are marked.
    marked = {top.snippet[a:b].lower() for a, b in top.highlights}
    assert {"qx", "2291"} <= marked


async def test_feedback_moves_the_dense_run_towards_the_best_fused_chunks(semantik: Semantik, folder: Path) -> None:
    await index_folder(semantik, "docs", folder)

    def dense_ranks(result: search.SearchResult) -> dict[str, int]:
        return {hit.path: c.rank for hit in result.hits for c in hit.explain if c.retriever == "dense"}

    query = "wheel hub"
    plain = await search.search(semantik, "docs", query, k=7, options=SearchOptions(feedback=0))
    moved = await search.search(semantik, "docs", query, k=7, options=SearchOptions(feedback=1, feedback_weight=5))
    # Fed back with a large weight, the best fused chunk is its own nearest neighbour: dense ranks it first.
    assert dense_ranks(moved)[plain.hits[0].path] == 1
    assert dense_ranks(moved) != dense_ranks(plain)
    dense_only = await search.search(semantik, "docs", query, k=7, options=SearchOptions(mode=Mode.DENSE))
    assert {c.retriever for hit in dense_only.hits for c in hit.explain} == {"dense"}


async def test_stemmed_query_words_highlight_their_forms(semantik: Semantik, folder: Path) -> None:
    await index_folder(semantik, "docs", folder)

    hit = (await search.search(semantik, "docs", "acknowledging a page", k=1)).hits[0]
    assert hit.path == "policies/oncall.md"
    assert {hit.snippet[a:b] for a, b in hit.highlights} == {"acknowledges", "pages"}


@pytest.mark.parametrize("mode", list(Mode))
async def test_filters_apply_under_every_mode(semantik: Semantik, folder: Path, mode: Mode) -> None:
    await index_folder(semantik, "docs", folder)

    for query in (IDENTIFIER_QUERY, "wheel hub catalogue"):
        under = await paths(semantik, query, k=10, mode=mode, search_filter=SearchFilter("policies"))
        assert all(path.startswith("policies/") for path in under), (mode, under)
        markdown = await paths(semantik, query, k=10, mode=mode, search_filter=SearchFilter(None, ("md",)))
        assert all(path.endswith(".md") for path in markdown), (mode, markdown)
    parts = await paths(semantik, "wheel hub catalogue", k=10, mode=mode, search_filter=SearchFilter("parts"))
    assert sorted(parts) == sorted(p for p in FILES if p.startswith("parts/"))


async def test_score_thresholds_apply_on_each_modes_own_scale(semantik: Semantik, folder: Path) -> None:
    await index_folder(semantik, "docs", folder)

    sparse = await search.search(semantik, "docs", IDENTIFIER_QUERY, k=7, options=SearchOptions(mode=Mode.SPARSE))
    cut = (sparse.hits[0].score + sparse.hits[1].score) / 2
    kept = await paths(semantik, IDENTIFIER_QUERY, k=7, mode=Mode.SPARSE, score_threshold=cut)
    assert kept == ["parts/bearing.txt"]
    # Hybrid: on the fused score (DBSF here; RRF ties the identifier with its look-alike, see fusion.py).
    hybrid = await search.search(semantik, "docs", IDENTIFIER_QUERY, k=7, options=SearchOptions(fusion=Fusion.DBSF))
    cut = (hybrid.hits[0].score + hybrid.hits[1].score) / 2
    kept = await paths(semantik, IDENTIFIER_QUERY, k=7, fusion=Fusion.DBSF, score_threshold=cut)
    assert kept == [hybrid.hits[0].path]


@pytest.fixture
async def local_mode(settings: Settings, embedder: CountingEmbedder) -> AsyncIterator[Semantik]:
    """Semantik on qdrant-client's local mode: legacy collections are in its stores (and a server's) only,
    as an edge store is made by this version or migrated from local mode after it."""
    local = settings.model_copy(update={"store_engine": StoreEngine.QDRANT_LOCAL})
    async with open_semantik(local, embedder=embedder) as app:
        yield app


async def make_legacy(app: Semantik, name: str) -> None:
    """Turn an indexed collection into what a version before hybrid search left: one unnamed dense
    vector per point under the stable name, and no keyword statistics."""
    row = await collections.load_collection(app, name)
    assert isinstance(app.store, VectorStore)
    client = app.store.client
    points, _ = await client.scroll(row.qdrant_collection, limit=10_000, with_payload=True, with_vectors=True)
    await client.delete_collection(row.qdrant_collection)
    await client.create_collection(
        row.qdrant_collection, vectors_config=models.VectorParams(size=row.dimension, distance=models.Distance.COSINE)
    )
    await client.upsert(
        row.qdrant_collection,
        points=[
            models.PointStruct(id=p.id, vector=p.vector["dense"], payload=p.payload)  # type: ignore[index]
            for p in points
        ],
        wait=True,
    )
    async with app.sessions.begin() as session:
        await session.execute(
            update(Collection)
            .where(Collection.id == row.id)
            .values(sparse_language=None, sparse_terms=0, sparse_chunks=0)
        )


async def test_a_collection_from_before_hybrid_search_answers_dense_only_until_backfilled(
    local_mode: Semantik, folder: Path, embedder: CountingEmbedder
) -> None:
    semantik = local_mode
    await index_folder(semantik, "docs", folder)
    await make_legacy(semantik, "docs")
    legacy = await collections.load_collection(semantik, "docs")
    before = {p.id: p.vector for p in (await semantik.store.scroll(legacy.qdrant_collection, limit=100))[0]}
    chunks = await point_count(semantik, "docs")

    answer = await search.search(semantik, "docs", IDENTIFIER_QUERY, k=3, options=SearchOptions(mode=Mode.SPARSE))
    assert answer.modes == {"docs": Mode.DENSE}
    assert answer.hits and "keyword vectors are not built yet" in answer.notes[0]
    assert not (await collections.get_collection(semantik, "docs")).keyword_index

    embedded = embedder.texts
    sweeper = Backfills(semantik)
    await sweeper.sweep()
    await sweeper.wait()

    assert embedder.texts == embedded  # nothing re-embedded
    row = await collections.load_collection(semantik, "docs")
    assert row.sparse_language == "english" and row.generation == legacy.generation + 1
    assert row.sparse_chunks == chunks and row.sparse_terms > 0
    assert await point_count(semantik, "docs") == chunks
    after = (await semantik.store.scroll(row.qdrant_collection, limit=100))[0]
    # The same vectors, not re-embedded; local mode re-normalises them on write, which moves the last bits by
    # however this CPU's numpy sums (pytest.approx compares flat lists, not a dict of them).
    vectors = {p.id: p.vector for p in after}
    assert vectors.keys() == before.keys()
    for point, vector in before.items():
        assert vectors[point] == pytest.approx(vector, abs=1e-6), point
    # The stable name now points at the new generation, and the old copy is gone.
    aliases = await semantik.store.aliases()
    assert aliases[qdrant_collection_name("docs")] == row.qdrant_collection
    assert await semantik.store.collection_names() == {row.qdrant_collection}
    result = await search.search(semantik, "docs", IDENTIFIER_QUERY, k=1, options=SearchOptions(mode=Mode.SPARSE))
    assert result.modes == {"docs": Mode.SPARSE} and result.notes == []
    assert [hit.path for hit in result.hits] == ["parts/bearing.txt"]
    async with semantik.sessions() as session:
        operation = (await session.execute(Operation.__table__.select())).all()
    assert [(o.kind, o.status) for o in operation if o.kind == backfill.KIND] == [(backfill.KIND, "succeeded")]
    # Nothing more to do: a second sweep opens nothing.
    assert await backfill.open_due_backfills(semantik) == {}


async def test_a_language_change_rebuilds_keyword_vectors_from_stored_text(
    semantik: Semantik, folder: Path, embedder: CountingEmbedder
) -> None:
    await index_folder(semantik, "docs", folder)
    spec = collections.CollectionSpec(
        name="docs", source_path=str(folder), search=collections.SearchSpec(language="german")
    )
    await collections.ensure_collection(semantik, spec)
    row = await collections.load_collection(semantik, "docs")
    assert (row.language, row.sparse_language) == ("german", "english")
    embedded = embedder.texts

    operation = await backfill.open_backfill(semantik, "docs")
    assert operation is not None
    await backfill.run_backfill(semantik, operation.id)

    assert embedder.texts == embedded
    row = await collections.load_collection(semantik, "docs")
    assert row.sparse_language == "german"
    # German stopwords now: "die" is one, so a query of it finds nothing by keywords.
    assert await paths(semantik, "die", k=3, mode=Mode.SPARSE) == []


ANIMALS = {
    "fox.txt": "the quick fox jumps over the lazy dog",
    "cats.txt": "cats and dogs in the rain",
    "fruit.txt": "apple and banana fruit bread",
    "weather.txt": "the weather is rain over the fox",
}


async def test_a_reranker_reorders_the_fused_hits_by_its_own_scores(
    settings: Settings, embedder: CountingEmbedder, tmp_path: Path
) -> None:
    # A tiny randomly initialised cross-encoder: this checks the plumbing (order, explain, fallback), not quality.
    model = build_tiny_cross_encoder(tmp_path / "reranker")
    folder = tmp_path / "animals"
    folder.mkdir()
    for name, text in ANIMALS.items():
        (folder / name).write_text(text + "\n")
    query = "where is the lazy dog"
    with_reranker = settings.model_copy(update={"rerank_model_path": model, "rerank_timeout_seconds": 30.0})
    async with open_semantik(with_reranker, embedder=embedder) as app:
        await index_folder(app, "docs", folder)
        fused = await search.search(app, "docs", query, k=4, options=SearchOptions(rerank=False))
        reranked = await search.search(app, "docs", query, k=4)
        reranker = await app.reranker()
        assert reranker is not None

        assert not fused.reranked and reranked.reranked and reranked.notes == []
        scores = dict(
            zip((h.path for h in fused.hits), reranker.score(query, [h.text for h in fused.hits]), strict=True)
        )
        assert [h.path for h in reranked.hits] == sorted(scores, key=lambda p: -scores[p])
        assert [h.score for h in reranked.hits] == pytest.approx(sorted(scores.values(), reverse=True), abs=1e-5)
        assert [c.rank for h in reranked.hits for c in h.explain if c.retriever == "rerank"] == [1, 2, 3, 4]
        assert sorted(h.path for h in reranked.hits) == sorted(h.path for h in fused.hits)

    hurried = with_reranker.model_copy(update={"rerank_timeout_seconds": 1e-6})
    async with open_semantik(hurried, embedder=embedder) as app:
        late = await search.search(app, "docs", query, k=4)
        assert not late.reranked and "fused order" in late.notes[0]
        assert [h.path for h in late.hits] == [h.path for h in fused.hits]

    async with open_semantik(settings, embedder=embedder) as app:
        with pytest.raises(InvalidInputError, match="SEMANTIK_RERANK_MODEL_PATH") as refused:
            await search.search(app, "docs", query, options=SearchOptions(rerank=True))
        assert refused.value.field == "rerank"


async def test_a_failed_backfill_is_recorded_and_not_retried_every_sweep(local_mode: Semantik, folder: Path) -> None:
    semantik = local_mode
    await index_folder(semantik, "docs", folder)
    await make_legacy(semantik, "docs")
    row = await collections.load_collection(semantik, "docs")
    await semantik.store.drop_collection(row.qdrant_collection)  # nothing left to copy from

    sweeper = Backfills(semantik)
    await sweeper.sweep()
    await sweeper.wait()
    await sweeper.sweep()
    await sweeper.wait()

    async with semantik.sessions() as session:
        operations = (await session.execute(Operation.__table__.select())).all()
    backfills = [(o.status, o.error) for o in operations if o.kind == backfill.KIND]
    assert len(backfills) == 1 and backfills[0][0] == "failed" and "backfill failed" in backfills[0][1]
    # The collection is as it was: still answering (nothing), still due a backfill.
    assert backfill.needs_backfill(await collections.load_collection(semantik, "docs"))


async def test_collections_made_without_a_language_take_the_settings_one(
    settings: Settings, embedder: CountingEmbedder, folder: Path
) -> None:
    german = settings.model_copy(update={"language": "german"})
    async with open_semantik(german, embedder=embedder) as app:
        await collections.create_collection(app, collections.CollectionSpec(name="docs", source_path=str(folder)))
        await collections.create_collection(
            app,
            collections.CollectionSpec(
                name="named", source_path=str(folder), search=collections.SearchSpec(language="english")
            ),
        )
        assert (await collections.get_collection(app, "docs")).language == "german"
        assert (await collections.get_collection(app, "named")).language == "english"
        # The operator's ensure without a change of search keeps the language it has.
        await collections.ensure_collection(app, collections.CollectionSpec(name="named", source_path=str(folder)))
        assert (await collections.get_collection(app, "named")).language == "english"
