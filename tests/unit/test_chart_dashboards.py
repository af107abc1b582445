"""The Grafana dashboards query only metrics the services export.

Each service's /metrics is read from the service itself, each in a process of its own so that a name
only another service registers cannot count: the gateway's and the embedder's FastAPI apps over
ASGI, the operator's metrics server as its startup starts it. tests/cluster/test_chart.py checks the
same against the three running as real processes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

from tests.support.chart import (
    CHART,
    DASHBOARDS,
    exported_names,
    find,
    panel_exprs,
    promql_metric_names,
    template,
)

SCRAPE = {
    "gateway": """
import asyncio, httpx, tempfile
from semantik.core.settings import Settings
from semantik.gateway.app import create_app
app = create_app(Settings(data_dir=tempfile.mkdtemp()))
async def main():
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://gateway") as client:
        print((await client.get("/metrics")).text)
asyncio.run(main())
""",
    "embedder": """
import asyncio, httpx
from semantik.embedder.app import create_embedder_app
from semantik.embedder.settings import EmbedderSettings
app = create_embedder_app(EmbedderSettings())
async def main():
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://embedder") as client:
        print((await client.get("/metrics")).text)
asyncio.run(main())
""",
    "operator": """
import httpx, socket
from prometheus_client import start_http_server
import semantik_operator.main
with socket.socket() as s:
    s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
start_http_server(port, addr="127.0.0.1")
print(httpx.get(f"http://127.0.0.1:{port}/metrics").text)
""",
}


@cache
def scraped(service: str) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-c", SCRAPE[service]], capture_output=True, text=True, timeout=120, check=True
    )
    return exported_names(result.stdout)


def exported_by_all() -> set[str]:
    return scraped("gateway") | scraped("embedder") | scraped("operator")


def test_each_service_exports_its_own_metrics() -> None:
    assert "semantik_gateway_requests_total" in scraped("gateway")
    assert "semantik_search_seconds_bucket" in scraped("gateway")
    assert "semantik_embedder_queue_depth" in scraped("embedder")
    assert "semantik_embedder_queue_depth" not in scraped("gateway")
    assert "semantik_operator_reconcile_seconds_count" in scraped("operator")
    assert "semantik_gateway_requests_total" not in scraped("operator")


@pytest.mark.parametrize("dashboard", DASHBOARDS, ids=[path.stem for path in DASHBOARDS])
def test_every_panel_queries_only_exported_metrics(dashboard: Path) -> None:
    body = json.loads(dashboard.read_text())
    exprs = panel_exprs(body)
    assert exprs, "a dashboard without queries"
    unknown = {
        (title, name) for title, expr in exprs for name in promql_metric_names(expr) if name not in exported_by_all()
    }
    assert not unknown, f"panels query metrics no service exports: {sorted(unknown)}"
    assert all(promql_metric_names(expr) for _, expr in exprs), "a query selecting no metric"


def test_an_unknown_metric_would_be_caught() -> None:
    names = promql_metric_names('sum(rate(semantik_gateway_requestz_total{status=~"5.."}[5m])) / 1e-9')
    assert names == {"semantik_gateway_requestz_total"}
    assert not names <= exported_by_all()


def test_dashboards_are_wellformed_and_cover_their_subjects() -> None:
    bodies = {path.stem: json.loads(path.read_text()) for path in DASHBOARDS}
    assert set(bodies) == {"overview", "embedder", "operator"}
    assert len({body["uid"] for body in bodies.values()}) == 3
    used = {name: {n for _, e in panel_exprs(body) for n in promql_metric_names(e)} for name, body in bodies.items()}
    assert {
        "semantik_collections",
        "semantik_search_seconds_bucket",
        "semantik_indexed_chunks_total",
        "semantik_gateway_requests_total",
    } <= used["overview"]
    assert {
        "semantik_embedder_tokens_total",
        "semantik_embedder_batch_size_bucket",
        "semantik_embedder_queue_depth",
        "semantik_embedder_oom_splits_total",
    } <= used["embedder"]
    assert {"semantik_operator_reconcile_total", "semantik_operator_reconcile_seconds_bucket"} <= used["operator"]
    for body in bodies.values():
        for panel in body["panels"]:
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]


def test_the_chart_ships_each_dashboard_in_a_labelled_config_map() -> None:
    objects = template(CHART / "ci" / "everything-values.yaml")
    for path in DASHBOARDS:
        config_map = find(objects, "ConfigMap", f"-dashboard-{path.stem}")
        assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert json.loads(config_map["data"][path.name]) == json.loads(path.read_text())
    assert not [o for o in template() if o["metadata"].get("labels", {}).get("grafana_dashboard")]
