"""Search: the one path the CLI, the gateway and the bench share.

Per collection, the query is embedded with the collection's model (dense) and analysed with its keyword
analyzer (sparse); each retriever's best chunks come back in one store round trip and are fused here, not
in Qdrant, so every hit can say where each retriever ranked it (`explain`) and weights really apply. Hits
are then collapsed per file, optionally reranked by a cross-encoder, and given highlighted snippets.
Several collections are merged by rank fusion or normalised scores, never by comparing raw scores.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from semantik.core.context import Semantik
from semantik.core.db.models import Collection
from semantik.core.embedding import TextKind
from semantik.core.errors import InvalidInputError, NotFoundError
from semantik.core.pipeline.ids import PointIdScheme, file_key
from semantik.core.search.analyzer import Analyzer, analyzer_for
from semantik.core.search.fusion import DEFAULT_RRF_K, Contribution, Fused, Fusion, Ranked, fuse
from semantik.core.search.snippets import make_snippet
from semantik.core.search.sparse import query_vector
from semantik.core.services.collections import validate_name
from semantik.core.store import metadata
from semantik.core.store.vectors import DENSE, SPARSE, RetrieverQuery, ScoredChunk, SearchFilter

MAX_K = 100
MAX_COLLECTIONS = 10
DEFAULT_PREFETCH = 100
"""Chunks each retriever hands to fusion; tuned on the development collection (docs/search.md)."""
MAX_PREFETCH = 1000
DEFAULT_FEEDBACK = 3
DEFAULT_FEEDBACK_WEIGHT = 1.0
MAX_FEEDBACK = 20
MAX_FETCH = 10_000
"""The most chunks one retriever is asked for while collapsing to files needs more."""
COLLAPSE_KEYS = ("path",)
"""All a candidate needs of its payload until it is kept: the file it collapses into."""


def candidate_payload_keys(scheme: PointIdScheme) -> tuple[str, ...]:
    """What each candidate is read with: BY_FILE ids carry their file, so nothing; NAMED ones need `path`."""
    return () if scheme is PointIdScheme.BY_FILE else COLLAPSE_KEYS


class Mode(StrEnum):
    DENSE = "dense"
    SPARSE = "sparse"
    HYBRID = "hybrid"

    @property
    def retrievers(self) -> tuple[str, ...]:
        return {Mode.DENSE: (DENSE,), Mode.SPARSE: (SPARSE,), Mode.HYBRID: (DENSE, SPARSE)}[self]


@dataclass(frozen=True, slots=True)
class SearchOptions:
    mode: Mode | None = None
    """None: hybrid where the collection has keyword vectors, else dense."""
    fusion: Fusion = Fusion.DBSF
    rrf_k: int = DEFAULT_RRF_K
    weights: Mapping[str, float] | None = None
    """Per retriever (`dense`, `sparse`); 1.0 each by default."""
    prefetch: int = DEFAULT_PREFETCH
    score_threshold: float | None = None
    """On the mode's own score: cosine (dense), BM25 (sparse), the fused score (hybrid)."""
    search_filter: SearchFilter | None = None
    per_document: int | None = 1
    rerank: bool | None = None
    """None: rerank when a reranker is configured; True without one is refused."""
    feedback: int = DEFAULT_FEEDBACK
    """Hybrid only: the best fused chunks whose dense vectors are added to the query's for a second dense
    run (pseudo-relevance feedback); 0: off."""
    feedback_weight: float = DEFAULT_FEEDBACK_WEIGHT


@dataclass(frozen=True, slots=True)
class Hit:
    collection: str
    score: float
    path: str
    chunk_index: int
    text: str
    snippet: str
    highlights: list[tuple[int, int]]
    """Character spans in `snippet` of the words that match the query's terms, for bold or <mark>."""
    start: int
    end: int
    heading: str | None
    explain: tuple[Contribution, ...] = ()
    """Each retriever's rank and raw score for this chunk; `rerank` and `collection` when they applied."""


@dataclass(frozen=True, slots=True)
class SearchResult:
    hits: list[Hit]
    modes: dict[str, Mode]
    """The mode each collection was searched in (dense where keyword vectors are not built yet)."""
    fusion: Fusion
    reranked: bool
    notes: list[str] = field(default_factory=list)


async def search(
    app: Semantik, name: str, query: str, *, k: int = 10, options: SearchOptions | None = None
) -> SearchResult:
    """Ranked hits of one collection; by default one per file (its best chunk), as a search engine lists pages."""
    return await search_collections(app, [name], query, k=k, options=options, names_field="name")


