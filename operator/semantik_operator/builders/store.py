"""The body of the gateway's internal PUT /internal/v1/collections/{name}: the store collection a Collection
asks for."""

from __future__ import annotations

from typing import Any

from semantik_operator.builders.indexing import source_globs
from semantik_operator.spec import CollectionSpec


def build_store_request(spec: CollectionSpec, *, source_path: str, embedder_url: str) -> dict[str, Any]:
    """The gateway's EnsureCollectionIn as plain JSON; `source_path` is the workers' sources root, under which
    each source is a folder, so the globs come prefixed with the source's name."""
    include, exclude = source_globs(spec.sources)
    request: dict[str, Any] = {
        "source_path": source_path,
        "include": include,
        "exclude": exclude,
        "model": spec.embedding.model,
        "quantization": spec.embedding.quantization.value,
        "embedder_url": embedder_url,
        "chunking": {
            "strategy": spec.chunking.strategy,
            "chunk_size": spec.chunking.chunk_size,
            "chunk_overlap": spec.chunking.chunk_overlap,
        },
        "search": {"language": spec.search.language.value},
    }
    if spec.store is not None:
        # Absent: the gateway keeps what the collection has, so a Collection without the block changes nothing.
        request["store"] = spec.store.model_dump(exclude_none=True)
    return request
