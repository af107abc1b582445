"""Progress a client can rely on: the SSE and WebSocket streams of an operation, dropped and resumed mid-way,
over a real socket (uvicorn), with API keys required.

The embedder is the real model behind a turnstile: each embed call (one per batch of files) waits for a
permit the test hands out, so "mid-operation" is a state the test holds, not a race it hopes to win."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from semantik.core.access import Role
from semantik.core.embedding import Embedder, Embeddings, TextKind
from semantik.core.services.indexing import PROGRESS_WRITE_INTERVAL
from semantik.core.services.keys import create_key
from semantik.core.settings import Settings
from semantik.gateway import progress_socket
from semantik.gateway.app import create_app
from tests.integration.conftest import CountingEmbedder
from tests.support.corpus import build_many_files
from tests.support.servers import serve_in_process

FILES = 200
"""At 64 files a batch, at least four embed calls: two permits never finish the operation."""


class TurnstileEmbedder(CountingEmbedder):
    """The real embedder; each embed call first takes one permit."""

    def __init__(self, inner: Embedder) -> None:
        super().__init__(inner)
        self.permits = asyncio.Semaphore(0)
        self.waiting = 0

    async def embed(self, texts: Sequence[str], kind: TextKind = TextKind.DOCUMENT) -> Embeddings:
        self.waiting += 1
        try:
            await self.permits.acquire()
        finally:
            self.waiting -= 1
        return await super().embed(texts, kind)

    def allow(self, calls: int) -> None:
        for _ in range(calls):
            self.permits.release()

    async def held(self) -> None:
        """Until a batch waits for its permit, and then long enough that the progress written before it
        does not hold back the next write (progress is written at most every PROGRESS_WRITE_INTERVAL)."""
        async with asyncio.timeout(120):
            while True:
                if self.waiting:
                    break
                await asyncio.sleep(0.02)
        await asyncio.sleep(PROGRESS_WRITE_INTERVAL + 0.1)


@dataclass
class Gateway:
    url: str
    embedder: TurnstileEmbedder
    admin: str
    reader: str
    """Read over the collection `docs` only."""
    outsider: str
    """Read over the collection `other` only."""

    def client(self, key: str | None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=60)

    def ws_url(self, operation_id: str, after: int | None = None) -> str:
        query = f"?after={after}" if after is not None else ""
        return f"{self.url.replace('http://', 'ws://')}/api/v1/operations/{operation_id}/ws{query}"


@pytest.fixture
async def gateway(settings: Settings, embedder: CountingEmbedder) -> AsyncIterator[Gateway]:
    turnstile = TurnstileEmbedder(embedder)
    app = create_app(settings.model_copy(update={"require_auth": True}), embedder=turnstile)
    async with serve_in_process(app) as url:
        semantik = app.state.semantik
        admin, _ = await create_key(semantik, "admin")
        reader, _ = await create_key(semantik, "reader", role=Role.READ, scopes=("docs",))
        outsider, _ = await create_key(semantik, "outsider", role=Role.READ, scopes=("other",))
        yield Gateway(url, turnstile, admin, reader, outsider)
        turnstile.allow(1000)  # an operation still waiting finishes, so the gateway can stop


async def start_index(gateway: Gateway, folder: Path, name: str = "docs", **collection: Any) -> str:
    async with gateway.client(gateway.admin) as admin:
        created = await admin.post("/api/v1/collections", json={"name": name, "source_path": str(folder), **collection})
        assert created.status_code == 201, created.text
        started = await admin.post(f"/api/v1/collections/{name}/index")
        assert started.status_code == 202, started.text
        operation_id: str = started.json()["operation_id"]
        return operation_id


async def operation(gateway: Gateway, operation_id: str) -> dict[str, Any]:
    async with gateway.client(gateway.reader) as client:
        response = await client.get(f"/api/v1/operations/{operation_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


async def wait_until(gateway: Gateway, operation_id: str, done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    async with asyncio.timeout(120):
        while True:
            state = await operation(gateway, operation_id)
            if done(state):
                return state
            await asyncio.sleep(0.05)


@dataclass(frozen=True)
class Event:
    event: str
    id: int
    data: dict[str, Any]


async def sse_events(response: httpx.Response) -> AsyncIterator[Event]:
    """The events of an SSE response as they arrive (comments, the keep-alive pings, skipped)."""
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line == "":
            if fields:
                yield Event(fields["event"], int(fields["id"]), json.loads(fields["data"]))
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")


async def read_sse(
    gateway: Gateway,
    operation_id: str,
    key: str,
    *,
    last_event_id: int | None = None,
    until: Callable[[Event], bool] | None = None,
) -> list[Event]:
    """Events until `until(event)` holds, then the connection is dropped; or until the stream ends."""
    headers = {"Last-Event-ID": str(last_event_id)} if last_event_id is not None else {}
    events: list[Event] = []
    path = f"/api/v1/operations/{operation_id}/events"
    async with (
        gateway.client(key) as client,
        asyncio.timeout(120),
        client.stream("GET", path, headers=headers) as response,
    ):
        assert response.status_code == 200
        async for event in sse_events(response):
            events.append(event)
            if until is not None and until(event):
                break
    return events


async def read_ws(ws: ClientConnection, until: Callable[[Event], bool] | None = None) -> list[Event]:
    events: list[Event] = []
    async with asyncio.timeout(120):
        try:
            while True:
                message = json.loads(await ws.recv())
                events.append(Event(message["event"], message["id"], message["data"]))
                if until is not None and until(events[-1]):
                    return events
        except ConnectionClosed:
            return events


def assert_one_run(events: list[Event], final: dict[str, Any], status: str) -> None:
    """What a client relies on: ids strictly increase (so nothing is seen twice), one `end` closes the
    stream, and it carries the outcome and the same final state as the REST answer."""
    ids = [event.id for event in events]
    assert ids == sorted(set(ids)), ids
    assert [event.event for event in events] == ["progress"] * (len(events) - 1) + ["end"]
    assert all(event.id == event.data["seq"] for event in events)
    assert events[-1].data == final
    assert final["status"] == status


def progressed(event: Event) -> bool:
    return bool(event.data["chunks"] > 0)


def first_event(_: Event) -> bool:
    return True


async def advance_while_away(gateway: Gateway, operation_id: str, last_seen: Event) -> dict[str, Any]:
    """One more batch while the client is away; the state it missed, held still until the test goes on."""
    await gateway.embedder.held()
    gateway.embedder.allow(1)
    missed = await wait_until(gateway, operation_id, lambda state: state["chunks"] > last_seen.data["chunks"])
    assert missed["status"] == "running" and missed["seq"] > last_seen.id
    await gateway.embedder.held()
    return missed


async def test_an_sse_client_that_drops_and_resumes_misses_nothing_and_sees_nothing_twice(
    gateway: Gateway, tmp_path: Path
) -> None:
    operation_id = await start_index(gateway, build_many_files(tmp_path / "many", count=FILES))
    await gateway.embedder.held()
    first = await read_sse(gateway, operation_id, gateway.reader, until=first_event)
    gateway.embedder.allow(1)
    first += await read_sse(gateway, operation_id, gateway.reader, last_event_id=first[-1].id, until=progressed)
    # Dropped mid-operation; the operation moves on while nobody listens, then holds still.
    missed = await advance_while_away(gateway, operation_id, first[-1])

    resumed_at = first[-1].id
    rest = await read_sse(gateway, operation_id, gateway.reader, last_event_id=resumed_at, until=first_event)
    # The state it missed comes at once: each state supersedes the earlier ones, so nothing is lost.
    assert rest == [Event("progress", missed["seq"], missed)]
    # Resumed at the state it holds, a client gets nothing until the state changes.
    newer = asyncio.create_task(read_sse(gateway, operation_id, gateway.reader, last_event_id=rest[-1].id))
    await asyncio.sleep(1)
    assert not newer.done()
    gateway.embedder.allow(100)
    rest += await newer

    final = await operation(gateway, operation_id)
    assert_one_run(first + rest, final, "succeeded")
    assert final["files_processed"] == final["files_total"] > FILES
    # Resuming after the end (or at it) gets the end again and nothing else: a client can always finish.
    for after in (final["seq"], final["seq"] + 10, resumed_at):
        again = await read_sse(gateway, operation_id, gateway.reader, last_event_id=after)
        assert again == [Event("end", final["seq"], final)]


async def test_the_websocket_sends_the_same_events_resumes_after_an_id_and_closes_after_the_end(
    gateway: Gateway, tmp_path: Path
) -> None:
    operation_id = await start_index(gateway, build_many_files(tmp_path / "many", count=FILES))
    header = {"Authorization": f"Bearer {gateway.reader}"}
    await gateway.embedder.held()
    async with connect(gateway.ws_url(operation_id), additional_headers=header) as ws:
        first = await read_ws(ws, until=first_event)
        gateway.embedder.allow(1)
        first += await read_ws(ws, until=progressed)
    missed = await advance_while_away(gateway, operation_id, first[-1])

    async with connect(gateway.ws_url(operation_id, after=first[-1].id), additional_headers=header) as ws:
        assert await read_ws(ws, until=first_event) == [Event("progress", missed["seq"], missed)]
    # A browser cannot set headers: the token comes as the first message. Resumed at the state it
    # holds, the client gets nothing until the state changes.
    async with connect(gateway.ws_url(operation_id, after=missed["seq"])) as ws:
        await ws.send(json.dumps({"token": gateway.reader}))
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ws.recv(), 1)
        gateway.embedder.allow(100)
        rest = await read_ws(ws)
        assert ws.close_code == 1000

    final = await operation(gateway, operation_id)
    assert_one_run([*first, Event("progress", missed["seq"], missed), *rest], final, "succeeded")
    # The same source as SSE: the same end, with the same id, on both.
    sse = await read_sse(gateway, operation_id, gateway.reader)
    async with connect(gateway.ws_url(operation_id, after=final["seq"]), additional_headers=header) as ws:
        assert await read_ws(ws) == sse == [Event("end", final["seq"], final)]
        assert ws.close_code == 1000


async def ws_refusal(url: str, headers: dict[str, str] | None = None, first: str | None = None) -> tuple[int, str]:
    """The close code and reason of a connection the gateway refuses, after checking no event came first."""
    async with connect(url, additional_headers=headers) as ws:
        if first is not None:
            await ws.send(first)
        assert await read_ws(ws) == []
        assert ws.close_code is not None
        return ws.close_code, ws.close_reason or ""


async def test_streams_are_authorised_by_scope_and_refuse_before_any_event(
    gateway: Gateway, small_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    operation_id = await start_index(gateway, small_folder)
    gateway.embedder.allow(100)
    await wait_until(gateway, operation_id, lambda state: state["status"] == "succeeded")
    events = f"/api/v1/operations/{operation_id}/events"
    url = gateway.ws_url(operation_id)

    async with gateway.client(gateway.outsider) as outsider, gateway.client(None) as anonymous:
        assert (await outsider.get(events)).status_code == 404
        assert (await anonymous.get(events)).status_code == 401
    async with gateway.client(gateway.reader) as reader:
        assert (await reader.get(events, headers={"Last-Event-ID": "-1"})).status_code == 422
        assert (await reader.get("/api/v1/operations/nope/events")).status_code == 404

    assert (await ws_refusal(url, {"Authorization": f"Bearer {gateway.outsider}"}))[0] == 4404
    assert (await ws_refusal(url, first=json.dumps({"token": gateway.outsider})))[0] == 4404
    assert (await ws_refusal(gateway.ws_url("nope"), first=json.dumps({"token": gateway.reader})))[0] == 4404
    assert (await ws_refusal(url, {"Authorization": "Bearer sk_wrong"}))[0] == 4401
    code, reason = await ws_refusal(url, first=json.dumps({"nothing": "here"}))
    assert code == 4401 and "token" in reason
    assert (await ws_refusal(url, first="not json"))[0] == 4401
    assert (await ws_refusal(url, first="x" * (progress_socket.MAX_MESSAGE_CHARS + 1)))[0] == 1009
    assert (await ws_refusal(gateway.ws_url(operation_id, after=-1), first=json.dumps({"token": gateway.reader})))[
        0
    ] == 4422
    # A client that says nothing is not waited for long.
    monkeypatch.setattr(progress_socket, "TOKEN_WAIT_SECONDS", 0.2)
    assert (await ws_refusal(url))[0] == 4401
    # The token never rides in the URL: a query parameter is not credentials.
    assert (await ws_refusal(f"{url}?token={gateway.reader}"))[0] == 4401


async def test_the_end_says_cancelled_or_failed_with_why(gateway: Gateway, tmp_path: Path, small_folder: Path) -> None:
    operation_id = await start_index(gateway, build_many_files(tmp_path / "many", count=FILES))
    await gateway.embedder.held()
    async with gateway.client(gateway.admin) as admin:
        # Embedded mode stops between batches: the cancel answers once the batch in flight is done.
        cancelling = asyncio.create_task(admin.post(f"/api/v1/operations/{operation_id}/cancel"))
        while not cancelling.done():
            gateway.embedder.allow(1)
            await asyncio.wait([cancelling], timeout=1)
        assert cancelling.result().status_code == 200
    cancelled = await operation(gateway, operation_id)
    header = {"Authorization": f"Bearer {gateway.reader}"}
    async with connect(gateway.ws_url(operation_id), additional_headers=header) as ws:
        assert await read_ws(ws) == [Event("end", cancelled["seq"], cancelled)]
    assert cancelled["status"] == "cancelled" and 0 < cancelled["files_processed"] < cancelled["files_total"]

    gateway.embedder.allow(100)
    # A model this gateway does not run: the run fails, and says why.
    failing = await start_index(gateway, small_folder, name="qwen", model="Qwen/Qwen3-Embedding-0.6B")
    events = await read_sse(gateway, failing, gateway.admin)
    assert events[-1].event == "end"
    assert events[-1].data["status"] == "failed"
    assert events[-1].data["error"] == (
        "this process embeds with sentence-transformers/all-MiniLM-L6-v2, "
        "but the index is built with Qwen/Qwen3-Embedding-0.6B"
    )


@pytest.fixture
def small_folder(tmp_path: Path) -> Path:
    return build_many_files(tmp_path / "small", count=4)
