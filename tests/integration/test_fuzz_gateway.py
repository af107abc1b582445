"""Fuzzing: schemathesis sends generated requests, valid and invalid, to every operation of the running
gateway's public OpenAPI document with a valid API key. No answer may be a 5xx, and every answer must be
a status code, content type and body that the document promises.

The gateway is a `semantik serve` process (embedded mode: PostgreSQL, Qdrant's local mode, the real
model) over a collection indexed beforehand, so search, documents and operations have data to return.
A bounded, derandomized run: the same cases every time, in well under a minute.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import hypothesis
import pytest
import schemathesis
from schemathesis import Case
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.specs.openapi.schemas import OpenApiSchema

from tests.support.corpus import KEYS_MD, VACATION_TXT
from tests.support.servers import drop_postgres_database, fresh_postgres_database
from tests.support.stack import Process, free_port, wait_until_ready

COLLECTION = "handbook"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@dataclass(frozen=True)
class Gateway:
    url: str
    key: str


@pytest.fixture(scope="module")
def gateway(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    workdir = tmp_path_factory.mktemp("fuzz")
    folder = workdir / "docs"
    (folder / "handbook").mkdir(parents=True)
    (folder / "handbook" / "keys.md").write_text(KEYS_MD)
    (folder / "handbook" / "vacation.txt").write_text(VACATION_TXT)
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4 not really")
    database_url = asyncio.run(fresh_postgres_database(postgres_url))
    env = {
        "SEMANTIK_DATA_DIR": str(workdir / "data"),
        "SEMANTIK_DATABASE_URL": database_url,
        "SEMANTIK_REQUIRE_AUTH": "true",
        "SEMANTIK_SOURCE_ROOTS": str(folder),
    }
    key = _cli(["keys", "create", "fuzz"], env)
    _cli(["index", str(folder), "--collection", COLLECTION], env)
    port = free_port()
    server = Process("gateway", ["serve", "--port", str(port)], env, workdir / "gateway.log")
    server.start()
    try:
        wait_until_ready(f"http://127.0.0.1:{port}/readyz", server)
        yield Gateway(f"http://127.0.0.1:{port}", key)
    finally:
        server.stop()
        asyncio.run(drop_postgres_database(database_url))


def _cli(args: list[str], env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "semantik.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.fixture(scope="module")
def public_api(gateway: Gateway) -> OpenApiSchema:
    return schemathesis.openapi.from_url(f"{gateway.url}/openapi.json")


schema = schemathesis.pytest.from_fixture("public_api")


@schema.parametrize()
@hypothesis.settings(
    max_examples=25,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(hypothesis.HealthCheck),
)
def test_the_public_api_answers_as_documented(case: Case, gateway: Gateway) -> None:
    _aim_at_the_collection(case)
    case.call_and_validate(
        base_url=gateway.url, headers={"Authorization": f"Bearer {gateway.key}"}, checks=CHECKS, timeout=60
    )


def _aim_at_the_collection(case: Case) -> None:
    """Half the reads name the indexed collection, so search and documents answer with data.

    Never a delete or an index run: those would change what the other cases see. The choice is a hash
    of the case, so a derandomized run stays the same run.
    """
    parameters = case.path_parameters
    if not parameters or "name" not in parameters or case.method.upper() == "DELETE" or case.path.endswith("/index"):
        return
    if hashlib.sha256(repr(sorted(parameters.items())).encode()).digest()[0] % 2 == 0:
        parameters["name"] = COLLECTION
