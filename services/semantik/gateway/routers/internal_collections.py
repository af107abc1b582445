"""The operator's part of the internal API: ensure and drop collections, open index operations.

Every call is idempotent, because a kopf handler may run again after any crash: PUT brings a
collection to the spec, DELETE of a missing collection succeeds, and an operation opened with the same
key (the IndexJob's uid) is the same operation.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status
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


OwnerQuery = Annotated[
    str | None,
    Query(
        max_length=200,
        pattern=r"^[a-z0-9-]+/[a-z0-9-]+$",
        description="`<namespace>/<name>` of the Collection calling: refused (409, field `owner`) by a collection "
        "that belongs to another.",
    ),
]


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
async def ensure(
    semantik: SemantikDep, name: str, body: EnsureCollectionIn, response: Response, owner: OwnerQuery = None
) -> CollectionOut:
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
        semantik, spec, quantization=body.quantization.value, embedder_url=body.embedder_url, owner=owner
    )
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return collection_out(view)


@router.get("/{name}", response_model=CollectionOut)
async def read(semantik: SemantikDep, name: str, owner: OwnerQuery = None) -> CollectionOut:
    await collections.load_collection(semantik, name, owner=owner)
    return collection_out(await collections.get_collection(semantik, name))


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT, summary="Drop the index and its metadata")
async def drop(semantik: SemantikDep, operations: OperationsDep, name: str, owner: OwnerQuery = None) -> Response:
    try:
        row = await collections.load_collection(semantik, name, owner=owner)
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
    semantik: SemantikDep, operations: OperationsDep, name: str, body: OpenOperationIn, owner: OwnerQuery = None
) -> OperationAccepted:
    await collections.load_collection(semantik, name, owner=owner)
    operation = await open_index_operation(
        semantik, name, None, full=body.full, request_key=body.key, reindex=body.reindex
    )
    if operation.status == OperationStatus.PENDING.value:
        await operations.start(operation.id, operation.queue)
    view = await get_operation(semantik, operation.id)
    return OperationAccepted(operation_id=view.id, status=view.status, url=f"/internal/v1/operations/{view.id}")
