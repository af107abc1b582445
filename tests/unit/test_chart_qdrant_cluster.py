"""qdrant.replicas: one Qdrant server as before, or more peers in Qdrant's cluster mode, where peer 0 starts
the cluster, the others join it through the headless Service, and each peer is reached at its own DNS name."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.chart import find, pod_spec, schema_refusal, template

HEADLESS = "semantik-qdrant-headless"
PEER_DOMAIN = f"{HEADLESS}.search.svc"


def qdrant(objects: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    statefulset = find(objects, "StatefulSet", "-qdrant")
    return statefulset, pod_spec(statefulset)["containers"][0]


def env_names(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def peer_command(container: dict[str, Any], pod_name: str, folder: Path) -> list[str]:
    """The arguments this peer's command hands the image's entrypoint, run by the shell as the pod would."""
    (folder / "entrypoint.sh").write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    (folder / "entrypoint.sh").chmod(0o755)
    result = subprocess.run(
        [*container["command"], *container["args"]],
        cwd=folder,
        env={"POD_NAME": pod_name, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    return result.stdout.splitlines()


def test_one_replica_is_the_single_server_it_was() -> None:
    objects = template(set_values=["networkPolicy.enabled=true"])
    statefulset, container = qdrant(objects)
    assert statefulset["spec"]["replicas"] == 1 and statefulset["spec"]["serviceName"] == "semantik-qdrant"
    assert "podManagementPolicy" not in statefulset["spec"]
    assert "command" not in container and "args" not in container
    assert not {"QDRANT__CLUSTER__ENABLED", "POD_NAME"} & env_names(container).keys()
    assert [p["name"] for p in container["ports"]] == ["http", "grpc"]
    assert not [o for o in objects if o["kind"] == "PodDisruptionBudget" or o["metadata"]["name"] == HEADLESS]
    assert "affinity" not in pod_spec(statefulset)
    policy = find(objects, "NetworkPolicy", "-qdrant")
    assert [rule["ports"] for rule in policy["spec"]["ingress"]] == [[{"protocol": "TCP", "port": 6333}]]


def test_three_replicas_run_qdrants_cluster_mode(tmp_path: Path) -> None:
    objects = template(set_values=["qdrant.replicas=3", "networkPolicy.enabled=true"])
    statefulset, container = qdrant(objects)
    spec = statefulset["spec"]
    assert spec["replicas"] == 3 and spec["podManagementPolicy"] == "Parallel"
    env = env_names(container)
    assert env["QDRANT__CLUSTER__ENABLED"] == "true" and env["QDRANT__CLUSTER__P2P__PORT"] == "6335"
    assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert {"name": "p2p", "containerPort": 6335} in container["ports"]

    # Peers are found through the headless Service that governs the StatefulSet, ready or not.
    headless = find(objects, "Service", HEADLESS)
    assert spec["serviceName"] == HEADLESS
    assert headless["spec"]["clusterIP"] == "None" and headless["spec"]["publishNotReadyAddresses"] is True
    assert headless["spec"]["selector"] == spec["selector"]["matchLabels"]
    assert {"name": "p2p", "port": 6335, "targetPort": "p2p"} in headless["spec"]["ports"]
    # The gateway still talks to any peer through the ordinary Service.
    assert find(objects, "Service", "semantik-qdrant")["spec"].get("clusterIP") != "None"

    assert peer_command(container, "semantik-qdrant-0", tmp_path) == [
        "--uri",
        f"http://semantik-qdrant-0.{PEER_DOMAIN}:6335",
    ]
    for peer in ("semantik-qdrant-2", "semantik-qdrant-10"):
        assert peer_command(container, peer, tmp_path) == [
            "--bootstrap",
            f"http://semantik-qdrant-0.{PEER_DOMAIN}:6335",
            "--uri",
            f"http://{peer}.{PEER_DOMAIN}:6335",
        ]

    budget = find(objects, "PodDisruptionBudget", "-qdrant")
    assert budget["spec"] == {"maxUnavailable": 1, "selector": spec["selector"]}
    anti = pod_spec(statefulset)["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert anti[0]["podAffinityTerm"]["labelSelector"] == spec["selector"]
    assert anti[0]["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    # Peers reach one another on the p2p port; everyone else still only the gateway, on the API port.
    rules = find(objects, "NetworkPolicy", "-qdrant")["spec"]["ingress"]
    peer_rule = {"from": [{"podSelector": spec["selector"]}], "ports": [{"protocol": "TCP", "port": 6335}]}
    assert len(rules) == 2 and rules[1] == peer_rule


def test_given_affinity_replaces_the_spread_over_nodes() -> None:
    required = "qdrant.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
    objects = template(
        set_values=[
            "qdrant.replicas=3",
            f"{required}.nodeSelectorTerms[0].matchExpressions[0].key=pool",
            f"{required}.nodeSelectorTerms[0].matchExpressions[0].operator=Exists",
        ]
    )
    affinity = pod_spec(qdrant(objects)[0])["affinity"]
    assert list(affinity) == ["nodeAffinity"]


@pytest.mark.parametrize("replicas", [0, 65, "three"])
def test_the_schema_refuses_a_bad_peer_count(replicas: object, tmp_path: Path) -> None:
    assert "qdrant" in schema_refusal({"qdrant": {"replicas": replicas}}, tmp_path)