async def search_collections(
    app: Semantik,
    names: Sequence[str],
    query: str,
    *,
    k: int = 10,
    options: SearchOptions | None = None,
    names_field: str = "collections",
) -> SearchResult:
    """`names_field` is what an error about a collection names: `name` where the caller took one name."""
    options = options or SearchOptions()
    validate(names, query, k, options, names_field)
    rows = [await _load(app, name, names_field) for name in names]
    reranker = await app.reranker() if options.rerank is not False else None
    if options.rerank and reranker is None:
        raise InvalidInputError("no reranker is configured (SEMANTIK_RERANK_MODEL_PATH)", field="rerank")
    notes: list[str] = []
    modes = {row.name: _mode(row, options, notes) for row in rows}
    vectors = await _embed_once_per_model(app, rows, modes, query)
    depth = max(k, app.settings.rerank_candidates) if reranker is not None else k
    per_collection = {
        row.name: await _search_one(app, row, query, vectors.get(row.name), modes[row.name], options, depth)
        for row in rows
    }
    hits = per_collection[rows[0].name] if len(rows) == 1 else _merge(per_collection, options, depth)
    reranked = False
    if reranker is not None and hits:
        candidates = hits[: max(k, app.settings.rerank_candidates)]
        outcome = await reranker.rerank(
            query, [hit.text for hit in candidates], timeout=app.settings.rerank_timeout_seconds
        )
        if outcome.scores is None:
            notes.append(outcome.note or "the reranker did not answer; results are in fused order")
        else:
            hits = _reranked(candidates, outcome.scores)
            reranked = True
    return SearchResult(hits[:k], modes, options.fusion, reranked, notes)


def validate(
    names: Sequence[str], query: str, k: int, options: SearchOptions, names_field: str = "collections"
) -> None:
    """Every parameter's bounds, named by field, before any store is asked."""
    if not query.strip():
        raise InvalidInputError("query must not be empty", field="query")
    if not 1 <= k <= MAX_K:
        raise InvalidInputError(f"k must be between 1 and {MAX_K}", field="k")
    if not 1 <= len(names) <= MAX_COLLECTIONS:
        raise InvalidInputError(f"search between 1 and {MAX_COLLECTIONS} collections", field=names_field)
    if len(set(names)) != len(names):
        raise InvalidInputError("a collection is named twice", field=names_field)
    for name in names:
        validate_name(name, names_field)
    if options.per_document is not None and not 1 <= options.per_document <= MAX_K:
        raise InvalidInputError("max_per_document must be between 1 and 100, or unset", field="max_per_document")
    if not 1 <= options.prefetch <= MAX_PREFETCH:
        raise InvalidInputError(f"prefetch must be between 1 and {MAX_PREFETCH}", field="prefetch")
    if options.rrf_k < 1:
        raise InvalidInputError("rrf_k must be at least 1", field="rrf_k")
    if not 0 <= options.feedback <= MAX_FEEDBACK:
        raise InvalidInputError(f"feedback must be between 0 and {MAX_FEEDBACK}", field="feedback")
    if not (math.isfinite(options.feedback_weight) and 0 <= options.feedback_weight <= 10):
        raise InvalidInputError("feedback_weight must be between 0 and 10", field="feedback_weight")
    retrievers = (options.mode or Mode.HYBRID).retrievers
    for retriever, weight in (options.weights or {}).items():
        if retriever not in retrievers:
            raise InvalidInputError(
                f"weight for {retriever!r}, but mode {(options.mode or Mode.HYBRID).value} retrieves with "
                f"{', '.join(retrievers)}",
                field="weights",
            )
        if not math.isfinite(weight) or weight < 0:
            raise InvalidInputError(f"weight of {retriever!r} must be a finite number >= 0", field="weights")
    threshold = options.score_threshold
    if threshold is not None:
        if not math.isfinite(threshold):
            raise InvalidInputError("score_threshold must be a finite number", field="score_threshold")
        if options.mode is Mode.DENSE and not -1 <= threshold <= 1:
            raise InvalidInputError("a dense score (cosine) lies between -1 and 1", field="score_threshold")


async def _load(app: Semantik, name: str, field: str) -> Collection:
    async with app.sessions() as session:
        row = await metadata.get_collection(session, name)
    if row is None:
        raise NotFoundError(f"collection {name!r} does not exist", field=field)
    return row


