"""The search surface as clients use it: the REST API (in-process ASGI) and the `semantik search` command,
on small folders written here, embedded mode, the real model."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from semantik.core.embedding.engine import TransformerEmbedder
from semantik.core.settings import Settings
from semantik.gateway.app import create_app
from tests.integration.test_cli import run
from tests.integration.test_gateway import assert_error, create_and_index, open_client
from tests.support.corpus import COMMON_LICENSES, KEYS_MD, VACATION_TXT

# A query on which the two retrievers disagree: only `codes/zq.md` holds its rare token (and none of its
# other words), while `printing/stuck-sheets.md` says what the query means in other words.
DISAGREEING_QUERY = "ZQ-7781 printer paper jam"
KEYWORD_FILE = "codes/zq.md"
MEANING_FILE = "office/stuck-sheets.md"

ALPHA = {
    KEYWORD_FILE: "# Reference\n\nCode ZQ-7781 is listed in the appendix of the maintenance log.\n"
    "The cafeteria serves soup, bread and salad on Tuesdays, and the garage closes at nine.\n",
    MEANING_FILE: "# When sheets get stuck\n\nIf a sheet gets caught inside the copier tray, open the rear door, "
    "pull the crumpled page out gently, and close the door before copying again.\n",
    "handbook/vacation.txt": VACATION_TXT,
    "handbook/keys.md": KEYS_MD,
    "garden/roses.md": "Prune roses in late winter just above an outward-facing bud; feed them compost in spring.\n",
}
BETA = {
    "office/printer.md": "# Printer paper jam\n\nOpen the front panel of the printer, remove the jammed paper, "
    "and restart the printer.\n",
    "office/coffee.md": "The coffee machine on the third floor is descaled every Friday morning.\n",
}
BOTH_QUERY = "how do I clear a paper jam in the printer"


def write_folder(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    return root


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    alpha = write_folder(tmp_path_factory.mktemp("alpha"), ALPHA)
    beta = write_folder(tmp_path_factory.mktemp("beta"), BETA)
    # A long file, many chunks: what grouping per document collapses.
    shutil.copyfile(COMMON_LICENSES / "Apache-2.0", beta / "LICENSE")
    return alpha, beta


@pytest.fixture(scope="module")
async def client(
    tmp_path_factory: pytest.TempPathFactory, real_embedder: TransformerEmbedder, folders: tuple[Path, Path]
) -> AsyncIterator[httpx.AsyncClient]:
    """One gateway with `alpha` and `beta` indexed, shared by the module's read-only tests."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("data"), source_roots=[tmp_path_factory.getbasetemp()])
    async for client in open_client(create_app(settings, embedder=real_embedder)):
        for name, folder in zip(("alpha", "beta"), folders, strict=True):
            operation = await create_and_index(client, folder, name)
            assert operation["status"] == "succeeded" and operation["files_failed"] == 0, operation
        yield client


