"""The gateway's Kubernetes credentials in cluster mode: a Role in the release's namespace that creates, reads,
lists and deletes Collections and creates IndexJobs, and nothing more; without cluster mode, no credentials."""

from __future__ import annotations

from tests.support.chart import containers, find, pod_spec, template, workloads

EXACT_RULES = [
    {"apiGroups": ["semantik.io"], "resources": ["collections"], "verbs": ["create", "get", "list", "delete"]},
    {"apiGroups": ["semantik.io"], "resources": ["indexjobs"], "verbs": ["create"]},
]


def test_cluster_mode_gives_the_gateway_exactly_its_verbs_in_the_release_namespace() -> None:
    objects = template(namespace="search")
    role = find(objects, "Role", "-gateway")
    assert role["rules"] == EXACT_RULES
    binding = find(objects, "RoleBinding", "-gateway")
    account = find(objects, "ServiceAccount", "-gateway")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": "search"}
    ]
    # Nothing cluster-wide is bound to the gateway's account.
    for kind in ("ClusterRoleBinding", "RoleBinding"):
        for other in (o for o in objects if o["kind"] == kind and o is not binding):
            assert account["metadata"]["name"] not in [s["name"] for s in other.get("subjects", [])], other

    deployment = find(objects, "Deployment", "-gateway")
    spec = pod_spec(deployment)
    assert spec["serviceAccountName"] == account["metadata"]["name"]
    assert spec["automountServiceAccountToken"] is True
    gateway = next(c for c in spec["containers"] if c["name"] == "gateway")
    env = {item["name"]: item for item in gateway["env"]}
    assert env["SEMANTIK_CLUSTER_MODE"]["value"] == "true"
    assert env["SEMANTIK_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    # The init container runs in the same pod but is not put in cluster mode.
    for container in containers(spec):
        if container["name"] != "gateway":
            assert "SEMANTIK_CLUSTER_MODE" not in {item["name"] for item in container.get("env", [])}


def test_without_cluster_mode_the_gateway_has_no_credentials_and_no_role() -> None:
    objects = template(set_values=["gateway.clusterMode=false"])
    assert not [
        o
        for o in objects
        if o["kind"] in ("Role", "RoleBinding", "ServiceAccount") and o["metadata"]["name"].endswith("-gateway")
    ]
    deployment = next(w for w in workloads(objects) if w["metadata"]["name"].endswith("-gateway"))
    spec = pod_spec(deployment)
    assert spec["automountServiceAccountToken"] is False and "serviceAccountName" not in spec
    env = {item["name"] for c in spec["containers"] for item in c.get("env", [])}
    assert "SEMANTIK_CLUSTER_MODE" not in env and "SEMANTIK_NAMESPACE" not in env
