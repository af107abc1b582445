"""What a restart does to an operation that was running when the process stopped.

Embedded mode runs every operation in the gateway's own process, so one still marked active after a
restart was cut off: it is failed with the reason, or its collection would stay busy forever. In
service mode the workers run operations and outlive a gateway restart (the chart's `qdrant.mode:
embedded` keeps Qdrant's local store on the gateway's volume): a restarted gateway must leave them
running, or killing a gateway pod would fail the IndexJob its workers are finishing."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from semantik.core.context import open_semantik
from semantik.core.db.models import Operation, OperationStatus
from semantik.core.services.collections import CollectionSpec, create_collection, load_collection
from semantik.core.settings import Mode, Settings
from tests.integration.conftest import CountingEmbedder


async def _start_operation(settings: Settings, embedder: CountingEmbedder, source: Path) -> str:
    """A collection with a running operation, left behind as a process that stopped would leave it."""
    operation_id = str(uuid.uuid4())
    async with open_semantik(settings, embedder=embedder) as app:
        await create_collection(app, CollectionSpec(name="handbook", source_path=str(source)))
        collection = await load_collection(app, "handbook")
        async with app.sessions.begin() as session:
            session.add(
                Operation(
                    id=operation_id,
                    collection_id=collection.id,
                    kind="index",
                    status=OperationStatus.RUNNING.value,
                    options={"path": str(source), "full": False},
                )
            )
    return operation_id


async def _status_after_restart(settings: Settings, embedder: CountingEmbedder, operation_id: str) -> Operation:
    async with open_semantik(settings, embedder=embedder) as app, app.sessions() as session:
        operation = await session.get(Operation, operation_id)
        assert operation is not None
        return operation


async def test_embedded_mode_fails_the_operation_its_dead_process_was_running(
    settings: Settings, embedder: CountingEmbedder, corpus: Path
) -> None:
    operation_id = await _start_operation(settings, embedder, corpus)

    operation = await _status_after_restart(settings, embedder, operation_id)

    assert operation.status == OperationStatus.FAILED.value
    assert operation.error is not None and "interrupted" in operation.error


@pytest.mark.parametrize("settings", ["postgres"], indirect=True)
async def test_service_mode_leaves_the_workers_operation_running_across_a_gateway_restart(
    settings: Settings, embedder: CountingEmbedder, corpus: Path, redis_url: str
) -> None:
    service = settings.model_copy(update={"mode": Mode.SERVICE, "redis_url": redis_url})
    operation_id = await _start_operation(service, embedder, corpus)

    operation = await _status_after_restart(service, embedder, operation_id)

    assert operation.status == OperationStatus.RUNNING.value
    assert operation.error is None
