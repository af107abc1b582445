"""The chart's NetworkPolicies, evaluated as a CNI would over the labels of every pod that runs: each pod
template the chart renders, and the embedder Deployment and worker Job the operator's builders make.
Who may open a connection to whom follows from the policies alone, so a label renamed on either side
(a template, a builder) fails here rather than cutting a path, or opening one, in a cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from semantik_operator.builders.embedder import build_embedder_deployment
from semantik_operator.builders.indexing import build_worker_job
from semantik_operator.settings import OperatorSettings
from semantik_operator.spec import CollectionSpec
from tests.support.chart import CHART, CI_VALUES, template, workloads

Labels = dict[str, str]
PORTS = {"postgresql": 5432, "qdrant": 6333, "redis": 6379, "embedder": 8000, "gateway": 8080, "operator": 9091}


def selects(selector: dict[str, Any], labels: Labels) -> bool:
    """Whether a Kubernetes label selector (matchLabels and matchExpressions) matches these labels."""
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def peer_admits(peer: dict[str, Any], source: Labels) -> bool:
    # A peer without a namespaceSelector means this namespace, where all of these pods run.
    if "ipBlock" in peer or "namespaceSelector" in peer:
        return False
    return selects(peer["podSelector"], source)


def port_matches(rule: dict[str, Any], port: int, protocol: str = "TCP") -> bool:
    ports = rule.get("ports")
    return not ports or any(p.get("port") == port and p.get("protocol", "TCP") == protocol for p in ports)


def may_connect(policies: list[dict[str, Any]], source: Labels, target: Labels, port: int) -> bool:
    """Ingress to `target` on `port` from `source`, and egress from `source` to it, both allowed."""
    ingress = [
        p for p in policies if "Ingress" in p["spec"]["policyTypes"] and selects(p["spec"]["podSelector"], target)
    ]
    if ingress and not any(
        port_matches(rule, port) and ("from" not in rule or any(peer_admits(peer, source) for peer in rule["from"]))
        for policy in ingress
        for rule in policy["spec"].get("ingress", [])
    ):
        return False
    egress = [p for p in policies if "Egress" in p["spec"]["policyTypes"] and selects(p["spec"]["podSelector"], source)]
    return not egress or any(
        port_matches(rule, port) and ("to" not in rule or any(peer_admits(peer, target) for peer in rule["to"]))
        for policy in egress
        for rule in policy["spec"].get("egress", [])
    )


def operator_pods() -> dict[str, Labels]:
    """Labels of the pods the operator creates, from its own builders."""
    collection = CollectionSpec.model_validate({"sources": [{"name": "docs", "pvc": {"claimName": "docs"}}]})
    owner = {"apiVersion": "semantik.io/v1alpha1", "kind": "Collection", "metadata": {"name": "handbook", "uid": "u"}}
    embedder = build_embedder_deployment(collection, "search", [owner], OperatorSettings())
    index_job = {
        "apiVersion": "semantik.io/v1alpha1",
        "kind": "IndexJob",
        "metadata": {"name": "handbook-full-1", "namespace": "search", "uid": "u"},
        "spec": {"collectionRef": {"name": "handbook"}, "mode": "full"},
    }
    job = build_worker_job(index_job, collection, queue="q", embedder_url="http://e", settings=OperatorSettings())
    return {
        "operator-embedder": embedder["spec"]["template"]["metadata"]["labels"],
        "worker": job["spec"]["template"]["metadata"]["labels"],
    }


def chart_pods(objects: list[dict[str, Any]]) -> dict[str, Labels]:
    """Labels of every pod the chart runs, by component (the helm test pod as `helm-test`)."""
    pods: dict[str, Labels] = {}
    for workload in workloads(objects):
        labels = workload["metadata"]["labels"] if workload["kind"] == "Pod" else None
        labels = labels or workload["spec"]["template"]["metadata"]["labels"]
        name = "helm-test" if workload["kind"] == "Pod" else labels["app.kubernetes.io/component"]
        assert name not in pods, f"two workloads of {name}: name them apart in this test"
        pods[name] = labels
    return pods


def policies_of(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == "NetworkPolicy"]


@pytest.fixture(scope="module")
def defaults() -> tuple[list[dict[str, Any]], dict[str, Labels]]:
    objects = template()
    return policies_of(objects), {**chart_pods(objects), **operator_pods()}


def test_network_policies_are_on_by_default(defaults: tuple[list[dict[str, Any]], dict[str, Labels]]) -> None:
    policies, _ = defaults
    assert policies
    assert not policies_of(template(set_values=["networkPolicy.enabled=false"]))


@pytest.mark.parametrize("values", CI_VALUES, ids=[p.name for p in CI_VALUES])
def test_each_policy_selects_exactly_the_pods_it_is_for(values: Path) -> None:
    objects = template(values)
    pods = {**chart_pods(objects), **operator_pods()}
    meant = {
        "semantik-postgresql": {"postgresql"},
        "semantik-qdrant": {"qdrant"},
        "semantik-redis": {"redis"},
        "semantik-embedders": {"embedder", "operator-embedder"},
        "semantik-gateway": {"gateway"},
        "semantik-operator": {"operator"},
    }
    policies = policies_of(objects)
    for policy in policies:
        selected = {name for name, labels in pods.items() if selects(policy["spec"]["podSelector"], labels)}
        assert selected == meant[policy["metadata"]["name"]], policy["metadata"]["name"]
    stores = {c for c in ("postgresql", "qdrant", "redis") if c in pods}
    assert {p["metadata"]["name"] for p in policies} == {f"semantik-{c}" for c in stores} | {
        "semantik-embedders",
        "semantik-gateway",
        "semantik-operator",
    }


ALLOWED = {
    # source: the targets it may reach; every other (source, target) pair below is refused.
    "gateway": {"postgresql", "qdrant", "redis", "embedder", "operator-embedder", "gateway", "operator"},
    "worker": {"redis", "embedder", "operator-embedder", "gateway", "operator"},
    # An embedder's egress is name lookups only: it reaches nothing, not even the open gateway.
    "embedder": set(),
    "operator-embedder": set(),
    "operator": {"gateway", "operator"},
    "postgresql": {"gateway", "operator"},
    "qdrant": {"gateway", "operator"},
    "redis": {"gateway", "operator"},
    "helm-test": {"gateway", "operator"},
    "stranger": {"gateway", "operator"},
}


def test_who_may_reach_whom(defaults: tuple[list[dict[str, Any]], dict[str, Labels]]) -> None:
    policies, pods = defaults
    # Any other pod of the namespace, e.g. one a Collection author or an attacker runs.
    pods = {**pods, "stranger": {"app": "something-else"}}
    assert set(ALLOWED) == set(pods), "every pod is in the table"
    for source, allowed in ALLOWED.items():
        for target, target_labels in pods.items():
            if target in ("helm-test", "stranger", "worker"):
                continue  # nothing connects to these
            port = PORTS["embedder" if target == "operator-embedder" else target]
            reachable = may_connect(policies, pods[source], target_labels, port)
            assert reachable == (target in allowed), f"{source} -> {target}:{port} should be {target in allowed}"


def test_a_worker_reaches_redis_and_the_embedders_but_no_database(
    defaults: tuple[list[dict[str, Any]], dict[str, Labels]],
) -> None:
    policies, pods = defaults
    worker = pods["worker"]
    assert worker["semantik.io/index-worker"] == "true"
    assert may_connect(policies, worker, pods["redis"], 6379)
    assert may_connect(policies, worker, pods["operator-embedder"], 8000)
    assert not may_connect(policies, worker, pods["postgresql"], 5432)
    assert not may_connect(policies, worker, pods["qdrant"], 6333)
    # A pod that only looks like a worker by its other labels is not one.
    lookalike = {k: v for k, v in worker.items() if k != "semantik.io/index-worker"}
    assert not may_connect(policies, lookalike, pods["redis"], 6379)


def test_embedders_may_only_look_names_up(defaults: tuple[list[dict[str, Any]], dict[str, Labels]]) -> None:
    policies, pods = defaults
    for embedder in ("embedder", "operator-embedder"):
        egress = [
            rule
            for p in policies
            if "Egress" in p["spec"]["policyTypes"] and selects(p["spec"]["podSelector"], pods[embedder])
            for rule in p["spec"]["egress"]
        ]
        assert egress and all({port["port"] for port in rule["ports"]} == {53} for rule in egress)
        assert {port["protocol"] for rule in egress for port in rule["ports"]} == {"UDP", "TCP"}


def test_metrics_scrapers_can_be_let_in() -> None:
    peer = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    objects = template(
        CHART / "ci" / "defaults-values.yaml",
        set_values=[
            "networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.kubernetes\\.io/metadata\\.name=monitoring"
        ],
    )
    embedders = next(p for p in policies_of(objects) if p["metadata"]["name"] == "semantik-embedders")
    assert peer in embedders["spec"]["ingress"][0]["from"]
    operator = next(p for p in policies_of(objects) if p["metadata"]["name"] == "semantik-operator")
    assert operator["spec"]["ingress"][0]["from"] == [peer]