async def search(client: httpx.AsyncClient, name: str, query: str, **options: Any) -> dict[str, Any]:
    response = await client.post(f"/api/v1/collections/{name}/search", json={"query": query, **options})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def paths(body: dict[str, Any]) -> list[str]:
    return [hit["path"] for hit in body["hits"]]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"mode": "fuzzy"}, "mode"),
        ({"fusion": "borda"}, "fusion"),
        ({"mode": "dense", "weights": {"sparse": 1}}, "weights"),
        ({"mode": "sparse", "weights": {"dense": 1}}, "weights"),
        ({"weights": {"dense": -0.5}}, "weights"),
        ({"weights": {"colbert": 1}}, "weights"),
        ({"prefetch": 0}, "prefetch"),
        ({"prefetch": 5000}, "prefetch"),
        ({"k": 0}, "k"),
        ({"k": 101}, "k"),
        ({"rrf_k": 0}, "rrf_k"),
        ({"mode": "dense", "score_threshold": 2.0}, "score_threshold"),
        ({"max_per_document": 0}, "max_per_document"),
    ],
)
async def test_bad_search_options_are_422_naming_the_field(
    client: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    single = await client.post("/api/v1/collections/alpha/search", json={"query": "x", **body})
    assert_error(single, 422, "invalid_input", field)
    many = await client.post("/api/v1/search", json={"query": "x", "collections": ["alpha", "beta"], **body})
    assert_error(many, 422, "invalid_input", field)


@pytest.mark.parametrize(
    ("collections", "status", "code"),
    [
        ([f"c{i}" for i in range(11)], 422, "invalid_input"),
        ([], 422, "invalid_input"),
        (["alpha", "alpha"], 422, "invalid_input"),
        (["alpha", "Not_A_Name"], 422, "invalid_input"),
        (["alpha", "missing"], 404, "not_found"),
    ],
)
async def test_bad_collection_lists_are_refused_naming_collections(
    client: httpx.AsyncClient, collections: list[str], status: int, code: str
) -> None:
    response = await client.post("/api/v1/search", json={"query": "x", "collections": collections})
    error = assert_error(response, status, code, "collections")
    if status == 404:
        assert "'missing'" in error["message"], error


async def test_searching_one_missing_collection_is_404_naming_it(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/collections/nope/search", json={"query": "x"})
    error = assert_error(response, 404, "not_found", "name")
    assert "'nope'" in error["message"], error


async def test_a_search_says_how_it_was_answered(client: httpx.AsyncClient) -> None:
    body = await search(client, "alpha", BOTH_QUERY)

    assert body["collection"] == "alpha" and body["collections"] == ["alpha"]
    assert body["modes"] == {"alpha": "hybrid"}
    assert body["fusion"] == "dbsf" and body["reranked"] is False and body["notes"] == []
    dense = await search(client, "alpha", BOTH_QUERY, mode="dense", fusion="rrf")
    assert dense["modes"] == {"alpha": "dense"} and dense["fusion"] == "rrf"
    assert {tuple(c["retriever"] for c in hit["explain"]) for hit in dense["hits"]} == {("dense",)}


@pytest.mark.parametrize("query", [DISAGREEING_QUERY, BOTH_QUERY, "how many days of paid leave do I get"])
async def test_hybrid_explain_gives_each_retrievers_own_rank_and_score(client: httpx.AsyncClient, query: str) -> None:
    every_chunk = {"k": 100, "max_per_document": None}
    runs = {
        retriever: {
            (hit["path"], hit["chunk_index"]): (rank, hit["score"])
            for rank, hit in enumerate((await search(client, "alpha", query, mode=retriever, **every_chunk))["hits"], 1)
        }
        for retriever in ("dense", "sparse")
    }

    # Without feedback, whose second dense run is the moved query's (test_hybrid_search checks it).
    hybrid = await search(client, "alpha", query, mode="hybrid", feedback=0, **every_chunk)

    assert hybrid["hits"], hybrid
    for hit in hybrid["hits"]:
        explained = {c["retriever"]: (c["rank"], c["score"]) for c in hit["explain"]}
        assert explained and set(explained) <= {"dense", "sparse"}, hit["explain"]
        for retriever, (rank, score) in explained.items():
            alone_rank, alone_score = runs[retriever][(hit["path"], hit["chunk_index"])]
            assert rank >= 1
            assert rank == alone_rank, (retriever, hit["path"], rank, alone_rank)
            assert score == pytest.approx(alone_score, abs=1e-5), (retriever, hit["path"])
        # A chunk the keyword run did not return has no sparse entry, and the other way round.
        for retriever in ("dense", "sparse"):
            assert (retriever in explained) == ((hit["path"], hit["chunk_index"]) in runs[retriever])


async def test_weights_decide_between_disagreeing_retrievers(client: httpx.AsyncClient) -> None:
    # The premise: the meaning wins the dense run, the rare token the keyword run.
    assert paths(await search(client, "alpha", DISAGREEING_QUERY, mode="dense"))[0] == MEANING_FILE
    assert paths(await search(client, "alpha", DISAGREEING_QUERY, mode="sparse"))[0] == KEYWORD_FILE

    for fusion in ("rrf", "dbsf"):
        dense_only = await search(
            client,
            "alpha",
            DISAGREEING_QUERY,
            mode="hybrid",
            fusion=fusion,
            feedback=0,
            weights={"dense": 1, "sparse": 0},
        )
        sparse_only = await search(
            client,
            "alpha",
            DISAGREEING_QUERY,
            mode="hybrid",
            fusion=fusion,
            feedback=0,
            weights={"dense": 0, "sparse": 1},
        )
        assert paths(dense_only)[0] == MEANING_FILE, (fusion, paths(dense_only))
        assert paths(sparse_only)[0] == KEYWORD_FILE, (fusion, paths(sparse_only))


async def test_a_search_of_two_collections_merges_them(client: httpx.AsyncClient) -> None:
    everything = await client.post(
        "/api/v1/search", json={"query": BOTH_QUERY, "collections": ["alpha", "beta"], "k": 100, "fusion": "rrf"}
    )
    assert everything.status_code == 200, everything.text
    body = everything.json()

    assert body["collection"] is None and body["collections"] == ["alpha", "beta"]
    assert body["modes"] == {"alpha": "hybrid", "beta": "hybrid"} and body["notes"] == []
    hits = body["hits"]
    assert {hit["collection"] for hit in hits} == {"alpha", "beta"}
    # One hit per file of each collection (max_per_document 1 by default), and every file found once.
    found = [(hit["collection"], hit["path"]) for hit in hits]
    assert len(found) == len(set(found)), found
    assert {p for c, p in found if c == "beta"} == {*BETA, "LICENSE"}
    for hit in hits:
        collection_entries = [c for c in hit["explain"] if c["retriever"] == "collection"]
        assert len(collection_entries) == 1 and collection_entries[0]["rank"] >= 1, hit["explain"]
    # The best hit of each collection leads the merged list (RRF: both are rank 1 in their own run).
    alone = {name: paths(await search(client, name, BOTH_QUERY, fusion="rrf"))[0] for name in ("alpha", "beta")}
    assert {(hit["collection"], hit["path"]) for hit in hits[:2]} == set(alone.items())

    few = await client.post("/api/v1/search", json={"query": BOTH_QUERY, "collections": ["alpha", "beta"], "k": 3})
    assert len(few.json()["hits"]) == 3


async def test_grouping_per_document_holds_in_a_search_of_several(client: httpx.AsyncClient) -> None:
    query = "redistribution of the work must include a copy of the license and the NOTICE file"
    ungrouped = await search(client, "beta", query, k=20, max_per_document=None)
    assert paths(ungrouped).count("LICENSE") > 1, "premise: several LICENSE chunks match"

    grouped = await client.post("/api/v1/search", json={"query": query, "collections": ["alpha", "beta"], "k": 100})
    found = [(hit["collection"], hit["path"]) for hit in grouped.json()["hits"]]
    assert found.count(("beta", "LICENSE")) == 1, found
    assert len(found) == len(set(found)), found
    two_each = await client.post(
        "/api/v1/search",
        json={"query": query, "collections": ["alpha", "beta"], "k": 100, "max_per_document": 2},
    )
    assert [(h["collection"], h["path"]) for h in two_each.json()["hits"]].count(("beta", "LICENSE")) == 2


def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """The schema itself, or what its $ref (or the non-null branch of an optional) points at."""
    if "anyOf" in schema:
        (schema,) = [branch for branch in schema["anyOf"] if branch.get("type") != "null"]
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        resolved: dict[str, Any] = spec["components"]["schemas"][name]
        return resolved
    return schema


async def test_openapi_documents_the_search_of_several_and_its_enums(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()

    operation = spec["paths"]["/api/v1/search"]["post"]
    body = resolve(spec, operation["requestBody"]["content"]["application/json"]["schema"])
    assert body["properties"]["collections"]["maxItems"] == 10 and "collections" in body["required"]
    assert set(resolve(spec, body["properties"]["mode"])["enum"]) == {"dense", "sparse", "hybrid"}
    assert set(resolve(spec, body["properties"]["fusion"])["enum"]) == {"rrf", "dbsf"}
    assert operation["responses"]["4XX"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorOut"
    }
    hit = resolve(spec, resolve(spec, operation["responses"]["200"]["content"]["application/json"]["schema"]))
    assert {"modes", "fusion", "reranked", "notes", "hits"} <= set(hit["properties"])


@pytest.fixture(scope="module")
def cli_data(tmp_path_factory: pytest.TempPathFactory, folders: tuple[Path, Path]) -> Path:
    """A data dir the CLI indexed `alpha` into (its own: local Qdrant is one process's at a time)."""
    data = tmp_path_factory.mktemp("cli-data")
    indexed = run("index", str(folders[0]), "--collection", "alpha", data_dir=data)
    assert indexed.returncode == 0, indexed.stderr
    return data


async def test_the_cli_and_the_gateway_give_the_same_sparse_hits(
    cli_data: Path, real_embedder: TransformerEmbedder
) -> None:
    found = run("search", "alpha", DISAGREEING_QUERY, "--mode", "sparse", "-k", "10", "--json", data_dir=cli_data)
    assert found.returncode == 0, found.stderr
    from_cli = json.loads(found.stdout)
    assert from_cli["modes"] == {"alpha": "sparse"} and from_cli["hits"], from_cli

    settings = Settings(data_dir=cli_data)
    async for client in open_client(create_app(settings, embedder=real_embedder)):
        from_gateway = await search(client, "alpha", DISAGREEING_QUERY, mode="sparse", k=10)

    assert paths(from_cli) == paths(from_gateway)
    assert [h["score"] for h in from_cli["hits"]] == pytest.approx([h["score"] for h in from_gateway["hits"]])
    assert [h["explain"] for h in from_cli["hits"]] == [h["explain"] for h in from_gateway["hits"]]


def test_cli_weights_for_a_retriever_the_mode_does_not_use_are_a_usage_error(cli_data: Path) -> None:
    result = run("search", "alpha", "paper jam", "--mode", "dense", "--weights", "sparse=1", data_dir=cli_data)

    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert "weight" in lines[0] and "sparse" in lines[0], lines[0]
    assert "Traceback" not in result.stderr
    malformed = run("search", "alpha", "paper jam", "--weights", "dense:1", data_dir=cli_data)
    assert malformed.returncode == 2 and "--weights" in malformed.stderr and "Traceback" not in malformed.stderr


def test_cli_explain_prints_each_retrievers_rank(cli_data: Path) -> None:
    result = run("search", "alpha", DISAGREEING_QUERY, "--explain", "-k", "3", data_dir=cli_data)

    assert result.returncode == 0, result.stderr
    explained = re.findall(r"(dense|sparse) #(\d+) \(", result.stdout)
    assert {retriever for retriever, _ in explained} == {"dense", "sparse"}, result.stdout
    assert all(int(rank) >= 1 for _, rank in explained)
    # The keyword file is the sparse run's first: its line says so.
    assert "sparse #1 (" in result.stdout
