"""The Kubernetes API, through kubernetes-asyncio's dynamic client: apply, create, get, list."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.dynamic import DynamicClient

FIELD_MANAGER = "semantik-operator"


class Kube:
    def __init__(self, api: client.ApiClient, dynamic: DynamicClient) -> None:
        self._api = api
        self._dynamic = dynamic

    @classmethod
    async def connect(cls) -> Kube:
        try:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
        except config.ConfigException:
            await config.load_kube_config()
        api = client.ApiClient()
        return cls(api, await DynamicClient(api))

    async def aclose(self) -> None:
        await self._api.close()

    async def _resource(self, api_version: str, kind: str) -> Any:
        return await self._dynamic.resources.get(api_version=api_version, kind=kind)

    async def apply(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Server-side apply: the operator owns the fields it sets, and a re-run is a no-op."""
        resource = await self._resource(body["apiVersion"], body["kind"])
        result = await self._dynamic.server_side_apply(
            resource, body=dict(body), field_manager=FIELD_MANAGER, force_conflicts=True
        )
        applied: dict[str, Any] = result.to_dict()
        return applied

    async def create(self, body: Mapping[str, Any]) -> bool:
        """Create once; False when it already exists (a 409 means "already there")."""
        resource = await self._resource(body["apiVersion"], body["kind"])
        try:
            await self._dynamic.create(resource, body=dict(body), namespace=body["metadata"].get("namespace"))
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise
        return True

    async def get(self, api_version: str, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
        resource = await self._resource(api_version, kind)
        try:
            found = await self._dynamic.get(resource, name=name, namespace=namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        item: dict[str, Any] = found.to_dict()
        return item

    async def exists(self, api_version: str, kind: str, name: str, namespace: str) -> bool:
        return await self.get(api_version, kind, name, namespace) is not None

    async def patch(self, api_version: str, kind: str, name: str, namespace: str, body: Mapping[str, Any]) -> None:
        """A JSON merge patch (lists are replaced whole)."""
        resource = await self._resource(api_version, kind)
        await self._dynamic.patch(
            resource,
            body=dict(body),
            name=name,
            namespace=namespace,
            content_type="application/merge-patch+json",
        )

    async def delete(self, api_version: str, kind: str, name: str, namespace: str) -> None:
        """Delete; one already gone is fine."""
        resource = await self._resource(api_version, kind)
        try:
            await self._dynamic.delete(resource, name=name, namespace=namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise

    async def list(self, api_version: str, kind: str, namespace: str) -> list[dict[str, Any]]:
        resource = await self._resource(api_version, kind)
        found = await self._dynamic.get(resource, namespace=namespace)
        return [item.to_dict() for item in found.items]
