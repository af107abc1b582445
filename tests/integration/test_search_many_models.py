"""A search of collections built with different models: the second model is a tiny, randomly initialised
Qwen3 served under its table name by a real `semantik embedder` process, the first the bundled MiniLM."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from semantik.contracts.models import MODEL_SPECS
from semantik.core.context import Semantik, open_semantik
from semantik.core.embedding.client import HttpEmbedder
from semantik.core.embedding.engine import TransformerEmbedder
from semantik.core.search.fusion import Fusion
from semantik.core.services.collections import CollectionSpec, create_collection
from semantik.core.services.indexing import open_index_operation, run_index_operation
from semantik.core.services.search import SearchOptions, search, search_collections
from semantik.core.settings import Settings
from tests.integration.conftest import CountingEmbedder
from tests.integration.test_embedder_client import free_port
from tests.support.corpus import KEYS_MD, VACATION_TXT
from tests.support.tiny_models import build_tiny_qwen3

QWEN = MODEL_SPECS["Qwen/Qwen3-Embedding-0.6B"]
QUERY = "how often are the API keys rotated"


@pytest.fixture(scope="module")
def tiny_qwen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """At the table's dimension (1024), so it serves under Qwen3-Embedding's name."""
    return build_tiny_qwen3(
        tmp_path_factory.mktemp("tiny-qwen3"), hidden_size=QWEN.dimension, max_position_embeddings=4096
    )


@pytest.fixture(scope="module")
def qwen_service(tiny_qwen: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`semantik embedder` serving the tiny model under Qwen3-Embedding's name; yields its URL."""
    port = free_port()
    log = tmp_path_factory.mktemp("embedder") / "embedder.log"
    command = [
        *(sys.executable, "-m", "semantik.cli", "embedder"),
        *("--port", str(port), "--model", str(tiny_qwen), "--model-name", QWEN.name),
    ]
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def texts_embedded(url: str) -> float:
    """The service's own count of texts embedded, from its /metrics."""
    exported = httpx.get(f"{url}/metrics", timeout=10).text
    match = re.search(r"^semantik_embedder_texts_total ([0-9.e+]+)$", exported, re.MULTILINE)
    assert match, exported
    return float(match.group(1))


def write_folder(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    return root


async def create_and_index(
    app: Semantik, name: str, folder: Path, *, model: str | None = None, embedder_url: str | None = None
) -> None:
    spec = CollectionSpec(name=name, source_path=str(folder), model=model)
    await create_collection(app, spec, embedder_url=embedder_url)
    operation = await open_index_operation(app, name, None, full=False)
    report = await run_index_operation(app, operation.id)
    assert report.progress.files_failed == 0 and report.progress.chunks > 0, report


async def test_collections_of_different_models_are_searched_together(
    tmp_path: Path, qwen_service: str, real_embedder: TransformerEmbedder
) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    handbook = write_folder(tmp_path / "handbook", {"keys.md": KEYS_MD, "vacation.txt": VACATION_TXT})
    office = write_folder(
        tmp_path / "office",
        {"rotation.md": "API keys are rotated every quarter by the security team.\n", "menu.txt": "Soup on Tuesday.\n"},
    )
    notes = write_folder(tmp_path / "notes", {"garden.md": "Roses are pruned in late winter.\n", "keys.md": KEYS_MD})

    # Built by a process whose own embedder is the service, as a worker beside that embedder would build it.
    qwen_client = await HttpEmbedder.connect(qwen_service)
    try:
        async with open_semantik(settings, embedder=qwen_client) as app:
            await create_and_index(app, "office", office, model=QWEN.name, embedder_url=qwen_service)
    finally:
        await qwen_client.aclose()

    minilm = CountingEmbedder(real_embedder)
    async with open_semantik(settings, embedder=minilm) as app:
        await create_and_index(app, "handbook", handbook)
        await create_and_index(app, "notes", notes)
        rrf = SearchOptions(fusion=Fusion.RRF)
        alone = {name: await search(app, name, QUERY, options=rrf) for name in ("handbook", "notes", "office")}
        before_queries, before_service = minilm.queries, texts_embedded(qwen_service)

        result = await search_collections(app, ["handbook", "notes", "office"], QUERY, options=rrf)

        # Once per model: MiniLM once for its two collections, the Qwen3 service once for its one.
        assert minilm.queries - before_queries == 1
        assert texts_embedded(qwen_service) - before_service == 1
    assert result.modes == {"handbook": "hybrid", "notes": "hybrid", "office": "hybrid"} and result.notes == []
    assert {hit.collection for hit in result.hits} == {"handbook", "notes", "office"}
    # Rank fusion over collections: the first hit of each collection's own search lead the merged list.
    firsts = {(name, found.hits[0].path) for name, found in alone.items()}
    assert {(hit.collection, hit.path) for hit in result.hits[:3]} == firsts
    for hit in result.hits:
        own = [(h.path, h.chunk_index) for h in alone[hit.collection].hits]
        (rank,) = [c.rank for c in hit.explain if c.retriever == "collection"]
        assert own.index((hit.path, hit.chunk_index)) + 1 == rank, (hit.collection, hit.path)
