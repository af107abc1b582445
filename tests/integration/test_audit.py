"""The audit trail over HTTP, on SQLite and PostgreSQL: every state change, who made it, how it ended."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from semantik.core.access import Role
from semantik.core.context import open_semantik
from semantik.core.logs import AUDIT_LOGGER
from semantik.core.services.keys import create_key
from semantik.core.settings import Settings
from semantik.gateway.app import create_app
from tests.integration.conftest import CountingEmbedder
from tests.integration.test_gateway import assert_error, create_and_index, open_client


@dataclass(frozen=True)
class Caller:
    principal: str  # what the trail names: "key:<id> <name>"
    headers: dict[str, str]


@dataclass(frozen=True)
class Callers:
    admin: Caller
    writer: Caller  # write over '*'
    reader: Caller  # read over handbook*


@pytest.fixture
def secured(settings: Settings) -> Settings:
    return settings.model_copy(update={"require_auth": True})


@pytest.fixture
async def callers(secured: Settings, embedder: CountingEmbedder) -> Callers:
    async with open_semantik(secured, embedder=embedder) as semantik:
        made = [
            await create_key(semantik, "root"),
            await create_key(semantik, "ci", role=Role.WRITE),
            await create_key(semantik, "viewer", role=Role.READ, scopes=("handbook*",)),
        ]
    admin, writer, reader = (Caller(view.principal.subject, {"Authorization": f"Bearer {key}"}) for key, view in made)
    return Callers(admin, writer, reader)


@pytest.fixture
async def client(secured: Settings, embedder: CountingEmbedder, callers: Callers) -> AsyncIterator[httpx.AsyncClient]:
    async for client in open_client(create_app(secured, embedder=embedder)):
        client.headers.update(callers.admin.headers)
        yield client


class Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def audit_lines() -> Iterator[list[logging.LogRecord]]:
    # A handler on the audit logger itself: the CLI's logging setup stops it propagating to the root.
    handler = Kept()
    logger = logging.getLogger(AUDIT_LOGGER)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


async def trail(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/audit", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return list(body["items"])


def brief(event: dict[str, Any]) -> tuple[str, str, str | None, str, int]:
    return (event["principal"], event["action"], event["target"], event["outcome"], event["status"])


async def test_each_state_change_is_recorded_with_who_what_and_how_it_ended(
    client: httpx.AsyncClient, callers: Callers, keys_folder: Path
) -> None:
    admin, writer, reader = callers.admin.principal, callers.writer.principal, callers.reader.principal
    operation = await create_and_index(client, keys_folder, "handbook")
    found = await client.post("/api/v1/collections/handbook/search", json={"query": "rotate keys"})
    assert found.status_code == 200
    assert (await client.get("/api/v1/collections/handbook")).status_code == 200

    cancel = f"/api/v1/operations/{operation['id']}/cancel"
    assert_error(await client.post(cancel, headers=callers.writer.headers), 409, "conflict", "operation_id")
    assert_error(await client.post(cancel, headers=callers.reader.headers), 403, "forbidden")
    made = await client.post("/api/v1/keys", json={"name": "bot", "role": "read", "collections": ["handbook"]})
    assert made.status_code == 201, made.text
    key_id = str(made.json()["id"])
    assert (await client.delete(f"/api/v1/keys/{key_id}")).status_code == 204
    assert_error(await client.delete("/api/v1/collections/handbook", headers=callers.reader.headers), 403, "forbidden")
    # Outside the reader's scope: a 404 to the caller, a denial in the trail.
    assert_error(await client.delete("/api/v1/collections/private", headers=callers.reader.headers), 404, "not_found")
    # Within an admin's scope, a missing collection is a plain failure.
    assert_error(await client.delete("/api/v1/collections/nowhere"), 404, "not_found")
    anonymous = await client.post("/api/v1/collections", json={"name": "sneaky"}, headers={"Authorization": ""})
    assert_error(anonymous, 401, "unauthorized")
    assert (await client.delete("/api/v1/collections/handbook", headers=callers.writer.headers)).status_code == 204

    events = await trail(client)
    assert [brief(event) for event in events] == [
        (writer, "collection.delete", "handbook", "succeeded", 204),
        ("anonymous", "collection.create", "sneaky", "denied", 401),
        (admin, "collection.delete", "nowhere", "failed", 404),
        (reader, "collection.delete", "private", "denied", 404),
        (reader, "collection.delete", "handbook", "denied", 403),
        (admin, "key.revoke", key_id, "succeeded", 204),
        (admin, "key.create", key_id, "succeeded", 201),
        (reader, "operation.cancel", operation["id"], "denied", 403),
        (writer, "operation.cancel", operation["id"], "failed", 409),
        (admin, "collection.index", "handbook", "succeeded", 202),
        (admin, "collection.create", "handbook", "succeeded", 201),
    ]  # newest first; the search and the reads are not there
    by_status = {(event["action"], event["status"]): event for event in events}
    assert by_status[("key.create", 201)]["detail"] == "bot: read on handbook"
    assert "already ended" in by_status[("operation.cancel", 409)]["detail"]
    assert "needs the write role" in by_status[("collection.delete", 403)]["detail"]
    assert "credentials are required" in by_status[("collection.create", 401)]["detail"]
    assert [event["at"] for event in events] == sorted((event["at"] for event in events), reverse=True)


async def test_only_admins_read_the_trail_which_pages_and_filters(client: httpx.AsyncClient, callers: Callers) -> None:
    for name in ("a", "b", "c", "d", "e"):
        await client.delete(f"/api/v1/collections/{name}")
    await client.delete("/api/v1/collections/a", headers=callers.writer.headers)

    for caller in (callers.reader, callers.writer):
        assert_error(await client.get("/api/v1/audit", headers=caller.headers), 403, "forbidden")
    assert_error(await client.get("/api/v1/audit", headers={"Authorization": ""}), 401, "unauthorized")

    page = (await client.get("/api/v1/audit", params={"limit": 2, "offset": 1})).json()
    assert (page["limit"], page["offset"]) == (2, 1)
    assert [event["target"] for event in page["items"]] == ["e", "d"]
    everything = await trail(client)
    assert [event["target"] for event in everything] == ["a", "e", "d", "c", "b", "a"]
    assert [event["target"] for event in await trail(client, offset=5)] == ["a"]
    assert await trail(client, offset=6) == []

    assert [event["principal"] for event in await trail(client, target="a")] == [
        callers.writer.principal,
        callers.admin.principal,
    ]
    by_writer = await trail(client, principal=callers.writer.principal)
    assert [brief(event) for event in by_writer] == [
        (callers.writer.principal, "collection.delete", "a", "failed", 404)
    ]
    assert len(await trail(client, action="collection.delete")) == 6
    assert await trail(client, action="key.create") == []

    for bad in ({"limit": 0}, {"limit": 1001}, {"offset": -1}, {"target": "x" * 201}):
        assert_error(await client.get("/api/v1/audit", params=bad), 422, "invalid_input")


async def test_the_trail_keeps_the_status_the_client_got_and_a_hostile_target(
    client: httpx.AsyncClient, secured: Settings
) -> None:
    # Refused by the body limit before anyone is authenticated: the 413 is what is recorded.
    huge = b'{"name": "big", "description": "' + b"x" * secured.max_request_bytes + b'"}'
    refused = await client.post("/api/v1/collections", content=huge, headers={"Content-Type": "application/json"})
    assert refused.status_code == 413
    # A NUL in the path is stored (PostgreSQL's text refuses NUL) as a replacement character.
    assert_error(await client.delete("/api/v1/keys/7%00"), 422, "invalid_input", "key_id")

    events = await trail(client)
    assert [brief(event) for event in events] == [
        (events[0]["principal"], "key.revoke", "7\ufffd", "failed", 422),
        ("anonymous", "collection.create", None, "failed", 413),
    ]
    assert_error(await client.get("/api/v1/audit", params={"target": "7\x00"}), 422, "invalid_input", "target")


async def test_each_event_is_also_one_json_log_line(
    client: httpx.AsyncClient, callers: Callers, audit_lines: list[logging.LogRecord]
) -> None:
    assert_error(await client.delete("/api/v1/collections/handbook", headers=callers.reader.headers), 403, "forbidden")
    await client.post("/api/v1/collections/handbook/search", json={"query": "keys"})

    [line] = audit_lines
    logged = json.loads(line.getMessage())
    [stored] = await trail(client)
    assert {key: value for key, value in logged.items() if key != "at"} == {
        key: value for key, value in stored.items() if key not in ("id", "at")
    }
    assert datetime.fromisoformat(logged["at"]) == datetime.fromisoformat(stored["at"])
    assert (logged["principal"], logged["outcome"], logged["status"]) == (callers.reader.principal, "denied", 403)


def unstored(metrics: httpx.Response) -> float:
    [family] = [f for f in text_string_to_metric_families(metrics.text) if f.name == "semantik_audit_events_unstored"]
    return sum(sample.value for sample in family.samples if sample.name.endswith("_total"))


async def test_a_mutation_whose_audit_row_cannot_be_written_still_happens_is_logged_and_counted(
    secured: Settings, embedder: CountingEmbedder, callers: Callers, audit_lines: list[logging.LogRecord]
) -> None:
    app = create_app(secured, embedder=embedder)
    async for client in open_client(app):
        client.headers.update(callers.admin.headers)
        engine = app.state.semantik.engine
        before = unstored(await client.get("/metrics"))
        async with engine.begin() as connection:
            await connection.execute(text("ALTER TABLE audit_events RENAME TO audit_events_away"))

        created = await client.post("/api/v1/collections", json={"name": "handbook"})

        assert created.status_code == 201, created.text
        assert (await client.get("/api/v1/collections/handbook")).status_code == 200
        assert unstored(await client.get("/metrics")) == before + 1
        [line] = audit_lines
        assert json.loads(line.getMessage())["action"] == "collection.create"

        async with engine.begin() as connection:
            await connection.execute(text("ALTER TABLE audit_events_away RENAME TO audit_events"))
        assert (await client.delete("/api/v1/collections/handbook")).status_code == 204

        # The trail stores again once the table is back; only the event it could not store is counted.
        assert [brief(event) for event in await trail(client)] == [
            (callers.admin.principal, "collection.delete", "handbook", "succeeded", 204)
        ]
        assert unstored(await client.get("/metrics")) == before + 1
