"""Cluster mode's edge: Collection and IndexJob resources through the Kubernetes API, and the mapping of
REST names (resource names) to the gateway's store names. Every call is bounded by a timeout; API
errors become the domain errors (404, 409, 422) or a 503 when the API server is not answering."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Annotated, Any

import aiohttp
from fastapi import Depends, Request
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from semantik.contracts.naming import held_by_another, owner_name, store_name
from semantik.core.context import Semantik
from semantik.core.errors import BackendUnavailableError, ConflictError, InvalidInputError, NotFoundError
from semantik.core.settings import Settings
from semantik.core.store import metadata
from semantik.gateway.cluster_resources import (
    GROUP,
    VERSION,
    IndexJobAccepted,
    ResourceRef,
    index_job_resource,
    index_mode,
    kubectl_hint,
)
from semantik.gateway.deps import ReadableName, SemantikDep, WritableName


class ClusterCollections:
    """Collections and IndexJobs in one namespace: exactly the verbs the gateway's Role allows."""

    def __init__(self, api: client.ApiClient, namespace: str, timeout: float) -> None:
        self._api = api
        self._objects = client.CustomObjectsApi(api)
        self.namespace = namespace
        self._timeout = timeout

    @classmethod
    @asynccontextmanager
    async def open(cls, settings: Settings) -> AsyncIterator[ClusterCollections]:
        """In a pod, its service account; elsewhere (tests, a laptop) the kubeconfig KUBECONFIG names."""
        assert settings.namespace is not None, "Settings require a namespace in cluster mode"
        configuration = client.Configuration()
        try:
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except config.ConfigException:
            await config.load_kube_config(client_configuration=configuration)
        api = client.ApiClient(configuration=configuration)
        try:
            yield cls(api, settings.namespace, settings.kube_timeout_seconds)
        finally:
            await api.close()

    def store(self, name: str) -> str:
        """The store name of this namespace's Collection `name`; whose it is, `rest_store` checks."""
        return store_name(self.namespace, name)

    def holds(self, name: str, owner: str | None) -> bool:
        """Whether a store whose recorded owner is `owner` may be this namespace's `name`: store names of
        different namespaces can collide (contracts.naming), so another's store is none of this one's."""
        return not held_by_another(owner, owner_name(self.namespace, name))

    async def create_collection(self, body: dict[str, Any]) -> dict[str, Any]:
        name = body["metadata"]["name"]
        return await self._call(
            self._objects.create_namespaced_custom_object(
                GROUP, VERSION, self.namespace, "collections", body, _request_timeout=self._timeout
            ),
            name,
            exists=f"Collection {name!r} already exists; " + kubectl_hint(self.namespace, name),
        )

    async def get_collection(self, name: str) -> dict[str, Any]:
        return await self._call(
            self._objects.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, "collections", name, _request_timeout=self._timeout
            ),
            name,
        )

    async def list_collections(self) -> list[dict[str, Any]]:
        found = await self._call(
            self._objects.list_namespaced_custom_object(
                GROUP, VERSION, self.namespace, "collections", _request_timeout=self._timeout
            ),
            "",
        )
        items: list[dict[str, Any]] = found.get("items") or []
        return items

    async def delete_collection(self, name: str) -> None:
        await self._call(
            self._objects.delete_namespaced_custom_object(
                GROUP, VERSION, self.namespace, "collections", name, _request_timeout=self._timeout
            ),
            name,
        )

    async def create_index_job(self, body: dict[str, Any]) -> dict[str, Any]:
        name = body["spec"]["collectionRef"]["name"]
        return await self._call(
            self._objects.create_namespaced_custom_object(
                GROUP, VERSION, self.namespace, "indexjobs", body, _request_timeout=self._timeout
            ),
            name,
        )

    async def _call(self, call: Awaitable[Any], name: str, *, exists: str | None = None) -> dict[str, Any]:
        try:
            # The client's own timeout bounds the request; this one also bounds a connection that hangs.
            answer: dict[str, Any] = await asyncio.wait_for(call, self._timeout + 1)
            return answer
        except ApiException as exc:
            raise _domain_error(exc, name, self.namespace, exists) from exc
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise BackendUnavailableError(f"the Kubernetes API did not answer: {type(exc).__name__}") from exc


def _domain_error(exc: ApiException, name: str, namespace: str, exists: str | None) -> Exception:
    message = _api_message(exc)
    if exc.status == 404:
        return NotFoundError(f"collection {name!r} does not exist", field="name")
    if exc.status == 409:
        return ConflictError(exists or f"Collection {name!r}: {message}", field="name")
    if exc.status == 422:
        # The CRD's schema and CEL rules refused the spec; their message names the field.
        return InvalidInputError(message, field="name" if "metadata.name" in message else None)
    # 401/403 mean the gateway's service account or Role is wrong: ours to fix, not the caller's.
    return BackendUnavailableError(f"the Kubernetes API refused the gateway ({exc.status}): {message}")


def _api_message(exc: ApiException) -> str:
    try:
        status = json.loads(exc.body or "{}")
    except (ValueError, TypeError):
        return str(exc.reason)
    return str(status.get("message") or exc.reason)[:2000] if isinstance(status, dict) else str(exc.reason)


def get_cluster(request: Request) -> ClusterCollections | None:
    """The cluster client in cluster mode; None in embedded and service mode."""
    cluster: ClusterCollections | None = getattr(request.app.state, "cluster", None)
    return cluster


ClusterDep = Annotated[ClusterCollections | None, Depends(get_cluster)]


async def rest_store(semantik: Semantik, cluster: ClusterCollections | None, name: str, field: str = "name") -> str:
    """The store behind an authorised REST name: the same name, or in cluster mode its resource's store;
    a collection that does not exist (404) when that store is another namespace's Collection's."""
    if cluster is None:
        return name
    store = cluster.store(name)
    async with semantik.sessions() as session:
        row = await metadata.get_collection(session, store)
    if row is not None and not cluster.holds(name, row.owner):
        raise NotFoundError(f"collection {name!r} does not exist", field=field)
    return store


async def readable_store(semantik: SemantikDep, cluster: ClusterDep, name: ReadableName) -> str:
    return await rest_store(semantik, cluster, name)


async def writable_store(semantik: SemantikDep, cluster: ClusterDep, name: WritableName) -> str:
    return await rest_store(semantik, cluster, name)


ReadableStore = Annotated[str, Depends(readable_store)]
WritableStore = Annotated[str, Depends(writable_store)]


async def start_index_job(cluster: ClusterCollections, name: str, path: str | None, *, full: bool) -> IndexJobAccepted:
    """An IndexJob for the Collection; the operator opens the operation and runs its workers."""
    collection = await cluster.get_collection(name)
    mode = index_mode(collection, path, full=full)
    created = await cluster.create_index_job(index_job_resource(collection, mode))
    job = created["metadata"]["name"]
    return IndexJobAccepted(
        index_job=job,
        resource=ResourceRef(kind="IndexJob", namespace=cluster.namespace, name=job),
        collection=name,
        mode=mode,
    )
