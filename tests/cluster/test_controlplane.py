"""The control plane itself: fake nodes, GPU scheduling and taints, Jobs that complete.

What every other cluster test takes for granted, checked against the real kube-apiserver, scheduler and
controller-manager that hack/controlplane.sh runs, with kwok standing in for the kubelets.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.cluster.conftest import CONTROLPLANE, Cluster

pytestmark = [pytest.mark.timeout(180, func_only=True)]

GPU = "nvidia.com/gpu"
GPU_TOLERATION = {"key": GPU, "operator": "Exists", "effect": "NoSchedule"}
GPU_SELECTOR = {"nvidia.com/gpu.present": "true"}


def pod(name: str, **spec: Any) -> dict[str, Any]:
    """A pod of one container; kwok never runs the image, it only moves the pod through its phases."""
    container: dict[str, Any] = {"name": "main", "image": "registry.invalid/semantik/noop:1"}
    if resources := spec.pop("resources", None):
        container["resources"] = resources
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"test": name}},
        "spec": {"containers": [container], **spec},
    }


def pinned_versions() -> dict[str, str]:
    """hack/controlplane/versions.env, the one file that pins the control plane."""
    lines = (CONTROLPLANE.parent / "controlplane" / "versions.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def node_by_name(cluster: Cluster) -> dict[str, dict[str, Any]]:
    return {node["metadata"]["name"]: node for node in cluster.get("nodes")["items"]}


def test_three_nodes_are_ready(cluster: Cluster) -> None:
    nodes = node_by_name(cluster)
    assert sorted(nodes) == ["cpu-0", "cpu-1", "gpu-0"]
    for name, node in nodes.items():
        ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}.get("Ready")
        assert ready == "True", f"{name} is not Ready: {node['status']['conditions']}"


def test_components_report_the_pinned_version(cluster: Cluster) -> None:
    pinned = pinned_versions()["KUBERNETES_VERSION"]
    version = json.loads(cluster.kubectl("version", "--output=json").stdout)
    assert version["clientVersion"]["gitVersion"] == pinned
    assert version["serverVersion"]["gitVersion"] == pinned
    assert version["serverVersion"]["minor"] == pinned.split(".")[1]


def test_gpu_node_advertises_one_gpu_and_the_taint(cluster: Cluster) -> None:
    nodes = node_by_name(cluster)
    gpu = nodes["gpu-0"]
    assert gpu["status"]["allocatable"][GPU] == "1"
    assert gpu["status"]["capacity"][GPU] == "1"
    assert gpu["metadata"]["labels"]["nvidia.com/gpu.present"] == "true"
    assert {"key": GPU, "value": "present", "effect": "NoSchedule"} in gpu["spec"]["taints"]
    for name in ("cpu-0", "cpu-1"):
        assert GPU not in nodes[name]["status"]["allocatable"]
        assert not nodes[name]["spec"].get("taints")


def test_gpu_pod_is_scheduled_on_the_gpu_node_and_becomes_ready(cluster: Cluster, namespace: str) -> None:
    cluster.apply(
        pod(
            "embedder",
            nodeSelector=GPU_SELECTOR,
            tolerations=[GPU_TOLERATION],
            resources={"limits": {GPU: "1"}},
        ),
        namespace,
    )
    cluster.kubectl("wait", "--namespace", namespace, "--for=condition=Ready", "pod/embedder", "--timeout=60s")
    scheduled = cluster.get("--namespace", namespace, "pod/embedder")
    assert scheduled["spec"]["nodeName"] == "gpu-0"
    assert scheduled["status"]["phase"] == "Running"


def test_pods_without_the_toleration_never_land_on_the_gpu_node(cluster: Cluster, namespace: str) -> None:
    # Asking for the GPU node's label without tolerating its taint: unschedulable, for the taint.
    cluster.apply(pod("intolerant", nodeSelector=GPU_SELECTOR), namespace)
    cluster.kubectl(
        "wait", "--namespace", namespace, "--for=condition=PodScheduled=false", "pod/intolerant", "--timeout=60s"
    )
    pending = cluster.get("--namespace", namespace, "pod/intolerant")
    condition = next(c for c in pending["status"]["conditions"] if c["type"] == "PodScheduled")
    assert condition["reason"] == "Unschedulable"
    assert "1 node(s) had untolerated taint" in condition["message"], condition["message"]
    assert not pending["spec"].get("nodeName")

    # Plain pods spread over the nodes they may use: the CPU nodes only.
    for index in range(6):
        cluster.apply(pod(f"plain-{index}"), namespace)
    plain = [f"pod/plain-{index}" for index in range(6)]
    cluster.kubectl("wait", "--namespace", namespace, "--for=condition=Ready", *plain, "--timeout=60s")
    placed = {cluster.get("--namespace", namespace, name)["spec"]["nodeName"] for name in plain}
    assert placed <= {"cpu-0", "cpu-1"}, placed


def test_job_with_two_completions_succeeds(cluster: Cluster, namespace: str) -> None:
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "reindex"},
        "spec": {
            "completions": 2,
            "parallelism": 1,
            "backoffLimit": 0,
            "template": {"spec": {**pod("reindex")["spec"], "restartPolicy": "Never"}},
        },
    }
    cluster.apply(job, namespace)
    cluster.kubectl(
        "wait", "--namespace", namespace, "--for=jsonpath={.status.succeeded}=2", "job/reindex", "--timeout=120s"
    )
    cluster.kubectl("wait", "--namespace", namespace, "--for=condition=Complete", "job/reindex", "--timeout=60s")
    finished = cluster.get("--namespace", namespace, "job/reindex")
    assert finished["status"]["succeeded"] == 2
    assert not finished["status"].get("failed")
    # kwok's pod-complete stage ends each of the Job's pods once Running, as a container exiting 0 would.
    pods = cluster.get("--namespace", namespace, "pods", "-l", "batch.kubernetes.io/job-name=reindex")["items"]
    assert [p["status"]["phase"] for p in pods] == ["Succeeded", "Succeeded"]
    for finished_pod in pods:
        assert finished_pod["spec"]["nodeName"] in {"cpu-0", "cpu-1"}
        (state,) = [c["state"] for c in finished_pod["status"]["containerStatuses"]]
        assert state["terminated"]["exitCode"] == 0 and state["terminated"]["reason"] == "Completed"
