"""One contract for every vector store engine: what indexing, search, reindex and backfill rely on.

Run against each engine that runs here: edge (qdrant-edge in process; its collections warm or low on memory)
and qdrant-local (qdrant-client's local mode). A Qdrant server cannot run on this machine; the cluster tests
exercise that engine.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from semantik.core.errors import BackendUnavailableError
from semantik.core.search.sparse import SparseVector
from semantik.core.store.backend import StoreEngine, StoreMemory, VectorBackend, open_backend
from semantik.core.store.vectors import DENSE, SPARSE, ChunkPoint, RetrieverQuery, SearchFilter

NAME = "semantik-docs"
DIM = 4


def point_id(n: int) -> str:
    return str(uuid.UUID(int=n + 1))


def unit(*xs: float) -> list[float]:
    norm = math.sqrt(sum(x * x for x in xs))
    return [x / norm for x in xs]


def chunk(n: int, path: str, vector: list[float], terms: dict[int, float], text: str = "") -> ChunkPoint:
    indices = tuple(sorted(terms))
    return ChunkPoint(
        id=point_id(n),
        vector=vector,
        path=path,
        chunk_index=0,
        text=text or path,
        start=0,
        end=len(text or path),
        sparse=SparseVector(indices, tuple(terms[i] for i in indices)),
    )


CORPUS = [
    chunk(0, "docs/api/auth.md", unit(1, 0, 0, 0), {1: 1.0, 7: 1.0}),
    chunk(1, "docs/api/errors.md", unit(1, 1, 0, 0), {2: 1.0, 7: 1.0}),
    chunk(2, "docs/guide.txt", unit(0, 1, 0, 0), {3: 1.0, 7: 1.0}),
    chunk(3, "src/main.py", unit(0, 0, 1, 0), {4: 1.0, 7: 1.0}),
    chunk(4, "LICENSE", unit(0, 0, 0, 1), {5: 1.0, 7: 1.0}),
]


Engine = tuple[StoreEngine, StoreMemory]


@pytest.fixture(
    params=[
        pytest.param((StoreEngine.EDGE, StoreMemory.WARM), id="edge"),
        pytest.param((StoreEngine.EDGE, StoreMemory.LOW), id="edge-low-memory"),
        pytest.param((StoreEngine.QDRANT_LOCAL, StoreMemory.WARM), id="qdrant-local"),
    ]
)
def engine(request: pytest.FixtureRequest) -> Engine:
    engine: Engine = request.param
    return engine


def open_store(engine: Engine, path: Path) -> VectorBackend:
    return open_backend(url=None, path=path, engine=engine[0], memory=engine[1])


@pytest.fixture
async def store(engine: Engine, tmp_path: Path) -> AsyncIterator[VectorBackend]:
    opened = open_store(engine, tmp_path / "store")
    try:
        yield opened
    finally:
        await opened.close()


async def filled(store: VectorBackend, name: str = NAME) -> VectorBackend:
    await store.ensure_collection(name, DIM)
    await store.upsert(name, CORPUS)
    return store


async def ranked(store: VectorBackend, query: RetrieverQuery, search_filter: SearchFilter | None = None) -> list[str]:
    runs = await store.retrieve(NAME, [query], limit=10, search_filter=search_filter)
    paths = {p.id: p.path for p in CORPUS}
    return [paths[c.id] for c in runs[query.retriever]]


async def test_points_written_are_counted_read_back_and_replaced_by_id(store: VectorBackend) -> None:
    await filled(store)
    await store.ensure_collection(NAME, DIM)  # a second ensure keeps what is there

    assert await store.collection_names() == {NAME}
    assert await store.count(NAME) == len(CORPUS)
    page, offset = await store.scroll(NAME, limit=3)
    rest, end = await store.scroll(NAME, limit=10, offset=offset)
    assert offset is not None and end is None
    stored = {p.id: p for p in [*page, *rest]}
    assert set(stored) == {p.id for p in CORPUS}
    first = stored[point_id(0)]
    assert first.vector == pytest.approx(CORPUS[0].vector, abs=1e-6)
    assert first.payload == CORPUS[0].payload()
    assert first.sparse == CORPUS[0].sparse

    replaced = chunk(0, "docs/api/auth.md", unit(0, 0, 1, 1), {9: 2.0}, text="rewritten")
    await store.upsert(NAME, [replaced])
    assert await store.count(NAME) == len(CORPUS)
    assert await store.dense_vectors(NAME, [point_id(0), point_id(99)]) == [pytest.approx(replaced.vector, abs=1e-6)]
    page, _ = await store.scroll(NAME, limit=10)
    assert {p.id: p.payload["text"] for p in page}[point_id(0)] == "rewritten"


async def test_deleted_points_are_gone_and_a_dropped_collection_too(store: VectorBackend) -> None:
    await filled(store)
    await store.delete(NAME, [point_id(0), point_id(3)])

    assert await store.count(NAME) == 3
    assert await ranked(store, RetrieverQuery(DENSE, unit(1, 0.5, 0, 0.1))) == [
        "docs/api/errors.md",
        "docs/guide.txt",
        "LICENSE",
    ]
    await store.drop_collection(NAME)
    await store.drop_collection(NAME)  # dropping what is gone is not an error
    assert await store.collection_names() == set()


async def test_dense_and_sparse_runs_rank_as_a_user_expects(store: VectorBackend) -> None:
    await filled(store)

    dense = await store.retrieve(NAME, [RetrieverQuery(DENSE, unit(1, 0.2, 0, 0))], limit=3)
    assert [c.payload["path"] for c in dense[DENSE]] == ["docs/api/auth.md", "docs/api/errors.md", "docs/guide.txt"]
    assert dense[DENSE][0].score == pytest.approx(1 / math.sqrt(1.04), abs=1e-5)  # cosine
    # IDF: term 3 is in one chunk of five, term 7 in all, so one rare match outweighs the common one.
    query = RetrieverQuery(SPARSE, SparseVector((3, 7), (1.0, 1.0)))
    both = await store.retrieve(NAME, [RetrieverQuery(DENSE, unit(0, 0, 0, 1)), query], limit=2)
    assert both[SPARSE][0].payload["path"] == "docs/guide.txt"
    rare, common = math.log(1 + 4.5 / 1.5), math.log(1 + 0.5 / 5.5)
    assert [c.score for c in both[SPARSE]] == pytest.approx([rare + common, common], rel=1e-4)
    assert both[DENSE][0].payload["path"] == "LICENSE"
    # A keyword query of stopwords has no terms: nothing is asked, nothing found.
    empty = await store.retrieve(NAME, [RetrieverQuery(SPARSE, SparseVector((), ()))], limit=3)
    assert empty == {SPARSE: []}
    thresholded = await store.retrieve(NAME, [RetrieverQuery(DENSE, unit(1, 0, 0, 0), score_threshold=0.5)], limit=5)
    assert [c.payload["path"] for c in thresholded[DENSE]] == ["docs/api/auth.md", "docs/api/errors.md"]


async def test_a_retriever_asked_for_a_few_chunks_returns_the_nearest_few(store: VectorBackend) -> None:
    # Engines that search compressed copies rank near ties loosely; asked for few, they must still answer with
    # the true nearest, as exact cosines over the float vectors rank them.
    rng = np.random.default_rng(16)
    vectors = rng.standard_normal((2000, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    await store.ensure_collection("many", 384)
    points = [chunk(n, f"f/{n}.md", vector.tolist(), {1: 1.0}) for n, vector in enumerate(vectors)]
    for start in range(0, len(points), 500):
        await store.upsert("many", points[start : start + 500])
    for probe in range(0, 2000, 100):
        query = vectors[probe] + 0.6 * rng.standard_normal(384).astype(np.float32)
        query /= np.linalg.norm(query)
        exact = np.argsort(-(vectors @ query), kind="stable")[:5]
        found = await store.retrieve("many", [RetrieverQuery(DENSE, query.tolist())], limit=5, payload_keys=())
        assert [c.id for c in found[DENSE]] == [point_id(int(n)) for n in exact], probe
        assert [c.score for c in found[DENSE]] == pytest.approx((vectors[exact] @ query).tolist(), abs=1e-4)


async def test_a_search_reads_the_named_payload_keys_of_candidates_and_the_whole_payload_of_its_hits(
    store: VectorBackend,
) -> None:
    await filled(store)
    query = RetrieverQuery(DENSE, unit(1, 0.2, 0, 0))

    runs = await store.retrieve(NAME, [query], limit=2, payload_keys=("path",))
    assert [c.payload for c in runs[DENSE]] == [{"path": "docs/api/auth.md"}, {"path": "docs/api/errors.md"}]
    payloads = await store.payloads(NAME, [point_id(1), point_id(99), point_id(0)])
    assert payloads == {point_id(0): CORPUS[0].payload(), point_id(1): CORPUS[1].payload()}
    assert await store.payloads(NAME, []) == {}


async def test_filters_by_directory_file_and_extension(store: VectorBackend) -> None:
    await filled(store)
    everything = RetrieverQuery(DENSE, unit(1, 1, 1, 1))

    assert sorted(await ranked(store, everything, SearchFilter(path_prefix="docs/api/"))) == [
        "docs/api/auth.md",
        "docs/api/errors.md",
    ]
    assert await ranked(store, everything, SearchFilter(path_prefix="docs/guide.txt")) == ["docs/guide.txt"]
    assert await ranked(store, everything, SearchFilter(path_prefix="doc")) == []  # a directory, not a prefix
    assert sorted(await ranked(store, everything, SearchFilter(extensions=(".TXT", "")))) == [
        "LICENSE",
        "docs/guide.txt",
    ]
    both = SearchFilter(path_prefix="docs", extensions=("md",))
    assert await store.count(NAME, both) == 2
    sparse = await ranked(store, RetrieverQuery(SPARSE, SparseVector((7,), (1.0,))), both)
    assert sorted(sparse) == ["docs/api/auth.md", "docs/api/errors.md"]


async def test_an_alias_swap_moves_readers_and_retires_old_generations(store: VectorBackend) -> None:
    await filled(store)  # a first generation, made under the stable name
    await store.ensure_collection(f"{NAME}.g2", DIM)
    await store.upsert(f"{NAME}.g2", CORPUS[:2])

    await store.point_alias(NAME, f"{NAME}.g2")

    assert await store.aliases() == {NAME: f"{NAME}.g2"}
    assert await store.collection_names() == {f"{NAME}.g2"}
    assert await store.count(NAME) == 2
    await store.ensure_collection(NAME, DIM)  # the alias counts as existing: nothing made under it
    assert await store.collection_names() == {f"{NAME}.g2"}

    await store.ensure_collection(f"{NAME}.g3", DIM)
    await store.upsert(f"{NAME}.g3", CORPUS[:3])
    await store.point_alias(NAME, f"{NAME}.g3")
    await store.point_alias(NAME, f"{NAME}.g3")  # again: nothing changes
    assert await store.count(NAME) == 3
    assert await store.drop_generations(NAME, keep={f"{NAME}.g3"}) == [f"{NAME}.g2"]
    assert await store.aliases() == {NAME: f"{NAME}.g3"}

    assert await store.drop_generations(NAME) == [f"{NAME}.g3"]
    assert await store.aliases() == {} and await store.collection_names() == set()


async def test_the_store_outlives_its_process_and_admits_one_opener(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "store"
    first = await filled(open_store(engine, path))
    await first.ensure_collection(f"{NAME}.g2", DIM)
    await first.point_alias("other", f"{NAME}.g2")
    try:
        with pytest.raises(BackendUnavailableError, match="in use by another Semantik process"):
            open_store(engine, path)
    finally:
        await first.close()

    again = open_store(engine, path)
    try:
        assert await again.count(NAME) == len(CORPUS)
        assert await again.aliases() == {"other": f"{NAME}.g2"}
        assert await again.healthy()
    finally:
        await again.close()
