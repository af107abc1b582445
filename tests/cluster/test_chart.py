"""The Helm chart against the real control plane from hack/ (kwok nodes: pods are scheduled and made
Running, no container runs): `helm install`, every object created and every pod scheduled, a
server-side strict dry run of every ci/*-values.yaml, an upgrade that rolls only the pods whose config
changed and keeps the generated Secrets, a wrong value refused, uninstall keeping the CRDs; and the
operator run as a host process with the chart's ServiceAccount token, its namespaced Role (and the
read-only discovery ClusterRole) proved enough (and no more) to reconcile a Collection into all its
children with no 403, every hop of the data plane authenticated."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from semantik.contracts.naming import store_name
from semantik_operator.builders.embedder import embedder_name
from semantik_operator.rbac import DISCOVERY_RULES, RULES
from semantik_operator.spec import Quantization
from tests.cluster.conftest import Cluster
from tests.support.chart import (
    CHART,
    CI_VALUES,
    DASHBOARDS,
    exported_names,
    panel_exprs,
    promql_metric_names,
)
from tests.support.kube import pod_ready, wait
from tests.support.servers import drop_postgres_database, fresh_postgres_database
from tests.support.stack import Process, free_port, wait_until_ready

NAMESPACE = "chart-test"
RELEASE = "semantik"
MINILM = "sentence-transformers/all-MiniLM-L6-v2"

pytestmark = pytest.mark.timeout(600)


def helm(cluster: Cluster, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["helm", *args], env=cluster.env, capture_output=True, text=True, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


def manifest(cluster: Cluster, release: str, namespace: str) -> list[dict[str, Any]]:
    text = helm(cluster, "get", "manifest", release, "--namespace", namespace).stdout
    return [doc for doc in yaml.safe_load_all(text) if doc]


def volumes_for(cluster: Cluster, namespace: str, claims: list[str], root: Path) -> None:
    """hostPath PersistentVolumes bound in advance to the claims the chart makes: kwok has no provisioner."""
    for claim in claims:
        directory = root / claim
        directory.mkdir(parents=True, exist_ok=True)
        cluster.apply(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": f"{namespace}-{claim}"},
                "spec": {
                    "capacity": {"storage": "100Gi"},
                    "accessModes": ["ReadWriteOnce", "ReadWriteMany"],
                    "hostPath": {"path": str(directory)},
                    "claimRef": {"namespace": namespace, "name": claim},
                },
            }
        )


@pytest.fixture(scope="module")
def release(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[subprocess.CompletedProcess[str]]:
    """`helm install` of the chart with its defaults into NAMESPACE."""
    claims = ["data-semantik-postgresql-0", "storage-semantik-qdrant-0", "data-semantik-redis-0", "semantik-models"]
    volumes_for(cluster, NAMESPACE, claims, tmp_path_factory.mktemp("volumes"))
    started = time.monotonic()
    installed = helm(
        cluster, "install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--create-namespace", "--wait=false"
    )
    print(f"helm install took {time.monotonic() - started:.1f}s")
    yield installed
    helm(cluster, "uninstall", RELEASE, "--namespace", NAMESPACE, "--wait", check=False)
    cluster.kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)


def ready_pods(cluster: Cluster, namespace: str, component: str) -> list[dict[str, Any]]:
    pods = cluster.get("pods", "-n", namespace, "-l", f"app.kubernetes.io/component={component}")["items"]
    return [pod for pod in pods if pod.get("metadata", {}).get("deletionTimestamp") is None and pod_ready(pod)]


def test_install_creates_every_object_and_every_pod_is_scheduled(
    cluster: Cluster, release: subprocess.CompletedProcess[str]
) -> None:
    objects = manifest(cluster, RELEASE, NAMESPACE)
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "StatefulSet", "Service", "Secret", "ConfigMap", "Role", "ServiceAccount"} <= kinds
    assert {"NetworkPolicy", "ClusterRole"} <= kinds
    for obj in objects:
        scope = [] if obj["kind"].startswith("Cluster") else ["-n", NAMESPACE]
        cluster.kubectl("get", obj["kind"], obj["metadata"]["name"], *scope)
    # The CRDs came with the chart (crds/) and are served.
    cluster.kubectl("wait", "--for=condition=Established", "crd/collections.semantik.io", "crd/indexjobs.semantik.io")
    operator = wait("a Ready operator pod", lambda: ready_pods(cluster, NAMESPACE, "operator"))
    assert operator[0]["spec"]["serviceAccountName"] == "semantik-operator"
    assert operator[0]["spec"]["nodeName"] in ("cpu-0", "cpu-1")
    for component, count in (("gateway", 2), ("embedder", 1), ("postgresql", 1), ("qdrant", 1), ("redis", 1)):
        wait(
            f"{count} Ready {component} pods", lambda c=component, n=count: len(ready_pods(cluster, NAMESPACE, c)) == n
        )
    # Nothing may land on the GPU node but what asks for a GPU.
    pods = cluster.get("pods", "-n", NAMESPACE)["items"]
    assert all(pod["spec"].get("nodeName") != "gpu-0" for pod in pods)
    assert "except the CRDs" in release.stdout and "helm test semantik" in release.stdout


def test_every_ci_values_file_passes_a_strict_server_side_dry_run(cluster: Cluster) -> None:
    """The real kube-apiserver (v1.36) validates every object with strict field validation."""
    cluster.kubectl("create", "namespace", "chart-dry-run", check=False)
    for values in CI_VALUES:
        rendered = helm(
            cluster, "template", "dry", str(CHART), "--namespace", "chart-dry-run", "-f", str(values)
        ).stdout
        # ServiceMonitor's CRD belongs to the Prometheus Operator, which this cluster does not run.
        docs = [d for d in yaml.safe_load_all(rendered) if d and d["kind"] != "ServiceMonitor"]
        result = cluster.kubectl(
            "apply",
            "--dry-run=server",
            "--validate=strict",
            "-n",
            "chart-dry-run",
            "-f",
            "-",
            input=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}),
            check=False,
        )
        assert result.returncode == 0, f"{values.name}:\n{result.stderr}"
        assert result.stdout.count("(server dry run)") == len(docs)


def test_the_role_is_exactly_the_rbac_list(cluster: Cluster, release: object) -> None:
    role = cluster.get("role", "semantik-operator", "-n", NAMESPACE)
    assert role["rules"] == RULES
    assert cluster.kubectl("get", "clusterrole", "semantik-operator", check=False).returncode != 0
    assert cluster.get("clusterrole", "semantik-operator-discovery")["rules"] == DISCOVERY_RULES


def _template_state(cluster: Cluster) -> dict[str, tuple[int, str]]:
    """Per Deployment: (generation, checksum/config) of its pod template."""
    deployments = cluster.get("deployments", "-n", NAMESPACE)["items"]
    return {
        d["metadata"]["name"].removeprefix("semantik-"): (
            d["metadata"]["generation"],
            d["spec"]["template"]["metadata"]["annotations"]["checksum/config"],
        )
        for d in deployments
        if d["metadata"].get("labels", {}).get("app.kubernetes.io/instance") == RELEASE
    }


def _secret_data(cluster: Cluster) -> dict[str, dict[str, str]]:
    secrets = cluster.get("secrets", "-n", NAMESPACE, "-l", f"app.kubernetes.io/instance={RELEASE}")["items"]
    return {s["metadata"]["name"]: s["data"] for s in secrets}


def test_upgrade_rolls_only_the_changed_deployment_and_keeps_the_secrets(cluster: Cluster, release: object) -> None:
    before, secrets = _template_state(cluster), _secret_data(cluster)
    assert set(before) == {"gateway", "embedder", "operator"}
    old_embedder_pods = {p["metadata"]["name"] for p in ready_pods(cluster, NAMESPACE, "embedder")}

    helm(cluster, "upgrade", RELEASE, str(CHART), "-n", NAMESPACE, "--reuse-values", "--set", "embedder.logLevel=DEBUG")
    after = _template_state(cluster)
    assert after["embedder"][0] == before["embedder"][0] + 1 and after["embedder"][1] != before["embedder"][1]
    assert after["gateway"] == before["gateway"] and after["operator"] == before["operator"]
    assert _secret_data(cluster) == secrets, "an upgrade must keep the generated token, key and password"
    # The embedder's pods are replaced by pods of the new template.
    wait(
        "the embedder rolled",
        lambda: (pods := ready_pods(cluster, NAMESPACE, "embedder"))
        and not {p["metadata"]["name"] for p in pods} & old_embedder_pods,
    )
    config = cluster.get("configmap", "semantik-embedder", "-n", NAMESPACE)
    assert config["data"]["SEMANTIK_EMBEDDER_LOG_LEVEL"] == "DEBUG"

    helm(cluster, "upgrade", RELEASE, str(CHART), "-n", NAMESPACE, "--reuse-values", "--set", "gateway.replicas=3")
    scaled = _template_state(cluster)
    assert scaled["gateway"][1] == before["gateway"][1]  # scaled, not rolled
    assert cluster.get("deployment", "semantik-gateway", "-n", NAMESPACE)["spec"]["replicas"] == 3


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ("gateway:\n  replicass: 3\n", "at '/gateway': additional properties 'replicass' not allowed"),
        ("operator:\n  replicas: -1\n", "at '/operator/replicas': minimum: got -1, want 0"),
        ("images:\n  service:\n    tag: 1.2\n", "at '/images/service/tag': got number, want string"),
    ],
    ids=["typo", "negative-replicas", "tag-type"],
)
def test_helm_install_refuses_a_wrong_value_with_the_schemas_message(
    cluster: Cluster, values: str, message: str, tmp_path: Path
) -> None:
    path = tmp_path / "wrong.yaml"
    path.write_text(values)
    result = helm(
        cluster, "install", "wrong", str(CHART), "-n", "chart-wrong", "--create-namespace", "-f", str(path), check=False
    )
    assert result.returncode != 0 and message in result.stderr, result.stderr
    assert "wrong" not in helm(cluster, "list", "-n", "chart-wrong", "-q").stdout.split()


def test_an_upgrade_to_embedded_qdrant_swaps_the_stores_and_the_gateways_strategy(cluster: Cluster) -> None:
    """statefulset -> embedded on a live release: the Qdrant server goes, the gateway gets its claim, one
    replica and Recreate (the strategy's retainKeys patch drops the defaulted rollingUpdate Recreate forbids)."""
    namespace, fullname = "chart-embedded", "modes-semantik"
    helm(cluster, "install", "modes", str(CHART), "-n", namespace, "--create-namespace", "--set", "gateway.replicas=1")
    assert cluster.get("deployment", f"{fullname}-gateway", "-n", namespace)["spec"]["strategy"]["type"] == (
        "RollingUpdate"
    )
    embedded = ["--set", "qdrant.mode=embedded"]
    refused = helm(cluster, "upgrade", "modes", str(CHART), "-n", namespace, *embedded, check=False)
    assert refused.returncode != 0 and "at '/gateway/replicas': value must be 1" in refused.stderr, refused.stderr

    helm(cluster, "upgrade", "modes", str(CHART), "-n", namespace, "--reuse-values", *embedded)
    gateway = cluster.get("deployment", f"{fullname}-gateway", "-n", namespace)["spec"]
    assert gateway["strategy"] == {"type": "Recreate"} and gateway["replicas"] == 1
    volumes = {v["name"]: v for v in gateway["template"]["spec"]["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == f"{fullname}-gateway-data"
    claim = cluster.get("pvc", f"{fullname}-gateway-data", "-n", namespace)
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert cluster.kubectl("get", "statefulset", f"{fullname}-qdrant", "-n", namespace, check=False).returncode != 0
    assert cluster.kubectl("get", "networkpolicy", f"{fullname}-qdrant", "-n", namespace, check=False).returncode != 0
    config = cluster.get("configmap", f"{fullname}-gateway", "-n", namespace)["data"]
    assert "SEMANTIK_QDRANT_URL" not in config and config["SEMANTIK_QDRANT_PATH"] == "/data/qdrant"
    helm(cluster, "uninstall", "modes", "-n", namespace, "--wait", check=False)
    cluster.kubectl("delete", "namespace", namespace, "--wait=false")


def test_uninstall_removes_the_release_but_leaves_the_crds(cluster: Cluster) -> None:
    namespace = "chart-uninstall"
    installed = helm(cluster, "install", "gone", str(CHART), "-n", namespace, "--create-namespace")
    assert "except the CRDs" in installed.stdout
    cluster.apply(
        {
            "apiVersion": "semantik.io/v1alpha1",
            "kind": "Collection",
            "metadata": {"name": "survivor", "namespace": namespace},
            "spec": {"sources": [{"name": "docs", "hostPath": "/srv/docs"}]},
        }
    )
    helm(cluster, "uninstall", "gone", "-n", namespace, "--wait")
    left = cluster.kubectl(
        "get",
        "deploy,sts,svc,configmap,sa,role,networkpolicy",
        "-n",
        namespace,
        "-l",
        "app.kubernetes.io/instance=gone",
    )
    assert "No resources found" in left.stderr, left.stdout
    assert cluster.kubectl("get", "clusterrole", "gone-semantik-operator-discovery", check=False).returncode != 0
    # The generated Secrets stay (helm.sh/resource-policy: keep): a reinstall finds the passwords its kept
    # data volumes were made with.
    kept = cluster.get("secrets", "-n", namespace, "-l", "app.kubernetes.io/instance=gone")["items"]
    assert {s["metadata"]["name"] for s in kept} == {
        f"gone-semantik-{name}" for name in ("internal", "api-key", "postgresql", "qdrant", "redis", "embedder-token")
    }
    cluster.kubectl("get", "crd", "collections.semantik.io", "indexjobs.semantik.io")
    # The Collection (no operator left to run its finalizer: it has none yet) and the model cache stay.
    cluster.kubectl("get", "collection", "survivor", "-n", namespace)
    cluster.kubectl("get", "pvc", "gone-semantik-models", "-n", namespace)
    cluster.kubectl("delete", "namespace", namespace, "--wait=false")


# --- the operator with the chart's ServiceAccount ------------------------------------------------


def _pod_env(cluster: Cluster, namespace: str, container: dict[str, Any]) -> dict[str, str]:
    """A container's environment as the kubelet gives it: its ConfigMaps and Secrets read from the API."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(cluster.get("configmap", source["configMapRef"]["name"], "-n", namespace)["data"])
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        elif "fieldRef" in item["valueFrom"]:
            assert item["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace", item
            env[item["name"]] = namespace
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            data = cluster.get("secret", ref["name"], "-n", namespace)["data"]
            env[item["name"]] = base64.b64decode(data[ref["key"]]).decode()
    return env


def _container(cluster: Cluster, deployment: str, init: bool = False) -> dict[str, Any]:
    spec = cluster.get("deployment", deployment, "-n", NAMESPACE)["spec"]["template"]["spec"]
    return dict(spec["initContainers" if init else "containers"][0])


def _service_account_kubeconfig(cluster: Cluster, path: Path, account: str = "semantik-operator") -> Path:
    """A kubeconfig that authenticates as one of the chart's ServiceAccounts (a TokenRequest token)."""
    token = cluster.kubectl("create", "token", account, "-n", NAMESPACE, "--duration=2h").stdout.strip()
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    server = admin["clusters"][0]["cluster"]
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "semantik", "cluster": server}],
                "users": [{"name": "operator", "user": {"token": token}}],
                "contexts": [{"name": "operator", "context": {"cluster": "semantik", "user": "operator"}}],
                "current-context": "operator",
            }
        )
    )
    return path


