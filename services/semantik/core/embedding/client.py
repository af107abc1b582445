"""The embedder service's client: what the pipeline and the gateway use when SEMANTIK_EMBEDDER_URL is set.

Pooled connections, requests of bounded size sent concurrently (so the service can batch them), and
retries with backoff on 503 (honouring Retry-After) and on connection errors, within a deadline.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

import httpx
import numpy as np

from semantik.contracts.errors import error_parts, is_error_body
from semantik.contracts.vectors import decode_vector
from semantik.core.embedding import Embeddings, TextKind
from semantik.core.errors import BackendUnavailableError, InvalidInputError, SemantikError

log = logging.getLogger(__name__)

RETRYABLE_STATUS = {502, 503, 504}


class HttpEmbedder:
    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        model_name: str,
        dimension: int,
        request_texts: int = 128,
        concurrency: int = 8,
        deadline: float = 300.0,
    ) -> None:
        self._client = client
        self._model_name = model_name
        self._dimension = dimension
        self._request_texts = request_texts
        self._slots = asyncio.Semaphore(concurrency)
        self._deadline = deadline

    @classmethod
    async def connect(
        cls, url: str, *, token: str | None = None, request_timeout: float = 60.0, deadline: float = 300.0
    ) -> HttpEmbedder:
        """Open a pooled client and learn the served model (retrying while the service starts).

        `token`: the embedder's bearer token (SEMANTIK_EMBEDDER_TOKEN), sent with every request.
        """
        client = httpx.AsyncClient(
            base_url=url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"} if token else None,
            timeout=httpx.Timeout(request_timeout, connect=5.0),
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
        )
        embedder = cls(client, model_name="", dimension=0, deadline=deadline)
        try:
            info = (await embedder._request("GET", "/models")).json()
        except BaseException:
            await client.aclose()
            raise
        embedder._model_name, embedder._dimension = str(info["model"]), int(info["dimension"])
        return embedder

    @property
    def model_name(self) -> str:
        return self._model_name

    @property
    def dimension(self) -> int:
        return self._dimension

    async def aclose(self) -> None:
        await self._client.aclose()

    async def embed(self, texts: Sequence[str], kind: TextKind = TextKind.DOCUMENT) -> Embeddings:
        if not texts:
            return Embeddings(np.zeros((0, self._dimension), dtype=np.float32), 0)
        parts = [texts[i : i + self._request_texts] for i in range(0, len(texts), self._request_texts)]
        results = await asyncio.gather(*(self._embed_part(part, kind) for part in parts))
        return Embeddings(np.concatenate([r.vectors for r in results]), sum(r.tokens for r in results))

    async def _embed_part(self, texts: Sequence[str], kind: TextKind) -> Embeddings:
        async with self._slots:
            response = await self._request(
                "POST", "/embed", json={"texts": list(texts), "kind": kind.value, "encoding_format": "base64"}
            )
        body = response.json()
        vectors = np.stack([decode_vector(row) for row in body["vectors"]])
        return Embeddings(vectors, int(body["tokens"]))

    async def _request(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        deadline = time.monotonic() + self._deadline
        delay = 0.2
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self._client.request(method, path, **kwargs)  # type: ignore[arg-type]
            except httpx.TransportError as exc:
                problem: str = f"{type(exc).__name__}: {exc}"
                wait = delay
            else:
                if response.status_code < 400:
                    return response
                if response.status_code not in RETRYABLE_STATUS and is_error_body(response.text):
                    raise _error_from(response)
                # A 5xx, or a 4xx the embedder did not write (something between it and us): both heal.
                problem = f"HTTP {response.status_code}"
                wait = _retry_after(response) or delay
            if time.monotonic() + wait > deadline:
                raise BackendUnavailableError(
                    f"the embedder at {self._client.base_url} did not answer in {self._deadline:.0f}s "
                    f"({attempt} attempts; last: {problem})"
                )
            log.info("embedder retry attempt=%d wait=%.1fs problem=%s", attempt, wait, problem)
            await asyncio.sleep(wait)
            delay = min(delay * 2, 5.0)


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return min(float(response.headers.get("Retry-After", "")), 30.0)
    except ValueError:
        return None


def _error_from(response: httpx.Response) -> SemantikError:
    message, field = error_parts(response.text)
    if response.status_code == 401:
        # A deployment mistake, not the caller's: the gateway answers 503 and a worker fails to start.
        return BackendUnavailableError(
            f"the embedder at {response.request.url.host} refused the token (SEMANTIK_EMBEDDER_TOKEN): {message}"
        )
    if response.status_code == 507:
        # Imported here: the engine module pulls in torch (seconds), which a gateway or worker that only
        # talks to an embedder over HTTP never needs otherwise.
        from semantik.core.embedding.engine import TextTooLargeError

        return TextTooLargeError(message)
    if 400 <= response.status_code < 500:
        return InvalidInputError(f"embedder rejected the request: {message}", field=field)
    return BackendUnavailableError(f"embedder error {response.status_code}: {message}")