def _mode(row: Collection, options: SearchOptions, notes: list[str]) -> Mode:
    asked = options.mode or Mode.HYBRID
    if row.sparse_language is None:
        if options.mode not in (None, Mode.DENSE):
            notes.append(
                f"{row.name}: keyword vectors are not built yet (a backfill builds them from stored text); "
                f"answered dense-only instead of {asked.value}"
            )
        elif options.mode is None:
            notes.append(f"{row.name}: keyword vectors are not built yet; answered dense-only")
        return Mode.DENSE
    if row.sparse_language != row.language and asked is not Mode.DENSE:
        notes.append(
            f"{row.name}: keyword vectors are still in {row.sparse_language} until the backfill to {row.language} ends"
        )
    return asked


async def _embed_once_per_model(
    app: Semantik, rows: Sequence[Collection], modes: Mapping[str, Mode], query: str
) -> dict[str, list[float]]:
    """The query's dense vector for each collection that needs one, embedded once per (embedder, model)."""
    by_model: dict[tuple[str | None, str], list[float]] = {}
    vectors = {}
    for row in rows:
        if DENSE not in modes[row.name].retrievers:
            continue
        key = (row.embedder_url, row.model_name)
        if key not in by_model:
            embedder = await app.embedder_at(row.embedder_url)
            if embedder.model_name != row.model_name:
                raise InvalidInputError(
                    f"collection {row.name!r} was indexed with {row.model_name}, but its embedder runs "
                    f"{embedder.model_name}; set SEMANTIK_MODEL_NAME and SEMANTIK_MODEL_PATH to match",
                    field="collections",
                )
            by_model[key] = (await embedder.embed([query], TextKind.QUERY)).vectors[0].tolist()
        vectors[row.name] = by_model[key]
    return vectors


def _analyzer(row: Collection) -> Analyzer:
    return analyzer_for(row.sparse_language or row.language)


async def _search_one(
    app: Semantik,
    row: Collection,
    query: str,
    dense: list[float] | None,
    mode: Mode,
    options: SearchOptions,
    depth: int,
) -> list[Hit]:
    """The collection's `depth` best hits, collapsed per file, in the mode's order."""
    analyzer = _analyzer(row)
    query_terms = analyzer.terms(query)
    single = len(mode.retrievers) == 1
    queries = []
    if dense is not None:
        queries.append(
            RetrieverQuery(
                DENSE,
                dense,
                legacy=row.sparse_language is None,
                score_threshold=options.score_threshold if single else None,
            )
        )
    if SPARSE in mode.retrievers:
        queries.append(
            RetrieverQuery(
                SPARSE, query_vector(query_terms), score_threshold=options.score_threshold if single else None
            )
        )
    weights = {r: w for r, w in (options.weights or {}).items() if r in mode.retrievers}
    by_file = row.point_id_scheme is PointIdScheme.BY_FILE
    payload_keys = candidate_payload_keys(row.point_id_scheme)
    fetch = max(options.prefetch, depth)
    while True:
        runs = await app.store.retrieve(
            row.qdrant_collection, queries, limit=fetch, search_filter=options.search_filter, payload_keys=payload_keys
        )
        chunks = {chunk.id: chunk for run in runs.values() for chunk in run}
        ranked = {name: [Ranked(chunk.id, chunk.score) for chunk in run] for name, run in runs.items()}
        fused = _single(ranked) if single else fuse(options.fusion, ranked, k=options.rrf_k, weights=weights)
        if dense is not None and not single and options.feedback and fused:
            expanded = await _feedback_query(app, row, dense, fused, options)
            if expanded is not None:
                second = await app.store.retrieve(
                    row.qdrant_collection,
                    [RetrieverQuery(DENSE, expanded)],
                    limit=fetch,
                    search_filter=options.search_filter,
                    payload_keys=payload_keys,
                )
                runs = {**runs, DENSE: second[DENSE]}
                chunks.update({chunk.id: chunk for chunk in second[DENSE]})
                ranked[DENSE] = [Ranked(chunk.id, chunk.score) for chunk in second[DENSE]]
                fused = fuse(options.fusion, ranked, k=options.rrf_k, weights=weights)
        if not single and options.score_threshold is not None:
            fused = [f for f in fused if f.score >= options.score_threshold]
        kept = _collapse(fused, file_key if by_file else _path_of(chunks), options.per_document)
        exhausted = all(len(run) < fetch for run in runs.values())
        if len(kept) >= depth or exhausted or fetch >= MAX_FETCH:
            break
        fetch = min(fetch * 4, MAX_FETCH)
    terms = frozenset(query_terms)
    # A hit deleted since the retrieval (a concurrent index run) has no payload left and is dropped.
    payloads = await app.store.payloads(row.qdrant_collection, [f.id for f in kept[:depth]])
    return [_hit(row.name, f, payloads[f.id], terms, analyzer) for f in kept[:depth] if f.id in payloads]