def test_the_service_account_may_do_what_the_rbac_list_says_and_nothing_else(cluster: Cluster, release: object) -> None:
    subject = f"--as=system:serviceaccount:{NAMESPACE}:semantik-operator"
    for rule in RULES:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    target = f"{resource}.{group}" if group else resource
                    answer = cluster.kubectl("auth", "can-i", verb, target, subject, "-n", NAMESPACE, check=False)
                    assert answer.stdout.strip() == "yes", (verb, target)
    elsewhere = f"{NAMESPACE}-not-watched"
    for verb, target in (("list", "collections.semantik.io"), ("create", "deployments.apps"), ("create", "jobs.batch")):
        answer = cluster.kubectl("auth", "can-i", verb, target, subject, "-n", elsewhere, check=False)
        assert answer.stdout.strip() == "no", (verb, target, "outside the release's namespace")
    for verb, target in (
        ("get", "secrets"),
        ("list", "secrets"),
        ("create", "pods"),
        ("delete", "namespaces"),
        ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
        ("update", "customresourcedefinitions.apiextensions.k8s.io"),
        ("delete", "jobs.batch"),
    ):
        answer = cluster.kubectl("auth", "can-i", verb, target, subject, "-n", NAMESPACE, check=False)
        assert answer.stdout.strip() == "no", (verb, target)


