"""The operator's part of the internal API: ensure and drop collections, open index operations.

Every call is idempotent, because a kopf handler may run again after any crash: PUT brings a
collection to the spec, DELETE of a missing collection succeeds, and an operation opened with the same
key (the IndexJob's uid) is the same operation.
"""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, Field

from semantik.core.db.models import OperationStatus
from semantik.core.embedding import Precision
from semantik.core.errors import NotFoundError
from semantik.core.services import collections
from semantik.core.services.collections import ChunkingSpec, CollectionSpec, SearchSpec, StoreSpec
from semantik.core.services.indexing import get_operation, open_index_operation
from semantik.core.store import metadata
from semantik.gateway.deps import OperationsDep, SemantikDep
from semantik.gateway.schemas import CollectionOut, OperationAccepted, collection_out

# Out of /openapi.json, as the rest of the internal API (see routers/internal.py).
router = APIRouter(prefix="/internal/v1/collections", tags=["internal"], include_in_schema=False)


class EnsureCollectionIn(BaseModel):
    source_path: str = Field(min_length=1, max_length=4096, description="The workers' folder of the sources.")
    include: list[str] = Field(default_factory=lambda: ["**"])
    exclude: list[str] = Field(default_factory=list)
    model: str = Field(min_length=1, max_length=200)
    quantization: Precision = Precision.FLOAT32
    chunking: ChunkingSpec = Field(default_factory=ChunkingSpec)
    search: SearchSpec = Field(default_factory=SearchSpec)
    store: StoreSpec | None = Field(default=None, description="The Collection's spec.store; null: as it is.")
    embedder_url: str | None = Field(
        default=None, max_length=2048, description="The embedder serving this model; search embeds queries there."
    )


class OpenOperationIn(BaseModel):
    full: bool = False
    reindex: bool = Field(default=False, description="Build the next generation and swap it in when done.")
    key: str = Field(min_length=1, max_length=100, description="Idempotency key: the same key, the same operation.")


@router.put("/{name}", response_model=CollectionOut, summary="Create the collection or bring it to the spec")
async def ensure(semantik: SemantikDep, name: str, body: EnsureCollectionIn, response: Response) -> CollectionOut:
    spec = CollectionSpec(
        name=name,
        source_path=body.source_path,
        include=body.include,
        exclude=body.exclude,
        model=body.model,
        chunking=body.chunking,
        search=body.search,
        store=body.store,
    )
    view, created = await collections.ensure_collection(
        semantik, spec, quantization=body.quantization.value, embedder_url=body.embedder_url
    )
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return collection_out(view)


@router.get("/{name}", response_model=CollectionOut)
async def read(semantik: SemantikDep, name: str) -> CollectionOut:
    return collection_out(await collections.get_collection(semantik, name))


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT, summary="Drop the index and its metadata")
async def drop(semantik: SemantikDep, operations: OperationsDep, name: str) -> Response:
    try:
        row = await collections.load_collection(semantik, name)
    except NotFoundError:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    async with semantik.sessions() as session:
        active = await metadata.active_operation(session, row.id)
    if active is not None:
        await operations.cancel(active.id, active.queue)
    await collections.delete_collection(semantik, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{name}/operations",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=OperationAccepted,
    summary="Open an index operation and queue its scan (idempotent by key)",
)
async def open_operation(
    semantik: SemantikDep, operations: OperationsDep, name: str, body: OpenOperationIn
) -> OperationAccepted:
    operation = await open_index_operation(
        semantik, name, None, full=body.full, request_key=body.key, reindex=body.reindex
    )
    if operation.status == OperationStatus.PENDING.value:
        await operations.start(operation.id, operation.queue)
    view = await get_operation(semantik, operation.id)
    return OperationAccepted(operation_id=view.id, status=view.status, url=f"/internal/v1/operations/{view.id}")
