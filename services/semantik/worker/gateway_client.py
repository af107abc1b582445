"""The worker's way to the data: the gateway's internal API, with retries on what heals."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx

from semantik.contracts.errors import error_parts, is_error_body
from semantik.core.errors import BackendUnavailableError, ConflictError, InvalidInputError, NotFoundError, SemantikError

log = logging.getLogger(__name__)

RETRYABLE_STATUS = {500, 502, 503, 504}
"""500 too: the gateway's own fault may be a passing one; the job's bounded tries still end it."""


class BodyTooLargeError(InvalidInputError):
    """The gateway refused a body over its SEMANTIK_MAX_INTERNAL_REQUEST_BYTES (413)."""


class GatewayClient:
    def __init__(self, base_url: str, token: str | None, *, attempts: int = 4, timeout: float = 60.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/internal/v1/operations",
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=5.0),
        )
        self._attempts = attempts

    async def aclose(self) -> None:
        await self._client.aclose()

    async def start(self, operation_id: str) -> dict[str, Any]:
        return await self._call("POST", f"/{operation_id}/start")

    async def known_documents(self, operation_id: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = (await self._call("GET", f"/{operation_id}/documents"))["items"]
        return items

    async def record_plan(self, operation_id: str, plan: dict[str, Any]) -> dict[str, Any]:
        return await self._call("PUT", f"/{operation_id}/plan", json=plan)

    async def batch(self, operation_id: str, number: int) -> dict[str, Any]:
        return await self._call("GET", f"/{operation_id}/batches/{number}")

    async def commit_batch(self, operation_id: str, number: int, body: dict[str, Any]) -> dict[str, Any]:
        return await self._call("PUT", f"/{operation_id}/batches/{number}", json=body)

    async def finalize(self, operation_id: str) -> dict[str, Any]:
        return await self._call("POST", f"/{operation_id}/finalize")

    async def fail(self, operation_id: str, reason: str) -> dict[str, Any]:
        return await self._call("POST", f"/{operation_id}/fail", json={"reason": reason[:2000]})

    async def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        delay = 0.5
        for attempt in range(1, self._attempts + 1):
            try:
                response = await self._client.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code < 400:
                    body: dict[str, Any] = response.json()
                    return body
                if response.status_code not in RETRYABLE_STATUS and is_error_body(response.text):
                    raise _error_from(response)
                # A 5xx, or a 4xx the gateway did not write: a bare 404 while its pod was being replaced
                # once read as "no such batch" and dropped thirty batches of a job.
                problem = f"HTTP {response.status_code}: {response.text[:200]}"
            if attempt == self._attempts:
                raise BackendUnavailableError(f"the gateway did not answer {method} {path}: {problem}")
            log.info("gateway retry path=%s attempt=%d problem=%s", path, attempt, problem)
            await asyncio.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")


def _error_from(response: httpx.Response) -> SemantikError:
    message, field = error_parts(response.text)
    if response.status_code == 404:
        return NotFoundError(message, field=field)
    if response.status_code == 409:
        return ConflictError(message, field=field)
    if response.status_code == 413:
        return BodyTooLargeError(message, field=field)
    if response.status_code in (401, 403):
        return InvalidInputError(f"the gateway refused the worker's token: {message}", field="internal_token")
    return InvalidInputError(message, field=field)
