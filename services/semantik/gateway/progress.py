"""An operation's progress as a stream of events: the one source behind the SSE and the WebSocket routes.

Every event is the operation's whole state (the REST answer of `GET /api/v1/operations/{id}`) and its id is
the row's `seq`, bumped by every change. A later state supersedes every earlier one, so a client that
resumes after the id it saw last gets only newer states and loses nothing it needs. The `end` event, with
the outcome in `status` (and why in `error` when it failed), closes every stream: it is sent on every
connection to a finished operation, whatever id the client resumes after, so a client can always finish.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from sse_starlette import EventSourceResponse

from semantik.core.access import Principal, Role
from semantik.core.context import Semantik
from semantik.core.db.models import OperationStatus
from semantik.core.errors import InvalidInputError
from semantik.core.services.indexing import OperationView
from semantik.gateway.deps import authorized_operation, read_operation_as_named
from semantik.gateway.schemas import OperationOut

POLL_SECONDS = 0.25
MAX_SEQ = 2**63 - 1
"""The largest `seq` the BIGINT column holds: a resume point beyond it is not one this gateway gave."""
MAX_SEQ_DIGITS = len(str(MAX_SEQ))


class EventKind(StrEnum):
    PROGRESS = "progress"
    END = "end"


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    kind: EventKind
    id: int
    data: dict[str, Any]
    """The operation as `OperationOut` JSON."""

    def sse(self) -> dict[str, str]:
        """The event as sse_starlette sends it: `event:`, `id:` and one `data:` line of JSON."""
        return {"event": self.kind.value, "id": str(self.id), "data": json.dumps(self.data, sort_keys=True)}

    def message(self) -> dict[str, Any]:
        """The event as one WebSocket message."""
        return {"event": self.kind.value, "id": self.id, "data": self.data}


def next_event(view: OperationView, after_seq: int) -> ProgressEvent | None:
    """What to send now, the client holding the state `after_seq`: the end of a finished operation
    always; a newer state; or nothing."""
    if OperationStatus(view.status).finished:
        return ProgressEvent(EventKind.END, view.seq, _data(view))
    if view.seq > after_seq:
        return ProgressEvent(EventKind.PROGRESS, view.seq, _data(view))
    return None


def parse_resume_point(text: str | None, field: str) -> int:
    """The event id a client resumes after (-1, before every event, when it names none)."""
    if text is None or text == "":
        return -1
    if len(text) > MAX_SEQ_DIGITS or not (text.isascii() and text.isdigit()) or int(text) > MAX_SEQ:
        raise InvalidInputError(f"{field} must be an event id this stream sent (a non-negative integer)", field=field)
    return int(text)


async def operation_events(
    semantik: Semantik, operation_id: str, after_seq: int, *, first: OperationView | None = None
) -> AsyncGenerator[ProgressEvent, None]:
    """The operation's states newer than `after_seq` as they happen, ending with `end`; `first` is a
    view the caller already read (while authorising), saving one read."""
    view = first
    while True:
        if view is None:
            # Shielded: a client leaving mid-read cancels the stream, and a query cut off in the middle
            # would cost the pool its connection.
            view = await asyncio.shield(read_operation_as_named(semantik, operation_id))
        event = next_event(view, after_seq)
        if event is not None:
            yield event
            if event.kind is EventKind.END:
                return
            after_seq = event.id
        view = None
        await asyncio.sleep(POLL_SECONDS)


async def event_stream(
    semantik: Semantik, principal: Principal, operation_id: str, last_event_id: str | None
) -> EventSourceResponse:
    """The Server-Sent Events of `/operations/{id}/events` and of the web UI's collection page: authorised
    (read on the operation's collection) and the resume point checked before the stream opens, so a refusal
    comes as the caller's usual error, not as a broken stream."""
    first = await authorized_operation(semantik, principal, operation_id, Role.READ)
    after = parse_resume_point(last_event_id, "Last-Event-ID")

    async def events() -> AsyncIterator[dict[str, str]]:
        async for event in operation_events(semantik, operation_id, after, first=first):
            yield event.sse()

    return EventSourceResponse(events(), ping=15)


def _data(view: OperationView) -> dict[str, Any]:
    return OperationOut.model_validate(asdict(view)).model_dump(mode="json")
