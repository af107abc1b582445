"""The operator's client of the gateway's internal API: the only way it touches data."""

from __future__ import annotations

from typing import Any

import httpx

from semantik.contracts.errors import error_parts, is_error_body


class GatewayError(Exception):
    """The gateway refused (`status` 4xx, with the field at fault) or could not be reached (`status` None)."""

    def __init__(self, message: str, *, status: int | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.field = field

    @property
    def unreachable(self) -> bool:
        return self.status is None or self.status >= 500

    @property
    def owned_by_another(self) -> bool:
        """The store name is another Collection's (see contracts.naming.owner_name)."""
        return self.status == 409 and self.field == "owner"


class Gateway:
    def __init__(self, base_url: str, token: str | None, *, timeout: float = 15.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/internal/v1", headers=headers, timeout=timeout
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    # `owner` (contracts.naming.owner_name) on every call about a collection: the gateway refuses, 409 on the
    # field `owner`, a collection that belongs to another Collection whose store name collides with this one's.

    async def ensure_collection(self, name: str, body: dict[str, Any], *, owner: str) -> dict[str, Any]:
        return await self._call("PUT", f"/collections/{name}", json=body, params={"owner": owner})

    async def collection(self, name: str, *, owner: str | None = None) -> dict[str, Any] | None:
        """None when there is none; `owner` None only for the startup probe, which reads no collection."""
        try:
            params = {"owner": owner} if owner is not None else {}
            return await self._call("GET", f"/collections/{name}", params=params)
        except GatewayError as exc:
            if exc.status == 404:
                return None
            raise

    async def drop_collection(self, name: str, *, owner: str) -> None:
        await self._call("DELETE", f"/collections/{name}", params={"owner": owner})

    async def open_operation(
        self, name: str, *, owner: str, key: str, full: bool, reindex: bool = False
    ) -> dict[str, Any]:
        body = {"key": key, "full": full, "reindex": reindex}
        return await self._call("POST", f"/collections/{name}/operations", json=body, params={"owner": owner})

    async def operation(self, operation_id: str) -> dict[str, Any]:
        return await self._call("GET", f"/operations/{operation_id}")

    async def fail_operation(self, operation_id: str, reason: str) -> None:
        await self._call("POST", f"/operations/{operation_id}/fail", json={"reason": reason})

    async def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = await self._client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise GatewayError(f"the gateway at {self._client.base_url} is unreachable: {exc}") from exc
        if response.status_code == 204:
            return {}
        if response.status_code >= 400 and not is_error_body(response.text):
            # Not the gateway's answer (every one of its errors has that shape): something between, such
            # as a port answering while the gateway's pod is replaced. Unreachable, so retried, never
            # read as "no such collection".
            raise GatewayError(
                f"the gateway at {self._client.base_url} is unreachable: HTTP {response.status_code} "
                f"without a gateway error body: {response.text[:200]!r}"
            )
        if response.status_code >= 400:
            message, field = error_parts(response.text)
            raise GatewayError(message, status=response.status_code, field=field)
        body: dict[str, Any] = response.json()
        return body
