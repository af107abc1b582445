from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from semantik.core.services import collections
from semantik.core.services.collections import CollectionSpec, CollectionView
from semantik.gateway.deps import SemantikDep
from semantik.gateway.schemas import CollectionList, CollectionOut, DocumentList, DocumentOut

router = APIRouter(prefix="/api/v1/collections", tags=["collections"])


def collection_out(view: CollectionView) -> CollectionOut:
    data = asdict(view)
    data["chunking"] = view.chunking
    return CollectionOut.model_validate(data)


@router.get("", response_model=CollectionList)
async def list_collections(semantik: SemantikDep) -> CollectionList:
    return CollectionList(items=[collection_out(view) for view in await collections.list_collections(semantik)])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=CollectionOut)
async def create_collection(semantik: SemantikDep, spec: CollectionSpec, response: Response) -> CollectionOut:
    view = await collections.create_collection(semantik, spec, roots=semantik.settings.source_roots)
    response.headers["Location"] = f"/api/v1/collections/{view.name}"
    return collection_out(view)


@router.get("/{name}", response_model=CollectionOut)
async def get_collection(semantik: SemantikDep, name: str) -> CollectionOut:
    return collection_out(await collections.get_collection(semantik, name))


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_collection(semantik: SemantikDep, name: str) -> Response:
    await collections.delete_collection(semantik, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{name}/documents", response_model=DocumentList)
async def list_documents(
    semantik: SemantikDep,
    name: str,
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
