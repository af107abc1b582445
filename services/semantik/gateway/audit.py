"""Which requests the audit trail records, and the middleware that records them.

A pure ASGI middleware outside every other layer but the metrics, so what it records is the status the
client really got (a 413 from the body limit, a 401 from authentication, a 500 from a crash), and so a
request refused before any principal is known is still recorded, as "anonymous".
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from semantik.core.access import Principal
from semantik.core.context import Semantik
from semantik.core.db.models import utcnow
from semantik.core.errors import ForbiddenError, OutOfScopeError, UnauthorizedError
from semantik.core.services.audit import ANONYMOUS, AuditRecord, Outcome, record
from semantik.gateway import metrics
from semantik.gateway.routing import matched_route

log = logging.getLogger(__name__)

BODY_CAPTURE_BYTES = 64 * 1024
"""A request body longer than this is not parsed for its target (a collection spec is far smaller)."""
ERROR_CAPTURE_BYTES = 8 * 1024
"""Enough of an error response to read its message; the gateway's errors are a few hundred bytes."""
DETAIL_CHARS = 1000


@dataclass(frozen=True, slots=True)
class Audited:
    """A state-changing route: its action's name and where its target comes from.

    The target is the path parameter `path_param`, else the request body's field `body_field`, else what
    the route itself noted with `note` (an id that exists only once the route has made the thing).
    """

    action: str
    path_param: str | None = None
    body_field: str | None = None


ACTIONS: Mapping[tuple[str, str], Audited] = {
    ("POST", "/api/v1/collections"): Audited("collection.create", body_field="name"),
    ("DELETE", "/api/v1/collections/{name}"): Audited("collection.delete", path_param="name"),
    ("POST", "/api/v1/collections/{name}/index"): Audited("collection.index", path_param="name"),
    ("POST", "/api/v1/operations/{operation_id}/cancel"): Audited("operation.cancel", path_param="operation_id"),
    ("POST", "/api/v1/keys"): Audited("key.create"),
    ("DELETE", "/api/v1/keys/{key_id}"): Audited("key.revoke", path_param="key_id"),
    # The web UI's forms, and its sign-ins: a refused one (a wrong key, a forged OIDC state) is a denial.
    ("POST", "/collections/{name}/index"): Audited("collection.index", path_param="name"),
    ("POST", "/sign-in"): Audited("session.sign_in"),
    ("GET", "/sign-in/oidc/callback"): Audited("session.sign_in"),
    ("POST", "/sign-out"): Audited("session.sign_out"),
}
"""(method, route template) -> what is recorded. Reads and searches are not state changes: never recorded;
the one GET is the OIDC callback, where a browser signs in."""

AUDITED_METHODS = frozenset(method for method, _ in ACTIONS)


def audited(method: str, template: str) -> Audited | None:
    return ACTIONS.get((method.upper(), template))


def outcome_of(status: int, error: BaseException | None) -> Outcome:
    """Denied: refused by authentication (401) or authorisation (403, or the 404 that hides a collection
    outside the caller's scope). Any other error status failed."""
    if status < 400:
        return Outcome.SUCCEEDED
    if status in (401, 403) or isinstance(error, (UnauthorizedError, ForbiddenError, OutOfScopeError)):
        return Outcome.DENIED
    return Outcome.FAILED


def target_of(what: Audited, path_params: Mapping[str, Any], body: bytes | None, noted: str | None) -> str | None:
    if noted is not None:
        return noted
    if what.path_param is not None:
        value = path_params.get(what.path_param)
        return None if value is None else str(value)
    if what.body_field is not None and body is not None:
        return _body_field(body, what.body_field)
    return None


def error_message(body: bytes) -> str | None:
    """The message of the gateway's error shape `{"error": {"message": ...}}`, or the start of another body."""
    try:
        message = json.loads(body)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        text = body.decode("utf-8", "replace").strip()
        return text[:DETAIL_CHARS] or None
    return str(message)[:DETAIL_CHARS]


def note(request: Request, target: str, detail: str | None = None) -> None:
    """Name the target (and what was made) for a route whose target exists only once it has run."""
    request.state.audit_target = target
    request.state.audit_detail = detail


def _body_field(body: bytes, name: str) -> str | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    value = data.get(name) if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


class _Exchange:
    """What the middleware keeps of one request and its response: the status, the start of an error
    body, and a small request body whole (a body cut short is not parsed)."""

    def __init__(self, receive: Receive, send: Send, *, keep_body: bool) -> None:
        self._receive = receive
        self._send = send
        self.status = 500  # until the response starts: a crash before it is the 500 the client gets
        self.error_body = bytearray()
        self._body = bytearray()
        self._keep_body = keep_body
        self._body_whole = False

    @property
    def body(self) -> bytes | None:
        return bytes(self._body) if self._body_whole else None

    async def receive(self) -> Message:
        message = await self._receive()
        if self._keep_body and message["type"] == "http.request":
            chunk = message.get("body", b"")
            if len(self._body) + len(chunk) > BODY_CAPTURE_BYTES:
                self._keep_body = False
            else:
                self._body.extend(chunk)
                self._body_whole = not message.get("more_body", False)
        return message

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        elif message["type"] == "http.response.body" and self.status >= 400:
            room = ERROR_CAPTURE_BYTES - len(self.error_body)
            self.error_body.extend(message.get("body", b"")[: max(room, 0)])
        await self._send(message)


class AuditTrail:
    """Records each request `ACTIONS` names once its response is sent; passes every other one through."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        matched = matched_route(scope) if scope["type"] == "http" and scope["method"] in AUDITED_METHODS else None
        what = audited(scope["method"], matched[0]) if matched is not None else None
        if matched is None or what is None:
            await self.app(scope, receive, send)
            return
        at = utcnow()
        exchange = _Exchange(receive, send, keep_body=what.body_field is not None)
        try:
            await self.app(scope, exchange.receive, exchange.send)
        except Exception:
            await self._record(scope, what, matched[1], at, exchange)
            raise
        await self._record(scope, what, matched[1], at, exchange)

    async def _record(
        self, scope: Scope, what: Audited, path_params: Mapping[str, Any], at: datetime, exchange: _Exchange
    ) -> None:
        state = Request(scope).state
        principal: Principal | None = getattr(state, "principal", None)
        outcome = outcome_of(exchange.status, getattr(state, "error", None))
        if outcome is Outcome.SUCCEEDED:
            detail = getattr(state, "audit_detail", None)
        else:
            detail = error_message(bytes(exchange.error_body)) or "internal error; see the gateway's log"
        event = AuditRecord(
            principal=principal.subject if principal is not None else ANONYMOUS,
            action=what.action,
            target=target_of(what, path_params, exchange.body, getattr(state, "audit_target", None)),
            outcome=outcome,
            status=exchange.status,
            detail=detail,
            at=at,
        )
        semantik: Semantik | None = getattr(scope["app"].state, "semantik", None)
        if semantik is None:
            log.error("audit event not stored: the app has no database open: %s", event)
            metrics.AUDIT_EVENTS_UNSTORED.inc()
            return
        if not await record(semantik, event):
            metrics.AUDIT_EVENTS_UNSTORED.inc()
