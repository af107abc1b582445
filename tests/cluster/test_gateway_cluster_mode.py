"""The gateway in cluster mode against a real kube-apiserver, with the operator, embedder and workers as host
processes: REST and kubectl see one list of collections, because REST writes go to Collection resources."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from semantik.contracts.naming import store_name
from tests.cluster import test_operator as operator_tier
from tests.cluster.conftest import Cluster
from tests.support.kube import condition, wait
from tests.support.stack import INTERNAL_TOKEN, Process, Stack

NAMESPACE = operator_tier.NAMESPACE
get = operator_tier.get
# The operator tier's fixtures, reused: its operator then calls this module's cluster-mode gateway.
sources_root = operator_tier.sources_root
operator = operator_tier.operator

pytestmark = [pytest.mark.timeout(900), pytest.mark.usefixtures("crds")]


@pytest.fixture(scope="module")
async def stack(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    cluster_mode = {
        "SEMANTIK_CLUSTER_MODE": "true",
        "SEMANTIK_NAMESPACE": NAMESPACE,
        "KUBECONFIG": str(cluster.kubeconfig),
    }
    async with operator_tier.running_stack(tmp_path_factory.mktemp("stack"), cluster_mode) as service:
        yield service


def store_exists(stack: Stack, name: str) -> bool:
    response = httpx.get(
        f"{stack.gateway_url}/internal/v1/collections/{store_name(NAMESPACE, name)}",
        headers={"Authorization": f"Bearer {INTERNAL_TOKEN}"},
        timeout=30,
    )
    assert response.status_code in (200, 404), response.text
    return response.status_code == 200


def test_rest_made_collection_is_a_resource_that_becomes_ready_then_goes_with_its_index(
    cluster: Cluster, stack: Stack, operator: Process, sources_root: Path, tmp_path: Path
) -> None:
    api = stack.api()
    created = api.post("/api/v1/collections", json={"name": "restmade", "source_path": str(sources_root / "docs")})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["resource"] == {"kind": "Collection", "namespace": NAMESPACE, "name": "restmade"}
    assert body["store"] == store_name(NAMESPACE, "restmade")
    assert body["documents"] is None  # the operator has not made the index yet

    table = cluster.kubectl("-n", NAMESPACE, "get", "col").stdout
    assert "restmade" in table, table
    resource = get(cluster, "collection", "restmade")
    assert resource is not None
    assert resource["spec"]["sources"][0]["hostPath"] == str(sources_root / "docs")

    again = api.post("/api/v1/collections", json={"name": "restmade", "source_path": str(sources_root / "docs")})
    assert again.status_code == 409 and "kubectl" in again.json()["error"]["message"], again.text

    first = wait(
        "the first IndexJob",
        lambda: (get(cluster, "collection", "restmade") or {}).get("status", {}).get("lastIndexJob"),
    )
    worker = operator_tier.run_workers_of(cluster, first, stack, tmp_path)
    try:
        assert worker.wait(timeout=300) == 0, worker.log_tail()
    finally:
        worker.stop()
    wait("Ready", lambda: condition(get(cluster, "collection", "restmade"), "Ready").get("status") == "True")

    view = wait(
        "the REST view Ready with counts",
        lambda: (found := api.get("/api/v1/collections/restmade").json()).get("phase") == "Ready" and found,
    )
    assert {c["type"]: c["status"] for c in view["conditions"]}["Ready"] == "True"
    assert view["documents"] > 0 and view["chunks"] > 0
    listed = {item["name"]: item for item in api.get("/api/v1/collections").json()["items"]}
    assert listed["restmade"]["phase"] == "Ready"

    hits = api.post(
        "/api/v1/collections/restmade/search",
        json={"query": "what must I include in a NOTICE file when I redistribute", "k": 3},
        timeout=60,
    ).json()["hits"]
    assert any(hit["path"].endswith("Apache-2.0") for hit in hits), hits
    assert {hit["collection"] for hit in hits} == {"restmade"}
    documents = api.get("/api/v1/collections/restmade/documents").json()["items"]
    assert len(documents) == view["documents"]

    # The search page lists the Collection resource, searches its store, and shows the resource's phase.
    page = api.get("/", params={"q": "what must I include in a NOTICE file when I redistribute", "c": "restmade"})
    assert page.status_code == 200 and 'value="restmade" checked' in page.text, page.text[:2000]
    assert "Apache-2.0" in page.text
    about = api.get("/collections/restmade")
    assert about.status_code == 200 and '<dd id="phase">Ready</dd>' in about.text, about.text[:2000]
    assert f'<dd id="documents">{view["documents"]}</dd>' in about.text

    # Indexing another folder would edit the collection behind its resource's back.
    elsewhere = api.post("/api/v1/collections/restmade/index", json={"path": str(sources_root)})
    assert elsewhere.status_code == 409 and "kubectl" in elsewhere.json()["error"]["message"], elsewhere.text

    accepted = api.post("/api/v1/collections/restmade/index", json={"full": True})
    assert accepted.status_code == 202, accepted.text
    job_name = accepted.json()["index_job"]
    assert accepted.json()["operation_id"] is None
    job = get(cluster, "indexjob", job_name)
    assert job is not None and job["spec"] == {"collectionRef": {"name": "restmade"}, "mode": "full"}
    worker = operator_tier.run_workers_of(cluster, job_name, stack, tmp_path)
    try:
        assert worker.wait(timeout=300) == 0, worker.log_tail()
    finally:
        worker.stop()
    wait(
        "the REST IndexJob Succeeded",
        lambda: (get(cluster, "indexjob", job_name) or {}).get("status", {}).get("phase") == "Succeeded",
    )

    deleted = api.delete("/api/v1/collections/restmade")
    assert deleted.status_code == 202, deleted.text
    wait("the resource gone", lambda: get(cluster, "collection", "restmade") is None)
    assert not store_exists(stack, "restmade")  # the operator's finalizer dropped the index
    assert api.get("/api/v1/collections/restmade").status_code == 404
    assert api.delete("/api/v1/collections/restmade").status_code == 404


def test_a_kubectl_applied_collection_shows_over_rest_with_its_phase_and_conditions(
    cluster: Cluster, stack: Stack, operator: Process, sources_root: Path
) -> None:
    operator_tier.apply_collection(cluster, "applied", sources_root)
    resource = wait(
        "the operator's first status",
        lambda: (found := get(cluster, "collection", "applied"))
        and found.get("status", {}).get("conditions")
        and found,
    )
    api = stack.api()
    listed = {item["name"]: item for item in api.get("/api/v1/collections").json()["items"]}
    view = api.get("/api/v1/collections/applied").json()
    after = get(cluster, "collection", "applied")
    assert after is not None
    assert view["resource"] == {"kind": "Collection", "namespace": NAMESPACE, "name": "applied"}
    # Status moves on its own: REST shows what the resource held when it was read, between these two reads.
    seen = {resource["status"]["phase"], after["status"]["phase"]}
    assert view["phase"] in seen and listed["applied"]["phase"] in seen
    assert {c["type"] for c in view["conditions"]} == {c["type"] for c in after["status"]["conditions"]}
    assert view["spec"]["sources"] == resource["spec"]["sources"]
    cluster.kubectl("-n", NAMESPACE, "delete", "collection", "applied")


def test_rest_refuses_what_a_collection_resource_cannot_hold(stack: Stack, sources_root: Path) -> None:
    api = stack.api()
    described = api.post(
        "/api/v1/collections", json={"name": "described", "source_path": str(sources_root / "docs"), "description": "x"}
    )
    assert described.status_code == 422 and described.json()["error"]["field"] == "description", described.text
    sourceless = api.post("/api/v1/collections", json={"name": "sourceless"})
    assert sourceless.status_code == 422 and sourceless.json()["error"]["field"] == "source_path", sourceless.text
    # The CRD's own rule (names of at most 40 characters) answers through REST with its message.
    long_name = "n" * 41
    refused = api.post("/api/v1/collections", json={"name": long_name, "source_path": str(sources_root / "docs")})
    assert refused.status_code == 422 and "40 characters" in refused.json()["error"]["message"], refused.text
    assert api.get("/api/v1/collections/nothing-here").status_code == 404


def test_another_namespaces_index_behind_a_colliding_store_name_is_not_shown_searched_or_followed(
    cluster: Cluster, stack: Stack, operator: Process, sources_root: Path
) -> None:
    # This namespace's `a-docs` and `<NAMESPACE>-a`'s `docs` share a store name; the latter holds it.
    internal = httpx.Client(
        base_url=f"{stack.gateway_url}/internal/v1", headers={"Authorization": f"Bearer {INTERNAL_TOKEN}"}, timeout=30
    )
    url = f"/collections/{store_name(NAMESPACE + '-a', 'docs')}"
    holder = {"owner": f"{NAMESPACE}-a/docs"}
    held = internal.put(url, params=holder, json={"source_path": str(sources_root), "model": operator_tier.MINILM})
    assert held.status_code == 201, held.text
    opened = internal.post(f"{url}/operations", params=holder, json={"key": "holder-1"})
    assert opened.status_code == 202, opened.text
    api = stack.api()
    try:
        operator_tier.apply_collection(cluster, "a-docs", sources_root)
        wait(
            "StoreReady=False StoreNameTaken",
            lambda: condition(get(cluster, "collection", "a-docs"), "StoreReady").get("reason") == "StoreNameTaken",
        )

        view = api.get("/api/v1/collections/a-docs").json()
        assert view["resource"]["name"] == "a-docs" and view["documents"] is None, view
        listed = {item["name"]: item for item in api.get("/api/v1/collections").json()["items"]}
        assert listed["a-docs"]["documents"] is None
        searched = api.post("/api/v1/collections/a-docs/search", json={"query": "license"})
        assert searched.status_code == 404 and searched.json()["error"]["field"] == "name", searched.text
        both = api.post("/api/v1/search", json={"query": "license", "collections": ["a-docs"]})
        assert both.status_code == 404 and both.json()["error"]["field"] == "collections", both.text
        assert api.get(f"/api/v1/operations/{opened.json()['operation_id']}").status_code == 404
        assert api.get("/collections/a-docs").status_code == 200  # the page shows the resource, not the index
    finally:
        cluster.kubectl("-n", NAMESPACE, "delete", "collection", "a-docs", check=False)
        internal.delete(url, params=holder)
        internal.close()