@pytest.fixture(scope="module")
async def charted_database(postgres_url: str) -> Any:
    database_url = await fresh_postgres_database(postgres_url)
    yield database_url
    await drop_postgres_database(database_url)


@pytest.fixture(scope="module")
def charted_stack(
    cluster: Cluster,
    release: object,
    charted_database: str,
    redis_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Any]]:
    """The chart's embedder, gateway (after its init container) and operator as host processes, each with
    the command and environment its Deployment gives it. Only what a kubelet and cluster DNS would map
    is mapped: Service names to loopback ports, the stores to the test's PostgreSQL, Redis and Qdrant's
    local mode (no Qdrant server binary here), and the API credentials to the ServiceAccount's token."""
    work = tmp_path_factory.mktemp("charted")
    processes: dict[str, Process] = {}
    try:
        embedder = _container(cluster, "semantik-embedder")
        embedder_port = free_port()
        embedder_env = {
            **_pod_env(cluster, NAMESPACE, embedder),
            "SEMANTIK_EMBEDDER_HOST": "127.0.0.1",
            "SEMANTIK_EMBEDDER_PORT": str(embedder_port),
            "HOME": str(work),
        }
        assert embedder_env["SEMANTIK_EMBEDDER_TOKEN"], "the embedder requires the chart's token"
        processes["embedder"] = Process("embedder", embedder["args"][1:], embedder_env, work / "embedder.log")
        processes["embedder"].start()

        gateway = _container(cluster, "semantik-gateway")
        gateway_port = free_port()
        gateway_env = _pod_env(cluster, NAMESPACE, gateway)
        assert gateway_env["SEMANTIK_REQUIRE_AUTH"] == "true" and gateway_env["SEMANTIK_MODE"] == "service"
        for name in ("SEMANTIK_QDRANT_URL", "SEMANTIK_QDRANT_API_KEY"):
            gateway_env.pop(name)
        # The charted Redis's URL, with the password the chart generated; the test's Redis has its own.
        assert re.fullmatch(r"redis://:[A-Za-z0-9]{40}@semantik-redis:6379/0", gateway_env["SEMANTIK_REDIS_URL"])
        assert gateway_env["SEMANTIK_EMBEDDER_TOKEN"] == embedder_env["SEMANTIK_EMBEDDER_TOKEN"]
        gateway_env.update(
            {
                "SEMANTIK_DATABASE_URL": charted_database,
                "SEMANTIK_REDIS_URL": redis_url,
                "SEMANTIK_EMBEDDER_URL": f"http://127.0.0.1:{embedder_port}",
                "SEMANTIK_HOST": "127.0.0.1",
                "SEMANTIK_PORT": str(gateway_port),
                "SEMANTIK_DATA_DIR": str(work / "data"),
                "HOME": str(work),
                # Cluster mode, with only the chart's Role for the gateway's ServiceAccount.
                "KUBECONFIG": str(
                    _service_account_kubeconfig(cluster, work / "gateway-kubeconfig.yaml", "semantik-gateway")
                ),
            }
        )
        api_key = cluster.get("secret", "semantik-api-key", "-n", NAMESPACE)["data"]["api-key"]
        key_file = work / "api-key"
        key_file.write_text(base64.b64decode(api_key).decode())
        # The gateway pod's init container: the chart's script, mounted where its args expect it.
        init = _container(cluster, "semantik-gateway", init=True)
        script = work / "ensure-api-key.py"
        script.write_text(cluster.get("configmap", "semantik-gateway-scripts", "-n", NAMESPACE)["data"][script.name])
        assert init["args"][:2] == ["python", f"/opt/semantik/{script.name}"]
        for attempt in ("stored", "already stored"):
            ensured = subprocess.run(
                [sys.executable, str(script), str(key_file)],
                env={**cluster.env, **gateway_env},
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert ensured.returncode == 0 and attempt in ensured.stdout, ensured.stderr
        wait_until_ready(f"http://127.0.0.1:{embedder_port}/readyz", processes["embedder"], timeout=180)
        processes["gateway"] = Process("gateway", gateway["args"][1:], gateway_env, work / "gateway.log")
        processes["gateway"].start()
        wait_until_ready(f"http://127.0.0.1:{gateway_port}/readyz", processes["gateway"])

        operator = _container(cluster, "semantik-operator")
        metrics_port, health_port = free_port(), free_port()
        operator_env = {
            **_pod_env(cluster, NAMESPACE, operator),
            "SEMANTIK_OPERATOR_GATEWAY_URL": f"http://127.0.0.1:{gateway_port}",
            "SEMANTIK_OPERATOR_METRICS_PORT": str(metrics_port),
            # No cluster DNS here: every embedder Service the operator names is the one host embedder.
            "SEMANTIK_OPERATOR_EMBEDDER_URL_TEMPLATE": f"http://127.0.0.1:{embedder_port}",
            "KUBECONFIG": str(_service_account_kubeconfig(cluster, work / "operator-kubeconfig.yaml")),
            "HOME": str(work),
        }
        args = [re.sub(r"0\.0\.0\.0:8081", f"127.0.0.1:{health_port}", arg) for arg in operator["args"]]
        assert args[0] == "kopf" and f"--namespace={NAMESPACE}" in args
        processes["operator"] = Process("operator", args[1:], operator_env, work / "operator.log", module="kopf")
        processes["operator"].start()
        wait_until_ready(f"http://127.0.0.1:{health_port}/healthz", processes["operator"])
        yield {
            "gateway_url": f"http://127.0.0.1:{gateway_port}",
            "embedder_url": f"http://127.0.0.1:{embedder_port}",
            "embedder_token": embedder_env["SEMANTIK_EMBEDDER_TOKEN"],
            "operator_metrics_url": f"http://127.0.0.1:{metrics_port}",
            "api_key": key_file.read_text(),
            "key_file": key_file,
            "processes": processes,
        }
    finally:
        for process in processes.values():
            process.stop()


def _get(cluster: Cluster, kind: str, name: str) -> dict[str, Any] | None:
    result = cluster.kubectl("-n", NAMESPACE, "get", kind, name, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def test_the_operator_reconciles_with_the_charts_service_account_alone(
    cluster: Cluster, charted_stack: dict[str, Any]
) -> None:
    operator: Process = charted_stack["processes"]["operator"]
    # A source on a claim (the operator reads it) and a Collection with every child kind.
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "handbook-docs", "namespace": NAMESPACE},
            "spec": {"accessModes": ["ReadOnlyMany"], "resources": {"requests": {"storage": "1Gi"}}},
        }
    )
    collection = yaml.safe_load((CHART.parents[1] / "examples" / "collection.yaml").read_text())
    collection["metadata"]["namespace"] = NAMESPACE
    cluster.apply(collection)
    name = collection["metadata"]["name"]

    deployment = embedder_name(MINILM, Quantization.FLOAT16)
    wait("the embedder Deployment", lambda: _get(cluster, "deployment", deployment), timeout=180)
    assert _get(cluster, "service", deployment) is not None
    index_job = wait(
        "status.lastIndexJob",
        lambda: ((_get(cluster, "collection", name) or {}).get("status") or {}).get("lastIndexJob"),
    )
    job = wait(
        "the IndexJob's Job", lambda: ((_get(cluster, "indexjob", index_job) or {}).get("status") or {}).get("jobName")
    )
    # The worker pods get the Redis URL and the embedder token by reference to the chart's Secrets, never as values.
    pod = (_get(cluster, "job", job) or {})["spec"]["template"]
    assert pod["metadata"]["labels"]["semantik.io/index-worker"] == "true"
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in pod["spec"]["containers"][0]["env"] if "valueFrom" in e}
    assert refs["SEMANTIK_REDIS_URL"] == {"name": "semantik-redis", "key": "redis-url"}
    assert refs["SEMANTIK_EMBEDDER_TOKEN"] == {"name": "semantik-embedder-token", "key": "token"}
    assert "redis://" not in json.dumps(pod)
    embedder_pod = (_get(cluster, "deployment", deployment) or {})["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "SEMANTIK_EMBEDDER_TOKEN", "valueFrom": {"secretKeyRef": refs["SEMANTIK_EMBEDDER_TOKEN"]}} in (
        embedder_pod["env"]
    )
    # The charted embedder answers only with the token; its health stays open for the kubelet.
    embedder_url = charted_stack["embedder_url"]
    assert httpx.post(f"{embedder_url}/embed", json={"texts": ["x"]}, timeout=30).status_code == 401
    with_token = {"Authorization": f"Bearer {charted_stack['embedder_token']}"}
    assert httpx.post(f"{embedder_url}/embed", json={"texts": ["x"]}, headers=with_token, timeout=60).status_code == 200
    assert httpx.get(f"{embedder_url}/healthz", timeout=10).status_code == 200
    wait(
        "conditions in status",
        lambda: {
            c["type"] for c in ((_get(cluster, "collection", name) or {}).get("status") or {}).get("conditions", [])
        }
        >= {"EmbedderReady", "StoreReady", "Ready"},
    )
    events = cluster.kubectl("-n", NAMESPACE, "get", "events", "--field-selector", f"involvedObject.name={name}").stdout
    assert "Created" in events

    # Search the index the operator made, by the Collection's name (the charted gateway runs in cluster mode,
    # as the chart's gateway ServiceAccount), with the chart's first API key; then the helm test script.
    gateway = charted_stack["gateway_url"]
    auth = {"Authorization": f"Bearer {charted_stack['api_key']}"}
    assert httpx.post(f"{gateway}/api/v1/collections/{name}/search", json={"query": "keys"}).status_code == 401
    searched = httpx.post(
        f"{gateway}/api/v1/collections/{name}/search", json={"query": "keys"}, headers=auth, timeout=120
    )
    assert searched.status_code == 200 and searched.json()["hits"] == [], searched.text
    listed = httpx.get(f"{gateway}/api/v1/collections", headers=auth, timeout=30).json()["items"]
    assert name in [item["name"] for item in listed], listed

    cluster.kubectl("-n", NAMESPACE, "delete", "collection", name, "--timeout=120s")
    token = _pod_env(cluster, NAMESPACE, _container(cluster, "semantik-operator"))["SEMANTIK_OPERATOR_INTERNAL_TOKEN"]
    dropped = httpx.get(
        f"{gateway}/internal/v1/collections/{store_name(NAMESPACE, name)}", headers={"Authorization": f"Bearer {token}"}
    )
    assert dropped.status_code == 404  # the finalizer dropped it through the internal API

    log = operator.log_path.read_text(errors="replace")
    # Not after a comma: a log line's milliseconds (",403]") are no refusal.
    assert not re.search(r"(?<!,)\b403\b|Forbidden", log), "\n".join(
        line for line in log.splitlines() if "403" in line or "Forbidden" in line
    )