async def _feedback_query(
    app: Semantik, row: Collection, dense: list[float], fused: Sequence[Fused], options: SearchOptions
) -> list[float] | None:
    """Rocchio's pseudo-relevance feedback on the dense side: the query moved towards the mean of the best
    fused chunks. The keyword run has already had its say in choosing them, so the second dense run finds
    neighbours of what both retrievers agreed on: +0.05 nDCG@10 for dense on the development collection."""
    vectors = await app.store.dense_vectors(row.qdrant_collection, [f.id for f in fused[: options.feedback]])
    return rocchio(dense, vectors, options.feedback_weight) if vectors else None


def rocchio(query: Sequence[float], feedback: Sequence[Sequence[float]], weight: float) -> list[float]:
    """`query` moved towards the mean of the `feedback` vectors by `weight`, as a unit vector."""
    moved = [
        q + weight * sum(column) / len(feedback) for q, column in zip(query, zip(*feedback, strict=True), strict=True)
    ]
    norm = math.sqrt(sum(x * x for x in moved)) or 1.0
    return [x / norm for x in moved]


def _single(runs: Mapping[str, Sequence[Ranked]]) -> list[Fused]:
    """One retriever: its own order and score (cosine or BM25), not a rank fusion's."""
    ((name, run),) = runs.items()
    return [Fused(r.id, r.score, (Contribution(name, rank, r.score),)) for rank, r in enumerate(run, start=1)]


def _collapse(fused: Sequence[Fused], file_of: Callable[[str], str], per_document: int | None) -> list[Fused]:
    """Keep, in order, at most `per_document` chunks of each file (`file_of` a point id)."""
    if per_document is None:
        return list(fused)
    seen: dict[str, int] = {}
    kept = []
    for hit in fused:
        file = file_of(hit.id)
        if seen.get(file, 0) < per_document:
            seen[file] = seen.get(file, 0) + 1
            kept.append(hit)
    return kept


def _path_of(chunks: Mapping[str, ScoredChunk]) -> Callable[[str], str]:
    """A NAMED-scheme point's file: the `path` its candidate carries (COLLAPSE_KEYS)."""
    return lambda point: str(chunks[point].payload.get("path"))


def _merge(per_collection: Mapping[str, list[Hit]], options: SearchOptions, depth: int) -> list[Hit]:
    """Several collections' hits in one list: fused by rank (RRF) or by normalised scores (DBSF)."""
    keyed = {
        f"{hit.collection}\x00{hit.path}\x00{hit.chunk_index}": hit for hits in per_collection.values() for hit in hits
    }
    runs = {
        name: [Ranked(f"{hit.collection}\x00{hit.path}\x00{hit.chunk_index}", hit.score) for hit in hits]
        for name, hits in per_collection.items()
    }
    merged = fuse(options.fusion, runs, k=options.rrf_k)
    return [
        replace(
            keyed[f.id],
            score=f.score,
            explain=(
                *keyed[f.id].explain,
                Contribution("collection", f.contributions[0].rank, f.contributions[0].score),
            ),
        )
        for f in merged[:depth]
    ]


def _reranked(candidates: Sequence[Hit], scores: Sequence[float]) -> list[Hit]:
    order = sorted(range(len(candidates)), key=lambda i: (-scores[i], i))
    return [
        replace(
            candidates[i],
            score=float(scores[i]),
            explain=(*candidates[i].explain, Contribution("rerank", rank, float(scores[i]))),
        )
        for rank, i in enumerate(order, start=1)
    ]


def _hit(collection: str, fused: Fused, payload: Mapping[str, Any], terms: frozenset[str], analyzer: Analyzer) -> Hit:
    text = str(payload.get("text", ""))
    snippet, spans = make_snippet(text, terms, analyzer)
    return Hit(
        collection=collection,
        score=fused.score,
        path=str(payload["path"]),
        chunk_index=int(payload["chunk_index"]),
        text=text,
        snippet=snippet,
        highlights=spans,
        start=int(payload["start"]),
        end=int(payload["end"]),
        heading=payload.get("heading"),
        explain=fused.contributions,
    )
