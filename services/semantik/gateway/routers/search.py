from __future__ import annotations

import time

from fastapi import APIRouter

from semantik.core.services.search import search
from semantik.core.store.vectors import SearchFilter
from semantik.gateway import metrics
from semantik.gateway.deps import SemantikDep
from semantik.gateway.schemas import HitOut, SearchIn, SearchOut

router = APIRouter(prefix="/api/v1/collections", tags=["search"])


@router.post("/{name}/search", response_model=SearchOut)
async def search_collection(semantik: SemantikDep, name: str, body: SearchIn) -> SearchOut:
    started = time.perf_counter()
    hits = await search(
        semantik,
        name,
        body.query,
        k=body.k,
        score_threshold=body.score_threshold,
        search_filter=SearchFilter(body.filter.path_prefix, tuple(body.filter.extensions)),
        per_document=body.max_per_document,
    )
    took = time.perf_counter() - started
    metrics.SEARCH_SECONDS.observe(took)
    return SearchOut(
        collection=name,
        query=body.query,
        took_ms=round(took * 1000, 2),
        hits=[
            HitOut(
                score=hit.score,
                path=hit.path,
                chunk_index=hit.chunk_index,
                snippet=hit.snippet,
                highlights=hit.highlights,
                text=hit.text,
                start=hit.start,
                end=hit.end,
                heading=hit.heading,
            )
            for hit in hits
        ],
    )