def test_the_helm_test_script_passes_against_the_charted_gateway(
    cluster: Cluster, charted_stack: dict[str, Any], tmp_path: Path
) -> None:
    rendered = helm(cluster, "get", "hooks", RELEASE, "-n", NAMESPACE).stdout
    hooks = {d["kind"]: d for d in yaml.safe_load_all(rendered) if d}
    script = tmp_path / "helm-test.py"
    script.write_text(hooks["ConfigMap"]["data"]["helm-test.py"])
    pod = hooks["Pod"]["spec"]["containers"][0]
    assert pod["args"] == ["python", "/opt/semantik/helm-test.py"]
    env = {item["name"]: item["value"] for item in pod["env"]}
    assert env["SEMANTIK_TEST_URL"] == "http://semantik-gateway:8080"
    env.update(
        {"SEMANTIK_TEST_URL": charted_stack["gateway_url"], "SEMANTIK_TEST_KEY_FILE": str(charted_stack["key_file"])}
    )
    passed = subprocess.run(
        [sys.executable, str(script)], env={**cluster.env, **env}, capture_output=True, text=True, timeout=120
    )
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert passed.stdout.count("ok  ") == 3
    # And it fails when the key is wrong.
    wrong = tmp_path / "wrong-key"
    wrong.write_text("sk_" + "x" * 40)
    env["SEMANTIK_TEST_KEY_FILE"] = str(wrong)
    failed = subprocess.run(
        [sys.executable, str(script)], env={**cluster.env, **env}, capture_output=True, text=True, timeout=120
    )
    assert failed.returncode == 1 and "FAIL the first API key is accepted" in failed.stdout


def test_dashboards_query_what_the_running_services_export(charted_stack: dict[str, Any]) -> None:
    exported: set[str] = set()
    for url in (charted_stack["gateway_url"], charted_stack["embedder_url"], charted_stack["operator_metrics_url"]):
        exported |= exported_names(httpx.get(f"{url}/metrics", timeout=10).text)
    for path in DASHBOARDS:
        for title, expr in panel_exprs(json.loads(path.read_text())):
            missing = promql_metric_names(expr) - exported
            assert not missing, f"{path.name} panel {title!r}: {sorted(missing)}"
