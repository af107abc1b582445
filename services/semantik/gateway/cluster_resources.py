"""Cluster mode's pure half: REST requests to Collection and IndexJob manifests, and resources (joined with
the gateway's own counts) to the REST view. No I/O here; gateway/cluster.py applies what these build."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any

from pydantic import BaseModel, Field

from semantik.contracts.naming import store_name
from semantik.core.errors import ConflictError, InvalidInputError
from semantik.core.services.collections import CollectionSpec, CollectionView
from semantik.gateway.schemas import CollectionOut, collection_out

GROUP = "semantik.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
SOURCE_NAME = "source"
"""The name of a REST-made Collection's one source when its folder's name is not a valid source name."""
SOURCE_NAME_PATTERN = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
CREATED_BY = {"app.kubernetes.io/managed-by": "semantik-gateway"}


def kubectl_hint(namespace: str, name: str) -> str:
    return f"edit the Collection resource with kubectl: kubectl -n {namespace} edit collection {name}"


class ResourceRef(BaseModel):
    kind: str
    namespace: str
    name: str


class ConditionOut(BaseModel):
    type: str
    status: str
    reason: str
    message: str
    last_transition_time: str | None
    observed_generation: int | None


class ClusterCollectionOut(BaseModel):
    """A collection in cluster mode: its resource is the source of truth, the gateway adds its counts."""

    name: str = Field(description="The Collection resource's name; REST paths use it.")
    resource: ResourceRef
    store: str = Field(description="The gateway's name for the index behind it (namespace and name).")
    phase: str | None = Field(description="status.phase; null until the operator has seen the resource.")
    conditions: list[ConditionOut]
    spec: dict[str, Any] = Field(description="The resource's spec as the API server holds it.")
    deleting: bool = Field(description="Deletion is under way: the operator's finalizer is removing the index.")
    documents: int | None = Field(description="Null until the operator has made the index.")
    indexed_documents: int | None
    failed_documents: int | None
    chunks: int | None
    last_indexed_at: datetime | None
    index: CollectionOut | None = Field(
        description="The gateway's record of the index behind it (model, chunking, generation, a pending "
        "reindex); null until the operator has made it."
    )


class ClusterCollectionList(BaseModel):
    items: list[ClusterCollectionOut]


class IndexJobAccepted(BaseModel):
    """An IndexJob was created; the operator opens its operation when it reconciles the job."""

    index_job: str = Field(description="The IndexJob's name: `kubectl get indexjob <name>` shows its progress.")
    resource: ResourceRef
    collection: str
    mode: str
    operation_id: str | None = Field(
        default=None,
        description="Always null here: the operation does not exist until the operator reconciles the IndexJob; "
        "it then appears in the IndexJob's status.operationId.",
    )


def collection_resource(spec: CollectionSpec, namespace: str) -> dict[str, Any]:
    """The Collection a REST create asks for; a REST field a Collection cannot hold is refused, never dropped."""
    if spec.description:
        raise InvalidInputError(
            "description: a Collection resource has no description field; leave it out in cluster mode",
            field="description",
        )
    if spec.source_path is None:
        raise InvalidInputError(
            "source_path is required in cluster mode: it becomes the Collection's hostPath source",
            field="source_path",
        )
    source: dict[str, Any] = {
        "name": source_name(spec.source_path),
        "hostPath": spec.source_path,
        "include": list(spec.include),
    }
    if spec.exclude:
        source["exclude"] = list(spec.exclude)
    body: dict[str, Any] = {
        "sources": [source],
        "chunking": {
            "strategy": spec.chunking.strategy.value,
            "chunkSize": spec.chunking.chunk_size,
            "chunkOverlap": spec.chunking.chunk_overlap,
        },
    }
    if spec.model is not None:
        body["embedding"] = {"model": spec.model}
    if spec.search is not None:
        body["search"] = {"language": spec.search.language}
    if spec.store is not None:
        store = {
            "shards": spec.store.shards,
            "replicationFactor": spec.store.replication_factor,
            "onDisk": spec.store.on_disk,
        }
        body["store"] = {key: value for key, value in store.items() if value is not None}
    return {
        "apiVersion": API_VERSION,
        "kind": "Collection",
        "metadata": {"name": spec.name, "namespace": namespace, "labels": dict(CREATED_BY)},
        "spec": body,
    }


def source_name(path: str) -> str:
    """The folder's own name where it is a valid source name: workers see the files under it, so hits read
    `<folder>/<file>` as they would over REST in embedded mode."""
    folder = PurePosixPath(path).name
    return folder if SOURCE_NAME_PATTERN.fullmatch(folder) else SOURCE_NAME


def index_mode(collection: Mapping[str, Any], path: str | None, *, full: bool) -> str:
    """The IndexJob mode of a REST index request; a path other than the resource's sources would edit it."""
    metadata = collection["metadata"]
    sources = (collection.get("spec") or {}).get("sources") or []
    if path is not None and path.rstrip("/") not in {str(s.get("hostPath", "")).rstrip("/") for s in sources}:
        raise ConflictError(
            f"path {path!r} is not a source of Collection {metadata['name']!r}; "
            + kubectl_hint(metadata["namespace"], metadata["name"]),
            field="path",
        )
    return "full" if full else "incremental"


def index_job_resource(collection: Mapping[str, Any], mode: str) -> dict[str, Any]:
    """An IndexJob owned by the Collection (deleted with it); the API server picks the name's suffix."""
    metadata = collection["metadata"]
    return {
        "apiVersion": API_VERSION,
        "kind": "IndexJob",
        "metadata": {
            # Collection names are at most 40 characters, so this prefix and the server's 5 stay within 52.
            "generateName": f"{metadata['name']}-rest-",
            "namespace": metadata["namespace"],
            "labels": {**CREATED_BY, "semantik.io/collection": metadata["name"]},
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": "Collection",
                    "name": metadata["name"],
                    "uid": metadata["uid"],
                    "controller": False,
                    "blockOwnerDeletion": False,
                }
            ],
        },
        "spec": {"collectionRef": {"name": metadata["name"]}, "mode": mode},
    }


def _condition(raw: Mapping[str, Any]) -> ConditionOut:
    return ConditionOut(
        type=str(raw.get("type", "")),
        status=str(raw.get("status", "Unknown")),
        reason=str(raw.get("reason", "")),
        message=str(raw.get("message", "")),
        last_transition_time=raw.get("lastTransitionTime"),
        observed_generation=raw.get("observedGeneration"),
    )


def collection_view(resource: Mapping[str, Any], index: CollectionView | None) -> ClusterCollectionOut:
    """The REST view: phase and conditions from the resource's status, counts from the gateway's index."""
    metadata = resource["metadata"]
    status = resource.get("status") or {}
    return ClusterCollectionOut(
        name=metadata["name"],
        resource=ResourceRef(kind="Collection", namespace=metadata["namespace"], name=metadata["name"]),
        store=store_name(metadata["namespace"], metadata["name"]),
        phase=status.get("phase"),
        conditions=[_condition(c) for c in status.get("conditions") or []],
        spec=dict(resource.get("spec") or {}),
        deleting=bool(metadata.get("deletionTimestamp")),
        documents=index.documents if index else None,
        indexed_documents=index.indexed_documents if index else None,
        failed_documents=index.failed_documents if index else None,
        chunks=index.chunks if index else None,
        last_indexed_at=index.last_indexed_at if index else None,
        index=collection_out(index) if index else None,
    )
