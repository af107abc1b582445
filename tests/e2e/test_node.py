"""The real node of hack/node.sh: it registers with its kubelet's version, runs pods (logs and exec),
serves ClusterIP Services through kube-proxy, resolves cluster names through CoreDNS, and lets pods
reach the API server through the `kubernetes` Service. That `down` leaves nothing on the host is
checked by the node_cluster fixture's teardown."""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.conftest import Cluster
from tests.e2e.conftest import TOOLS_IMAGE, NodeCluster

VERSIONS = Path(__file__).resolve().parents[2] / "hack" / "controlplane" / "versions.env"


def _kubernetes_version() -> str:
    for line in VERSIONS.read_text().splitlines():
        if line.startswith("KUBERNETES_VERSION="):
            return line.split("=", 1)[1].strip()
    raise AssertionError(f"no KUBERNETES_VERSION in {VERSIONS}")


@pytest.fixture
def namespace(node_cluster: NodeCluster) -> Iterator[str]:
    """A fresh namespace on the node's cluster, deleted (without waiting) after the test."""
    cluster = node_cluster.cluster
    name = f"t-{uuid.uuid4().hex[:12]}"
    cluster.kubectl("create", "namespace", name)
    cluster.kubectl("wait", "--for=create", "serviceaccount/default", "--namespace", name, "--timeout=60s")
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def _tools_pod(name: str, command: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {"app": name}},
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "containers": [
                {"name": "main", "image": TOOLS_IMAGE, "imagePullPolicy": "Never", "command": ["sh", "-c", command]}
            ],
        },
    }


def _run_pod(cluster: Cluster, namespace: str, pod: dict[str, Any]) -> dict[str, Any]:
    cluster.apply(pod, namespace)
    name = pod["metadata"]["name"]
    cluster.kubectl("wait", "-n", namespace, "--for=condition=Ready", f"pod/{name}", "--timeout=90s")
    return cluster.get("-n", namespace, f"pod/{name}")


def _exec(cluster: Cluster, namespace: str, pod: str, command: str) -> str:
    return cluster.kubectl("exec", "-n", namespace, pod, "--", "sh", "-c", command, timeout=60).stdout


def test_node_registers_ready_with_its_kubelet_version(node_cluster: NodeCluster) -> None:
    node = node_cluster.cluster.get("node", node_cluster.node_name)
    info = node["status"]["nodeInfo"]
    assert info["kubeletVersion"] == _kubernetes_version()
    assert info["containerRuntimeVersion"].startswith("containerd://"), info
    ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True", ready
    addresses = {a["type"]: a["address"] for a in node["status"]["addresses"]}
    assert addresses["InternalIP"] == node_cluster.node_ip
    # kwok drives only the nodes annotated kwok.x-k8s.io/node=fake; this one is the kubelet's alone.
    assert "kwok.x-k8s.io/node" not in node["metadata"].get("annotations", {})
    assert [n["metadata"]["name"] for n in node_cluster.cluster.get("nodes")["items"]] == [node_cluster.node_name]


def test_pod_runs_with_logs_and_exec(node_cluster: NodeCluster, namespace: str) -> None:
    cluster = node_cluster.cluster
    pod = _run_pod(cluster, namespace, _tools_pod("hello", "echo hello from the node; exec sleep 3600"))
    assert pod["spec"]["nodeName"] == node_cluster.node_name
    assert pod["status"]["podIP"].startswith("10.88."), pod["status"]
    assert pod["status"]["containerStatuses"][0]["containerID"].startswith("containerd://")
    logs = cluster.kubectl("logs", "-n", namespace, "hello").stdout
    assert "hello from the node" in logs
    assert _exec(cluster, namespace, "hello", "echo $((6 * 7))").strip() == "42"


def test_service_answers_at_its_cluster_ip_and_name(node_cluster: NodeCluster, namespace: str) -> None:
    cluster = node_cluster.cluster
    web = "mkdir -p /www && echo semantik-web-ok > /www/index.html && exec httpd -f -p 8080 -h /www"
    _run_pod(cluster, namespace, _tools_pod("web", web))
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }
    cluster.apply(service, namespace)
    cluster_ip = cluster.get("-n", namespace, "service/web")["spec"]["clusterIP"]
    assert cluster_ip.startswith("10.96."), cluster_ip
    _run_pod(cluster, namespace, _tools_pod("client", "exec sleep 3600"))
    # HTTP by hand through nc (Debian's static busybox wget crashes without NSS modules); kube-proxy's
    # rules may lag the Endpoints by a moment.
    fetch = (
        'for i in $(seq 50); do printf "GET / HTTP/1.0\\r\\n\\r\\n" | nc -w 2 {} 80 | grep semantik-web-ok && exit 0;'
        " sleep 0.2; done; exit 1"
    )
    for host in (cluster_ip, f"web.{namespace}.svc.cluster.local", "web"):  # "web": the search path
        assert _exec(cluster, namespace, "client", fetch.format(host)).strip() == "semantik-web-ok", host
    # And from the host, through the same rules.
    with urllib.request.urlopen(f"http://{cluster_ip}/", timeout=10) as response:
        assert response.read().decode().strip() == "semantik-web-ok"


def test_cluster_dns_resolves_service_names(node_cluster: NodeCluster, namespace: str) -> None:
    cluster = node_cluster.cluster
    _run_pod(cluster, namespace, _tools_pod("dns", "exec sleep 3600"))
    resolv = _exec(cluster, namespace, "dns", "cat /etc/resolv.conf")
    assert "nameserver 10.96.0.10" in resolv, resolv
    assert f"search {namespace}.svc.cluster.local svc.cluster.local cluster.local" in resolv, resolv
    answer = _exec(cluster, namespace, "dns", "nslookup kubernetes.default.svc.cluster.local.")
    assert "10.96.0.1" in answer, answer
    answer = _exec(cluster, namespace, "dns", f"nslookup web.{namespace}.svc.cluster.local. || true")
    assert "NXDOMAIN" in answer or "can't find" in answer, answer  # no such Service: an answer, not a timeout
    # A name completed by the search path goes through libc's resolver (busybox nslookup skips the
    # search path): ping prints the address it resolved, whether or not the ClusterIP answers ICMP.
    answer = _exec(cluster, namespace, "dns", "ping -c 1 -W 1 kubernetes.default.svc 2>&1 || true")
    assert "(10.96.0.1)" in answer, answer
    dns = cluster.get("-n", "kube-system", "service/kube-dns")
    assert dns["spec"]["clusterIP"] == "10.96.0.10"


def test_pod_reaches_the_api_server_through_the_kubernetes_service(node_cluster: NodeCluster, namespace: str) -> None:
    cluster = node_cluster.cluster
    _run_pod(cluster, namespace, _tools_pod("api", "exec sleep 3600"))
    env = _exec(cluster, namespace, "api", "echo $KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT").strip()
    assert env == "10.96.0.1:443"
    # kubectl without a kubeconfig uses the in-cluster config: the service account's token, and the API
    # server's certificate verified against its ca.crt.
    review = json.loads(_exec(cluster, namespace, "api", "kubectl auth whoami -o json"))
    assert review["status"]["userInfo"]["username"] == f"system:serviceaccount:{namespace}:default"
