from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from fastapi import APIRouter

from semantik.core.access import Role, authorize
from semantik.core.context import Semantik
from semantik.core.services.search import SearchResult, search_collections
from semantik.gateway import metrics
from semantik.gateway.cluster import ClusterCollections, ClusterDep, rest_store
from semantik.gateway.deps import PrincipalDep, ReadableName, SemantikDep
from semantik.gateway.schemas import ExplainOut, HitOut, MultiSearchIn, SearchIn, SearchOptionsIn, SearchOut

router = APIRouter(prefix="/api/v1", tags=["search"])


@router.post("/collections/{name}/search", response_model=SearchOut)
async def search_collection(
    semantik: SemantikDep, cluster: ClusterDep, name: ReadableName, body: SearchIn
) -> SearchOut:
    return await run_search(semantik, cluster, [name], body, single=True)


@router.post("/search", response_model=SearchOut, summary="Search up to 10 collections at once")
async def search_many(
    semantik: SemantikDep, principal: PrincipalDep, cluster: ClusterDep, body: MultiSearchIn
) -> SearchOut:
    # A collection the caller may not read is an error naming the field, never silently dropped.
    for name in body.collections:
        authorize(principal, name, Role.READ, field="collections")
    return await run_search(semantik, cluster, body.collections, body, single=False)


async def run_search(
    semantik: Semantik,
    cluster: ClusterCollections | None,
    names: Sequence[str],
    body: SearchOptionsIn,
    *,
    single: bool,
) -> SearchOut:
    """The search of the REST API and the web UI: names are REST names, authorised by the caller."""
    # In cluster mode REST names are Collection resource names; the index behind each is its store.
    # The list goes on whole (a name twice is the service's 422 to give); the map only names hits back.
    field = "name" if single else "collections"
    stores = [await rest_store(semantik, cluster, name, field) for name in names]
    rest_names = dict(zip(stores, names, strict=True))
    started = time.perf_counter()
    result = await search_collections(
        semantik,
        stores,
        body.query,
        k=body.k,
        options=body.options(),
        names_field=field,
    )
    took = time.perf_counter() - started
    metrics.SEARCH_SECONDS.observe(took)
    return search_out(result, names, body.query, took, single=single, rest_names=rest_names)


def search_out(
    result: SearchResult,
    names: Sequence[str],
    query: str,
    took: float,
    *,
    single: bool,
    rest_names: Mapping[str, str] | None = None,
) -> SearchOut:
    return SearchOut(
        collection=names[0] if single else None,
        collections=list(names),
        query=query,
        took_ms=round(took * 1000, 2),
        modes=result.modes,
        fusion=result.fusion,
        reranked=result.reranked,
        notes=result.notes,
        hits=[
            HitOut(
                collection=(rest_names or {}).get(hit.collection, hit.collection),
                score=hit.score,
                path=hit.path,
                chunk_index=hit.chunk_index,
                snippet=hit.snippet,
                highlights=hit.highlights,
                text=hit.text,
                start=hit.start,
                end=hit.end,
                heading=hit.heading,
                explain=[ExplainOut(retriever=c.retriever, rank=c.rank, score=c.score) for c in hit.explain],
            )
            for hit in result.hits
        ],
    )
