"""A cap on request bodies, enforced as the bytes arrive: before any parsing, routing or authentication.

A pure ASGI middleware rather than a dependency, because FastAPI reads and parses a body before it runs a
route's dependencies, so a check there would come after the gateway had already held the whole body.
"""

from __future__ import annotations

import hmac
import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from semantik.contracts.errors import error_body

INTERNAL_PREFIX = "/internal/"


class BodyLimit:
    """413 for a body over the limit: at once when Content-Length says so, or as soon as a streamed
    (chunked) body passes it, when the app has not answered yet.

    The internal API's larger limit applies only to requests that carry the internal token, so a caller
    without it can send no more than a public one.
    """

    def __init__(self, app: ASGIApp, *, limit: int, internal_limit: int, internal_token: str | None) -> None:
        self.app = app
        self.limit = limit
        self.internal_limit = internal_limit
        self.internal_authorization = f"Bearer {internal_token}".encode() if internal_token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, setting = self._limit_for(scope)
        declared = _header(scope, b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await _reject(send, 400, "invalid_input", "Content-Length is not a number")
                return
            if int(declared) > limit:
                await _reject_too_large(send, limit, setting)
                return
        received = 0
        started = False  # the app has begun its response: too late for a 413
        answered = False  # the 413 went out: the app's own response is dropped

        async def counting_receive() -> Message:
            nonlocal received, answered
            if received > limit:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Answer now and tell the app the client left, so it stops reading.
                    if not started:
                        answered = True
                        await _reject_too_large(send, limit, setting)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if answered:
                return
            started = True
            await send(message)

        await self.app(scope, counting_receive, guarded_send)

    def _limit_for(self, scope: Scope) -> tuple[int, str]:
        if self.internal_authorization is not None and str(scope.get("path", "")).startswith(INTERNAL_PREFIX):
            authorization = _header(scope, b"authorization")
            if authorization is not None and hmac.compare_digest(
                authorization.encode("latin-1"), self.internal_authorization
            ):
                return self.internal_limit, "SEMANTIK_MAX_INTERNAL_REQUEST_BYTES"
        return self.limit, "SEMANTIK_MAX_REQUEST_BYTES"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1").strip()
    return None


async def _reject_too_large(send: Send, limit: int, setting: str) -> None:
    await _reject(send, 413, "request_too_large", f"the request body is larger than {limit} bytes ({setting})")


async def _reject(send: Send, status: int, code: str, message: str) -> None:
    body = json.dumps(error_body(code, message)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    # No `Connection: close`: a client still sending would get a reset instead of this answer. The server
    # (uvicorn) drops what else arrives, holding none of it, and closes an idle connection after its
    # keep-alive timeout.
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
