"""The WebSocket progress stream: authenticate, authorise, then send the operation's events until `end`.

A WebSocket route cannot use the bearer dependency of the REST routes, so it checks credentials itself,
after accepting the connection: a refusal is then a close code the client can read (4000 + the HTTP status
it would have got: 4401, 4403, 4404, 4422), sent before any event. Browsers cannot set headers on a
WebSocket, so without an `Authorization: Bearer` header the token comes as the first message,
`{"token": "..."}`; never in the URL, which ends up in logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncGenerator, Mapping
from typing import Any

from fastapi import WebSocket, WebSocketDisconnect
from fastapi.security.utils import get_authorization_scheme_param
from starlette import status
from starlette.websockets import WebSocketState

from semantik.core.access import Role
from semantik.core.context import Semantik
from semantik.core.errors import SemantikError, UnauthorizedError
from semantik.gateway.deps import authenticate, authorized_operation
from semantik.gateway.oidc import OidcVerifier
from semantik.gateway.progress import ProgressEvent, operation_events, parse_resume_point

log = logging.getLogger(__name__)

TOKEN_WAIT_SECONDS = 10.0
"""How long a connection without an Authorization header may take to send its token."""
MAX_MESSAGE_CHARS = 16 * 1024
"""The largest message a client may send (its token): room for an OIDC token, refused beyond."""
MAX_REASON_BYTES = 123
"""A close frame's reason: 125 bytes of payload less the code."""


class RefusedError(Exception):
    """Why the server closes the connection: the close code and a reason for people."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason


def refusal_for(exc: SemantikError) -> RefusedError:
    """The close that tells the client what the REST routes tell it with an HTTP status."""
    code = 4000 + exc.status if 400 <= exc.status < 500 else status.WS_1011_INTERNAL_ERROR
    return RefusedError(code, exc.message)


def bearer_token(authorization: str | None) -> str | None:
    scheme, token = get_authorization_scheme_param(authorization)
    return token if scheme.lower() == "bearer" and token else None


def token_from_message(message: Mapping[str, Any]) -> str:
    """The token of a first message `{"token": "..."}`."""
    text = message.get("text")
    if text is None:
        raise RefusedError(status.WS_1003_UNSUPPORTED_DATA, 'send the token as a text message {"token": "..."}')
    if len(text) > MAX_MESSAGE_CHARS:
        raise RefusedError(status.WS_1009_MESSAGE_TOO_BIG, f"a message may hold at most {MAX_MESSAGE_CHARS} characters")
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    token = body.get("token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        raise refusal_for(UnauthorizedError('credentials are required: send {"token": "<API key or OIDC token>"}'))
    return token


async def serve_progress(websocket: WebSocket, operation_id: str) -> None:
    """Serve one client: the operation's events from the resume point `?after=<id>`, then a normal close."""
    await websocket.accept()
    try:
        events = await _open_events(websocket, operation_id)
    except WebSocketDisconnect:
        return
    except (SemantikError, RefusedError) as exc:
        refusal = exc if isinstance(exc, RefusedError) else refusal_for(exc)
        await _close(websocket, refusal.code, refusal.reason)
        return
    await _stream(websocket, events)


async def _open_events(websocket: WebSocket, operation_id: str) -> AsyncGenerator[ProgressEvent, None]:
    semantik: Semantik = websocket.app.state.semantik
    oidc: OidcVerifier | None = getattr(websocket.app.state, "oidc", None)
    token = bearer_token(websocket.headers.get("authorization"))
    if token is None and semantik.settings.auth_required:
        token = await _first_message_token(websocket)
    principal = await authenticate(semantik, oidc, token)
    after = parse_resume_point(websocket.query_params.get("after"), "after")
    view = await authorized_operation(semantik, principal, operation_id, Role.READ)
    return operation_events(semantik, operation_id, after, first=view)


async def _first_message_token(websocket: WebSocket) -> str:
    try:
        async with asyncio.timeout(TOKEN_WAIT_SECONDS):
            message = await websocket.receive()
    except TimeoutError:
        raise refusal_for(
            UnauthorizedError(f'credentials are required: send {{"token": "..."}} within {TOKEN_WAIT_SECONDS:g} s')
        ) from None
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", status.WS_1000_NORMAL_CLOSURE))
    return token_from_message(message)


async def _stream(websocket: WebSocket, events: AsyncGenerator[ProgressEvent, None]) -> None:
    sender = asyncio.create_task(_send_all(websocket, events))
    listener = asyncio.create_task(_refuse_messages(websocket))
    try:
        await asyncio.wait((sender, listener), return_when=asyncio.FIRST_COMPLETED)
    finally:
        # Whichever still runs is moot: the stream ended, the client left, or it broke the protocol.
        for task in (sender, listener):
            task.cancel()
        await asyncio.wait((sender, listener))
    if listener.done() and not listener.cancelled():
        refusal = listener.result()
        if refusal is not None:
            await _close(websocket, refusal.code, refusal.reason)
        return
    error = sender.exception()
    if isinstance(error, WebSocketDisconnect):
        return
    if error is not None:
        log.error("progress stream failed error=%r", error, exc_info=error)
        await _close(websocket, status.WS_1011_INTERNAL_ERROR, "the operation could not be read: resume later")
        return
    await _close(websocket, status.WS_1000_NORMAL_CLOSURE, "operation ended")


async def _send_all(websocket: WebSocket, events: AsyncGenerator[ProgressEvent, None]) -> None:
    async with contextlib.aclosing(events):
        async for event in events:
            await websocket.send_text(json.dumps(event.message(), sort_keys=True))


async def _refuse_messages(websocket: WebSocket) -> RefusedError | None:
    """None when the client leaves; a refusal when it sends anything, since a started stream reads nothing."""
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        return None
    return RefusedError(status.WS_1008_POLICY_VIOLATION, "this stream takes no messages once it has started")


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    if WebSocketState.DISCONNECTED in (websocket.client_state, websocket.application_state):
        return
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):  # the client left while we closed
        await websocket.close(code, reason.encode()[:MAX_REASON_BYTES].decode(errors="ignore"))
