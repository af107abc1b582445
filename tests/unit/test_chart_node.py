"""ci/node-values.yaml, the values the real-node test installs with: images built here and never pulled,
embedded Qdrant, the claims the test binds in advance, and requests that fit one 2-CPU node together with
CoreDNS and the pods the operator makes for one Collection (its embedder and an index worker)."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from semantik_operator.builders.embedder import build_embedder_deployment
from semantik_operator.builders.indexing import build_worker_job
from semantik_operator.settings import OperatorSettings
from semantik_operator.spec import CollectionSpec
from tests.support.chart import CHART, containers, env_of, find, pod_spec, template, workloads

NODE_VALUES = CHART / "ci" / "node-values.yaml"
NODE_CPU = Decimal(2)
COREDNS_CPU = Decimal("0.1")  # CoreDNS's own manifests request 100m
LOCAL_IMAGES = {
    "localhost/semantik-service:dev",
    "localhost/semantik-operator:dev",
    "localhost/semantik-postgres:15-bookworm",
    "localhost/semantik-redis:7-bookworm",
}


def cpu(quantity: str | int) -> Decimal:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(m?)", str(quantity))
    assert match, quantity
    return Decimal(match.group(1)) / (1000 if match.group(2) else 1)


def pod_cpu(spec: dict[str, Any]) -> Decimal:
    """What the scheduler reserves for a pod: its containers' sum, or its largest init container if more."""
    running = sum((cpu(c["resources"]["requests"]["cpu"]) for c in spec["containers"]), Decimal(0))
    init = [cpu(c["resources"]["requests"]["cpu"]) for c in spec.get("initContainers", [])]
    return max([running, *init])


# What the real-node test's Collection asks for its embedder (spec.embedder.resources.requests): the
# operator's default, 1 CPU and 2Gi, leaves no room for a second worker or a replaced gateway pod.
E2E_EMBEDDER_REQUESTS = {"cpu": "250m", "memory": "1Gi"}


def operator_pods(embedder_requests: dict[str, str], parallelism: int) -> list[dict[str, Any]]:
    """Pod specs of a Collection's embedder and of its index workers, as the operator builds them."""
    collection = CollectionSpec.model_validate(
        {
            "sources": [{"name": "docs", "hostPath": "/srv/semantik-e2e/docs"}],
            "embedder": {"resources": {"requests": embedder_requests}},
            "indexing": {"parallelism": parallelism},
        }
    )
    owner = {"apiVersion": "semantik.io/v1alpha1", "kind": "Collection", "metadata": {"name": "docs", "uid": "u"}}
    settings = OperatorSettings(allowed_host_paths=["/srv/semantik-e2e"])
    embedder = build_embedder_deployment(collection, "e2e", [owner], settings)
    index_job = {
        "apiVersion": "semantik.io/v1alpha1",
        "kind": "IndexJob",
        "metadata": {"name": "docs-full-1", "namespace": "e2e", "uid": "u"},
        "spec": {"collectionRef": {"name": "docs"}, "mode": "full"},
    }
    job = build_worker_job(index_job, collection, queue="q", embedder_url="http://e", settings=settings)
    return [pod_spec(embedder), *[pod_spec(job)] * job["spec"]["parallelism"]]


def test_every_image_is_a_local_one_never_pulled() -> None:
    objects = template(NODE_VALUES)
    images = set()
    for workload in workloads(objects):
        for container in containers(pod_spec(workload)):
            images.add(container["image"])
            assert container["imagePullPolicy"] == "Never", container["name"]
    assert images == LOCAL_IMAGES
    operator = pod_spec(find(objects, "Deployment", "-operator"))["containers"][0]
    env = env_of(operator, objects)
    assert env["SEMANTIK_OPERATOR_SERVICE_IMAGE"] == "localhost/semantik-service:dev"
    assert env["SEMANTIK_OPERATOR_IMAGE_PULL_POLICY"] == "Never"
    assert env["SEMANTIK_OPERATOR_ALLOWED_HOST_PATHS"] == '["/srv/semantik-e2e"]'


def test_the_claims_are_the_two_the_test_binds_and_nothing_else_needs_a_volume() -> None:
    objects = template(NODE_VALUES, release="e2e")
    claims = {o["metadata"]["name"]: o["spec"] for o in objects if o["kind"] == "PersistentVolumeClaim"}
    assert claims.keys() == {"e2e-semantik-models", "e2e-semantik-gateway-data"}
    assert all(spec["storageClassName"] == "semantik-local" for spec in claims.values())
    assert claims["e2e-semantik-models"]["accessModes"] == ["ReadWriteMany"]
    assert claims["e2e-semantik-gateway-data"]["accessModes"] == ["ReadWriteOnce"]
    assert not [o for o in objects if o["kind"] == "StatefulSet" and o["spec"].get("volumeClaimTemplates")]
    assert not [o for o in objects if "qdrant" in o["metadata"]["name"]]


def test_one_of_each_pod_and_everything_fits_one_two_cpu_node() -> None:
    objects = template(NODE_VALUES)
    long_running = [o for o in workloads(objects) if o["kind"] in ("Deployment", "StatefulSet")]
    assert {o["metadata"]["name"]: o["spec"]["replicas"] for o in long_running} == {
        "semantik-embedder": 1,
        "semantik-gateway": 1,
        "semantik-operator": 1,
        "semantik-postgresql": 1,
        "semantik-redis": 1,
    }
    release = sum((pod_cpu(pod_spec(o)) for o in long_running), Decimal(0))
    assert release <= Decimal("0.4"), release

    def requested(*pods: dict[str, Any]) -> Decimal:
        return release + COREDNS_CPU + sum((pod_cpu(pod) for pod in pods), Decimal(0))

    # The operator's defaults fit with one worker (IndexJob or Collection parallelism 1), nothing more.
    assert requested(*operator_pods({}, parallelism=1)) <= NODE_CPU
    assert requested(*operator_pods({}, parallelism=2)) > NODE_CPU
    # The test's Collection: its embedder lowered, the default two workers, the helm test pod, and a second
    # gateway pod while a killed one terminates.
    transient = [pod_spec(find(objects, "Pod", "-test")), pod_spec(find(objects, "Deployment", "-gateway"))]
    total = requested(*operator_pods(E2E_EMBEDDER_REQUESTS, parallelism=2), *transient)
    assert total <= NODE_CPU, f"{total} CPUs requested on a {NODE_CPU}-CPU node"
    # Room for the model: the gateway and the embedder load torch.
    limits = {o["metadata"]["name"]: pod_spec(o)["containers"][0]["resources"]["limits"] for o in long_running}
    assert limits["semantik-gateway"]["memory"] == "2Gi" and limits["semantik-embedder"]["memory"] == "3Gi"
