from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status

from semantik.core.access import Role, authorize_new
from semantik.core.context import Semantik
from semantik.core.errors import NotFoundError
from semantik.core.services import collections
from semantik.core.services.chunks import get_chunk
from semantik.core.services.collections import CollectionSpec, CollectionView
from semantik.gateway.cluster import ClusterCollections, ClusterDep, ReadableStore
from semantik.gateway.cluster_resources import (
    ClusterCollectionList,
    ClusterCollectionOut,
    collection_resource,
    collection_view,
)
from semantik.gateway.deps import PrincipalDep, ReadableName, SemantikDep, WritableName
from semantik.gateway.schemas import ChunkOut, CollectionList, CollectionOut, DocumentList, DocumentOut, collection_out

router = APIRouter(prefix="/api/v1/collections", tags=["collections"])


async def _index_of(semantik: Semantik, cluster: ClusterCollections, name: str) -> CollectionView | None:
    """The gateway's view of a resource's index; None until the operator has made it, or when its store
    name is another namespace's Collection's."""
    try:
        view = await collections.get_collection(semantik, cluster.store(name))
    except NotFoundError:
        return None
    return view if cluster.holds(name, view.owner) else None


async def _cluster_view(semantik: Semantik, cluster: ClusterCollections, name: str) -> ClusterCollectionOut:
    resource = await cluster.get_collection(name)
    return collection_view(resource, await _index_of(semantik, cluster, name))


@router.get("", response_model=CollectionList | ClusterCollectionList)
async def list_collections(
    semantik: SemantikDep, principal: PrincipalDep, cluster: ClusterDep
) -> CollectionList | ClusterCollectionList:
    views = await collections.list_collections(semantik)
    if cluster is None:
        return CollectionList(items=[collection_out(view) for view in views if principal.sees(view.name)])
    indexes = {view.name: view for view in views}
    resources = [r for r in await cluster.list_collections() if principal.sees(r["metadata"]["name"])]
    return ClusterCollectionList(items=[collection_view(r, _held_index(cluster, r, indexes)) for r in resources])


def _held_index(
    cluster: ClusterCollections, resource: dict[str, Any], indexes: dict[str, CollectionView]
) -> CollectionView | None:
    name = resource["metadata"]["name"]
    view = indexes.get(cluster.store(name))
    return view if view is not None and cluster.holds(name, view.owner) else None


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=CollectionOut | ClusterCollectionOut,
    summary="Create a collection; in cluster mode its Collection resource, which the operator builds",
)
async def create_collection(
    semantik: SemantikDep, principal: PrincipalDep, cluster: ClusterDep, spec: CollectionSpec, response: Response
) -> CollectionOut | ClusterCollectionOut:
    authorize_new(principal, spec.name, Role.WRITE)
    response.headers["Location"] = f"/api/v1/collections/{spec.name}"
    if cluster is not None:
        created = await cluster.create_collection(collection_resource(spec, cluster.namespace))
        return collection_view(created, None)
    view = await collections.create_collection(semantik, spec, roots=semantik.settings.source_roots)
    return collection_out(view)


@router.get("/{name}", response_model=CollectionOut | ClusterCollectionOut)
async def get_collection(
    semantik: SemantikDep, cluster: ClusterDep, name: ReadableName
) -> CollectionOut | ClusterCollectionOut:
    if cluster is not None:
        return await _cluster_view(semantik, cluster, name)
    return collection_out(await collections.get_collection(semantik, name))


@router.delete(
    "/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={
        202: {"description": "Cluster mode: the resource is deleting; the operator's finalizer drops the index"}
    },
)
async def delete_collection(semantik: SemantikDep, cluster: ClusterDep, name: WritableName) -> Response:
    if cluster is not None:
        await cluster.delete_collection(name)
        return Response(status_code=status.HTTP_202_ACCEPTED)
    await collections.delete_collection(semantik, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{name}/chunk", response_model=ChunkOut, summary="One chunk whole, as a search hit names it")
async def read_chunk(
    semantik: SemantikDep,
    name: ReadableName,
    store: ReadableStore,
    path: Annotated[str, Query(min_length=1, max_length=4096)],
    index: Annotated[int, Query(ge=0, le=10_000_000)],
    q: Annotated[str, Query(max_length=4000, description="A query whose words `highlights` marks.")] = "",
) -> ChunkOut:
    chunk = await get_chunk(semantik, store, path, index, q)
    return ChunkOut(collection=name, **asdict(chunk))


@router.get("/{name}/documents", response_model=DocumentList)
async def list_documents(
    semantik: SemantikDep,
    name: ReadableStore,
    status_filter: Annotated[str | None, Query(alias="status", pattern="^(indexed|failed)$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> DocumentList:
    documents = await collections.list_documents(semantik, name, status=status_filter, limit=limit, offset=offset)
    items = [
        DocumentOut(
            path=doc.path,
            status=doc.status,
            error=doc.error,
            size=doc.size,
            format=doc.format,
            chunk_count=doc.chunk_count,
            indexed_at=doc.indexed_at,
        )
        for doc in documents
    ]
    return DocumentList(items=items, limit=limit, offset=offset)
