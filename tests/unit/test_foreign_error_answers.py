"""A 4xx that Semantik did not write (a bare 404 from whatever held the port while a gateway pod was being
replaced) is a passing fault to retry, never the answer "no such batch" or "no such collection": read that
way it once dropped thirty batches of an IndexJob. The clients talk to a real HTTP server here that answers
what each test scripts, in order."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from semantik.contracts.errors import error_body, is_error_body
from semantik.core.embedding.client import HttpEmbedder
from semantik.core.errors import BackendUnavailableError, NotFoundError
from semantik.worker.gateway_client import GatewayClient
from semantik_operator.gateway import Gateway, GatewayError

BARE_404 = (404, "")
HTML_404 = (404, "<html><body>404 page not found</body></html>")


def semantik_error(status: int, code: str, message: str) -> tuple[int, str]:
    return status, json.dumps(error_body(code, message))


class ScriptedServer:
    """Answers each request with the next (status, body) of its script; the last one repeats."""

    def __init__(self) -> None:
        self.script: list[tuple[int, str]] = []
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                server.requests.append(f"{self.command} {self.path}")
                status, body = server.script.pop(0) if len(server.script) > 1 else server.script[0]
                payload = body.encode()
                self.send_response(status)
                if body.startswith("{"):
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_PUT = do_POST = _answer  # noqa: N815 - the names http.server looks up

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    scripted = ScriptedServer()
    yield scripted
    scripted.close()


def test_only_semantiks_error_shape_counts_as_its_answer() -> None:
    assert is_error_body(json.dumps(error_body("not_found", "no batch 3")))
    assert not is_error_body("")
    assert not is_error_body(HTML_404[1])
    assert not is_error_body('{"detail": "Not Found"}')
    assert not is_error_body('{"error": "not found"}')


async def test_the_worker_retries_a_bare_404_and_reads_the_batch_that_follows(server: ScriptedServer) -> None:
    batch = {"number": 3, "done": False}
    server.script = [BARE_404, HTML_404, (200, json.dumps(batch))]
    client = GatewayClient(server.url, "t")
    try:
        assert await client.batch("op", 3) == batch
    finally:
        await client.aclose()
    assert server.requests == ["GET /internal/v1/operations/op/batches/3"] * 3


async def test_the_worker_gives_up_on_bare_404s_as_a_gateway_away_not_a_batch_gone(server: ScriptedServer) -> None:
    server.script = [BARE_404]
    client = GatewayClient(server.url, "t", attempts=2)
    try:
        with pytest.raises(BackendUnavailableError, match="HTTP 404") as raised:
            await client.batch("op", 3)
    finally:
        await client.aclose()
    assert not isinstance(raised.value, NotFoundError)


async def test_the_gateways_own_404_is_not_found_at_once(server: ScriptedServer) -> None:
    server.script = [semantik_error(404, "not_found", "operation op has no batch 9")]
    client = GatewayClient(server.url, "t")
    try:
        with pytest.raises(NotFoundError, match="no batch 9"):
            await client.batch("op", 9)
    finally:
        await client.aclose()
    assert len(server.requests) == 1


async def test_the_operator_reads_a_bare_404_as_the_gateway_unreachable(server: ScriptedServer) -> None:
    server.script = [BARE_404]
    gateway = Gateway(server.url, "t")
    try:
        with pytest.raises(GatewayError, match="unreachable: HTTP 404") as raised:
            await gateway.collection("ns-docs")
        assert raised.value.unreachable
        server.script = [semantik_error(404, "not_found", "no collection ns-docs")]
        assert await gateway.collection("ns-docs") is None
    finally:
        await gateway.aclose()


async def test_the_embedder_client_retries_a_bare_404_while_the_service_comes_up(server: ScriptedServer) -> None:
    server.script = [BARE_404, (200, json.dumps({"model": "m", "dimension": 3}))]
    embedder = await HttpEmbedder.connect(server.url, deadline=10)
    try:
        assert (embedder.model_name, embedder.dimension) == ("m", 3)
    finally:
        await embedder.aclose()
    assert len(server.requests) == 2
