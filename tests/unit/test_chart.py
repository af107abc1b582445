"""The Helm chart without a cluster: `helm lint --strict` and `helm template` of every ci/*-values.yaml,
each rendered object validated against Kubernetes 1.36's OpenAPI schemas (kubernetes-validate, strict),
the pod security policy on every workload, the CRD copies and the RBAC list, the values schema, and
which pods a changed value rolls."""

from __future__ import annotations

import base64
import json
import os
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from semantik.core.settings import Settings
from semantik.embedder.settings import EmbedderSettings
from semantik_operator.rbac import DISCOVERY_RULES, RULES
from semantik_operator.settings import OperatorSettings
from tests.support.chart import (
    CHART,
    CI_VALUES,
    ROOT,
    containers,
    env_of,
    find,
    helm,
    pod_spec,
    schema_refusal,
    template,
    workloads,
)

KUBERNETES_VERSION = "1.36.0"  # the schemas kubernetes-validate has for hack/controlplane's v1.36.x
# Kinds of other projects' CRDs, which no Kubernetes schema knows; tests below check their shape.
NOT_IN_KUBERNETES = {"ServiceMonitor"}
CI_IDS = [path.name for path in CI_VALUES]


@pytest.fixture(scope="module", params=CI_VALUES, ids=CI_IDS)
def rendered(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return template(request.param)


def test_every_ci_values_file_is_there() -> None:
    assert CI_IDS == [
        "defaults-values.yaml",
        "dev-values.yaml",
        "everything-values.yaml",
        "external-databases-values.yaml",
        "gpu-embedders-values.yaml",
        "node-values.yaml",
    ]


@pytest.mark.parametrize("values", CI_VALUES, ids=CI_IDS)
def test_helm_lint_strict(values: Path) -> None:
    result = helm("lint", "--strict", str(CHART), "-f", str(values))
    assert "0 chart(s) failed" in result.stdout


def test_every_object_validates_against_the_kubernetes_schemas(rendered: list[dict[str, Any]]) -> None:
    unknown = set()
    for obj in rendered:
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            unknown.add(obj["kind"])
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{obj['kind']} {obj['metadata']['name']}: {exc.message} at {list(exc.absolute_path)}")
    assert unknown <= NOT_IN_KUBERNETES


def test_the_validator_rejects_what_kubernetes_would() -> None:
    deployment = find(template(), "Deployment", "-gateway")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGett"] = {"port": 1}
    with pytest.raises(kubernetes_validate.ValidationError, match="httpGett"):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)
    deployment = find(template(), "Deployment", "-gateway")
    deployment["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_every_object_carries_the_recommended_labels(rendered: list[dict[str, Any]]) -> None:
    for obj in rendered:
        labels = obj["metadata"].get("labels", {})
        for key in ("name", "instance", "component", "version", "managed-by"):
            assert f"app.kubernetes.io/{key}" in labels, (obj["kind"], obj["metadata"]["name"], key)
        if obj["kind"] in ("Deployment", "StatefulSet"):
            pod_labels = obj["spec"]["template"]["metadata"]["labels"]
            assert obj["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


def test_every_pod_runs_restricted(rendered: list[dict[str, Any]]) -> None:
    """Non-root, read-only root filesystem, no privilege escalation, no capabilities, the runtime's
    seccomp profile, resource requests; probes on every long-running container."""
    for workload in workloads(rendered):
        where = f"{workload['kind']} {workload['metadata']['name']}"
        spec = pod_spec(workload)
        pod_security = spec.get("securityContext", {})
        assert pod_security.get("runAsNonRoot") is True, where
        assert pod_security.get("runAsUser", 0) > 0, where
        assert pod_security.get("seccompProfile") == {"type": "RuntimeDefault"}, where
        long_running = workload["kind"] in ("Deployment", "StatefulSet")
        for container in containers(spec):
            at = f"{where} container {container['name']}"
            security = container.get("securityContext", {})
            assert security.get("runAsNonRoot") is True, at
            assert security.get("readOnlyRootFilesystem") is True, at
            assert security.get("allowPrivilegeEscalation") is False, at
            assert security.get("capabilities") == {"drop": ["ALL"]}, at
            assert security.get("seccompProfile") == {"type": "RuntimeDefault"}, at
            assert {"cpu", "memory"} <= set(container.get("resources", {}).get("requests", {})), at
            assert "memory" in container["resources"].get("limits", {}), at
            if long_running and container in spec["containers"]:
                assert "livenessProbe" in container and "readinessProbe" in container, at
        if long_running:
            assert "checksum/config" in workload["spec"]["template"]["metadata"].get("annotations", {}), where


def test_the_crds_are_byte_identical_copies() -> None:
    canonical = sorted(path.name for path in (ROOT / "crds").glob("*.yaml"))
    assert sorted(path.name for path in (CHART / "crds").glob("*.yaml")) == canonical
    for name in canonical:
        assert (CHART / "crds" / name).read_bytes() == (ROOT / "crds" / name).read_bytes(), (
            f"charts/semantik/crds/{name} differs from crds/{name}: run hack/chart-sync.sh"
        )


def test_the_operators_role_is_the_rbac_list_namespaced_unless_it_watches_every_namespace() -> None:
    objects = template()
    account = find(objects, "ServiceAccount", "-operator")
    subjects = [{"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": "search"}]
    role = find(objects, "Role", "-operator")
    assert role["rules"] == RULES, "charts/semantik/files/operator-rbac.yaml is stale: run hack/chart-sync.sh"
    binding = find(objects, "RoleBinding", "-operator")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "semantik-operator"}
    assert binding["subjects"] == subjects
    # Cluster-wide: only reading CRDs and namespace names, which kopf observes even in one namespace.
    assert [o["metadata"]["name"] for o in objects if o["kind"] == "ClusterRole"] == ["semantik-operator-discovery"]
    discovery = find(objects, "ClusterRole", "-operator-discovery")
    assert discovery["rules"] == DISCOVERY_RULES, "operator-discovery-rbac.yaml is stale: run hack/chart-sync.sh"
    assert all(set(rule["verbs"]) <= {"get", "list", "watch"} for rule in DISCOVERY_RULES)
    assert find(objects, "ClusterRoleBinding", "-operator-discovery")["subjects"] == subjects
    assert "--namespace=search" in pod_spec(find(objects, "Deployment", "-operator"))["containers"][0]["args"]

    everywhere = template(set_values=["operator.watchAllNamespaces=true"])
    # The gateway's own Role (cluster mode, tests/unit/test_chart_gateway_rbac.py) stays in the release's namespace.
    assert not [o for o in everywhere if o["kind"] in ("Role", "RoleBinding") and "-operator" in o["metadata"]["name"]]
    assert find(everywhere, "ClusterRole", "semantik-operator")["rules"] == RULES
    cluster_binding = find(everywhere, "ClusterRoleBinding", "semantik-operator")
    assert cluster_binding["roleRef"]["kind"] == "ClusterRole" and cluster_binding["subjects"] == subjects
    args = pod_spec(find(everywhere, "Deployment", "-operator"))["containers"][0]["args"]
    assert "--all-namespaces" in args and not any(a.startswith("--namespace") for a in args)
    operator = find(objects, "Deployment", "-operator")
    assert pod_spec(operator)["serviceAccountName"] == account["metadata"]["name"]
    # Nothing else in the chart runs with API credentials but the gateway in cluster mode (its own Role, tested
    # in tests/unit/test_chart_gateway_rbac.py).
    gateway = find(objects, "Deployment", "-gateway")["metadata"]["name"]
    for workload in workloads(objects):
        if workload["metadata"]["name"] not in (operator["metadata"]["name"], gateway):
            assert pod_spec(workload).get("automountServiceAccountToken") is False, workload["metadata"]["name"]


# --- values and their schema ---------------------------------------------------------------------


def _schema_paths(schema: dict[str, Any], root: dict[str, Any], prefix: str = "") -> set[str]:
    if "$ref" in schema:
        schema = root["definitions"][schema["$ref"].rsplit("/", 1)[1]]
    paths: set[str] = set()
    for key, sub in schema.get("properties", {}).items():
        paths.add(prefix + key)
        paths |= _schema_paths(sub, root, f"{prefix}{key}.")
    return paths


USER_MAPS = {
    "nodeSelector",
    "gpuNodeSelector",
    "affinity",
    "podAnnotations",
    "annotations",
    "labels",
    "requests",
    "limits",
}


def _value_paths(values: Any, prefix: str = "") -> set[str]:
    if not isinstance(values, dict):
        return set()
    paths: set[str] = set()
    for key, sub in values.items():
        paths.add(prefix + key)
        # Maps of the user's own keys (labels, resources, selectors) are typed by the schema as maps.
        if key not in USER_MAPS:
            paths |= _value_paths(sub, f"{prefix}{key}.")
    return paths


def test_the_schema_covers_every_value_and_rejects_unknown_keys() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    known = _schema_paths(schema, schema)
    for path in (CHART / "values.yaml", *CI_VALUES):
        missing = _value_paths(yaml.safe_load(path.read_text()) or {}) - known
        assert not missing, f"{path.name}: not in values.schema.json: {sorted(missing)}"

    def closed(node: dict[str, Any], where: str) -> None:
        if "$ref" in node:
            return
        if node.get("type") == "object" and "properties" in node:
            assert node.get("additionalProperties") is False, where
            for key, sub in node["properties"].items():
                closed(sub, f"{where}.{key}")

    closed(schema, "values")


def test_values_yaml_documents_every_key() -> None:
    """Each key has a comment line above it, but the entries of a documented data value (a resources
    map, a node selector, the items of a list)."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    undocumented = []
    for number, line in enumerate(lines):
        match = re.match(r"^(\s*)([A-Za-z][\w./-]*):", line)
        if not match or lines[number - 1].lstrip().startswith("#"):
            continue
        indent = len(match.group(1))
        parent = next(
            (lines[n] for n in range(number - 1, -1, -1) if len(lines[n]) - len(lines[n].lstrip()) < indent), ""
        )
        if indent and (parent.lstrip().startswith("- ") or parent.strip() in ("resources:", "gpuNodeSelector:")):
            continue
        undocumented.append(line.strip())
    assert not undocumented, undocumented


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"gateway": {"replicass": 3}}, "at '/gateway': additional properties 'replicass' not allowed"),
        ({"gateway": {"replicas": -1}}, "at '/gateway/replicas': minimum: got -1, want 0"),
        ({"images": {"service": {"tag": 1.2}}}, "at '/images/service/tag': got number, want string"),
        ({"embedder": {"dtype": "fp8"}}, "at '/embedder/dtype'"),
        ({"embedder": {"backend": "tensorrt"}}, "at '/embedder/backend'"),
        ({"postgresql": {"external": {"url": "mysql://x"}}}, "at '/postgresql/external/url'"),
    ],
    ids=["typo", "negative-replicas", "tag-type", "dtype", "backend", "database-url"],
)
def test_a_wrong_value_is_rejected_with_the_schemas_message(
    values: dict[str, Any], message: str, tmp_path: Path
) -> None:
    refused = schema_refusal(values, tmp_path)
    assert message in refused, refused


def test_the_onnx_backend_reaches_the_query_embedder_and_is_refused_on_a_gpu() -> None:
    objects = template(set_values=["embedder.backend=onnx"])
    embedder = pod_spec(find(objects, "Deployment", "-embedder"))["containers"][0]
    assert env_of(embedder, objects)["SEMANTIK_EMBEDDER_BACKEND"] == "onnx"
    result = helm(
        "template",
        "semantik",
        str(CHART),
        "--set",
        "embedder.backend=onnx",
        "--set",
        "embedder.gpu.count=1",
        check=False,
    )
    assert result.returncode != 0 and "embedder.backend onnx runs on the CPU" in result.stderr


def test_external_stores_need_their_urls() -> None:
    result = helm("template", "semantik", str(CHART), "--set", "redis.enabled=false", check=False)
    assert result.returncode != 0 and "redis.external.url is required" in result.stderr
    result = helm("template", "semantik", str(CHART), "--set", "postgresql.enabled=false", check=False)
    assert "postgresql.external.url or postgresql.external.existingSecret is required" in result.stderr


# --- what the pods are given ---------------------------------------------------------------------


RELEASE_SPECIFIC_OPERATOR_SETTINGS = {
    "gateway_url",
    "internal_token",
    "internal_token_secret",
    "service_image",
    "image_pull_policy",
    "redis_secret",
    "embedder_token_secret",
    "model_cache_claim",
    "gpu_node_selector",
    "sources_root",
    "job_backoff_limit",
    "job_ttl_seconds",
    "metrics_port",
}


def _settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch, settings_class: type[Any]) -> Any:
    for name in list(os.environ):
        if name.startswith("SEMANTIK_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return settings_class()


@pytest.mark.parametrize("values", CI_VALUES, ids=CI_IDS)
def test_the_services_accept_the_environment_the_chart_gives_them(
    values: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    objects = template(values)
    gateway = pod_spec(find(objects, "Deployment", "-gateway"))["containers"][0]
    assert gateway["args"] == ["semantik", "serve", "--mode", "service"]
    gateway_env = env_of(gateway, objects)
    assert {n for n in gateway_env if n.startswith("SEMANTIK_")} <= {
        f"SEMANTIK_{n.upper()}" for n in Settings.model_fields
    }
    settings = _settings_from(gateway_env, monkeypatch, Settings)
    assert settings.mode == "service" and settings.auth_required and settings.host == "0.0.0.0"
    assert settings.database_url == "secret" and settings.internal_token.get_secret_value() == "secret"
    embedder_deployment = find(objects, "Deployment", "-embedder")
    embedder = pod_spec(embedder_deployment)["containers"][0]
    assert settings.embedder_url == f"http://{find(objects, 'Service', '-embedder')['metadata']['name']}:8000"
    embedder_env = env_of(embedder, objects)
    assert {n for n in embedder_env if n.startswith("SEMANTIK_")} <= {
        f"SEMANTIK_EMBEDDER_{n.upper()}" for n in EmbedderSettings.model_fields
    }
    embedder_settings = _settings_from(embedder_env, monkeypatch, EmbedderSettings)
    assert embedder_settings.model_name == settings.model_name
    assert embedder_settings.host == "0.0.0.0" and embedder_settings.port == 8000
    assert embedder_settings.token is not None and settings.embedder_token is not None

    operator = pod_spec(find(objects, "Deployment", "-operator"))["containers"][0]
    assert operator["args"][:2] == ["kopf", "run"] and operator["args"][-2:] == ["-m", "semantik_operator.main"]
    operator_env = env_of(operator, objects)
    operator_settings = _settings_from(operator_env, monkeypatch, OperatorSettings)
    # No misspelt variable (settings ignore unknown ones), and every setting that names this release's
    # objects is set rather than left to a default that names another's.
    assert {name for name in operator_env if name.startswith("SEMANTIK_OPERATOR_")} <= {
        f"SEMANTIK_OPERATOR_{name.upper()}" for name in OperatorSettings.model_fields
    }
    assert {
        name.removeprefix("SEMANTIK_OPERATOR_").lower() for name in operator_env
    } >= RELEASE_SPECIFIC_OPERATOR_SETTINGS
    assert operator_settings.gateway_url == f"http://{find(objects, 'Service', '-gateway')['metadata']['name']}:8080"
    internal = next(e for e in operator["env"] if e["name"] == "SEMANTIK_OPERATOR_INTERNAL_TOKEN")
    assert internal["valueFrom"]["secretKeyRef"] == {"name": operator_settings.internal_token_secret, "key": "token"}
    gateway_refs = {
        e["name"]: e["valueFrom"]["secretKeyRef"] for e in gateway["env"] if "secretKeyRef" in e.get("valueFrom", {})
    }
    # Cluster mode's namespace comes from the downward API, not a Secret.
    assert settings.cluster_mode and settings.namespace is not None
    assert gateway_refs["SEMANTIK_INTERNAL_TOKEN"] == internal["valueFrom"]["secretKeyRef"]
    # The Redis URL (with its password) and the embedder token reach every process only from Secrets, and
    # the operator hands its workers and embedders the same Secrets the gateway reads.
    assert gateway_refs["SEMANTIK_REDIS_URL"] == {"name": operator_settings.redis_secret, "key": "redis-url"}
    token_ref = {"name": operator_settings.embedder_token_secret, "key": "token"}
    assert gateway_refs["SEMANTIK_EMBEDDER_TOKEN"] == token_ref
    assert next(e for e in embedder["env"] if e["name"] == "SEMANTIK_EMBEDDER_TOKEN")["valueFrom"]["secretKeyRef"] == (
        token_ref
    )
    secrets = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Secret"}
    if operator_settings.redis_secret in secrets:
        assert "redis-url" in secrets[operator_settings.redis_secret]["data"]
    for config_map in (o for o in objects if o["kind"] == "ConfigMap"):
        assert not any("redis://" in str(value) for value in (config_map.get("data") or {}).values())


def test_checksums_roll_only_the_pods_whose_config_changed() -> None:
    def checksums(*set_values: str) -> dict[str, str]:
        return {
            o["metadata"]["name"]: o["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
            for o in template(set_values=set_values)
            if o["kind"] in ("Deployment", "StatefulSet")
        }

    before = checksums()
    assert before == checksums(), "a render must not change a checksum by itself (generated secrets)"

    def rolled(*set_values: str) -> set[str]:
        after = checksums(*set_values)
        return {name.removeprefix("semantik-") for name in before if before[name] != after[name]}

    assert rolled("embedder.logLevel=DEBUG") == {"embedder"}
    assert rolled("gateway.logLevel=DEBUG") == {"gateway"}
    assert rolled("operator.jobTtlSeconds=60") == {"operator"}
    assert rolled("auth.internalToken.existingSecret=mine") == {"gateway", "operator"}
    assert rolled("auth.apiKey.existingSecret=mine") == {"gateway"}
    assert rolled("auth.embedderToken.existingSecret=mine") == {"gateway", "embedder", "operator"}
    assert rolled("images.service.tag=0.2.0") == {"operator"}  # the image it gives worker pods
    assert rolled("gateway.replicas=5") == set()


def test_generated_secrets_are_kept_with_lookup_and_through_an_uninstall() -> None:
    text = (CHART / "templates" / "secrets.yaml").read_text()
    for key in ("token", "api-key", "password"):
        assert f'"key" "{key}" "generated"' in text
    generated = {
        "semantik-internal",
        "semantik-api-key",
        "semantik-postgresql",
        "semantik-qdrant",
        "semantik-redis",
        "semantik-embedder-token",
    }
    secrets = {o["metadata"]["name"]: o for o in template() if o["kind"] == "Secret"}
    assert generated <= secrets.keys()
    for name in generated:
        assert secrets[name]["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep", name


def test_service_monitors_scrape_ports_that_exist() -> None:
    objects = template(CHART / "ci" / "everything-values.yaml")
    monitors = [o for o in objects if o["kind"] == "ServiceMonitor"]
    assert {m["metadata"]["name"].rsplit("-", 1)[1] for m in monitors} == {"gateway", "embedder", "operator"}
    for monitor in monitors:
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        selector = monitor["spec"]["selector"]["matchLabels"]
        services = [
            o for o in objects if o["kind"] == "Service" and selector.items() <= o["metadata"]["labels"].items()
        ]
        assert len(services) == 1, monitor["metadata"]["name"]
        ports = {port["name"] for port in services[0]["spec"]["ports"]}
        for endpoint in monitor["spec"]["endpoints"]:
            assert endpoint["port"] in ports and endpoint["path"] == "/metrics"
    assert not [o for o in template() if o["kind"] == "ServiceMonitor"]  # off by default


def test_gpu_values_put_the_query_embedder_on_gpu_nodes() -> None:
    objects = template(CHART / "ci" / "gpu-embedders-values.yaml")
    spec = pod_spec(find(objects, "Deployment", "-embedder"))
    container = spec["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert spec["nodeSelector"]["nvidia.com/gpu.present"] == "true"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    env = env_of(container, objects)
    assert env["SEMANTIK_EMBEDDER_DEVICE"] == "cuda"
    assert env["SEMANTIK_EMBEDDER_MODEL_PATH"] == "/models/models--Qwen--Qwen3-Embedding-0.6B"
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["models"]["persistentVolumeClaim"]["readOnly"] is True
    operator = pod_spec(find(objects, "Deployment", "-operator"))["containers"][0]
    selector = json.loads(env_of(operator, objects)["SEMANTIK_OPERATOR_GPU_NODE_SELECTOR"])
    assert selector == {"nvidia.com/gpu.present": "true", "node.kubernetes.io/instance-type": "g5.xlarge"}


def test_external_databases_run_no_stores_and_read_the_given_secrets() -> None:
    objects = template(CHART / "ci" / "external-databases-values.yaml")
    assert not [o for o in objects if o["kind"] == "StatefulSet"]
    gateway = pod_spec(find(objects, "Deployment", "-gateway"))["containers"][0]
    refs = {
        e["name"]: e["valueFrom"]["secretKeyRef"] for e in gateway["env"] if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert refs["SEMANTIK_DATABASE_URL"] == {"name": "semantik-database", "key": "url"}
    assert refs["SEMANTIK_INTERNAL_TOKEN"] == {"name": "semantik-internal-token", "key": "token"}
    env = env_of(gateway, objects)
    assert env["SEMANTIK_QDRANT_URL"] == "https://qdrant.example.com:6333"
    assert refs["SEMANTIK_REDIS_URL"] == {"name": "semantik-redis-external", "key": "redis-url"}
    external_redis = find(objects, "Secret", "-redis-external")
    assert (
        base64.b64decode(external_redis["data"]["redis-url"]).decode()
        == "redis://:a-password-of-the-external-redis@redis.example.com:6379/2"
    )
    secret_names = {o["metadata"]["name"] for o in objects if o["kind"] == "Secret"}
    assert "semantik-internal-token" not in secret_names and "semantik-first-key" not in secret_names
    assert not [o for o in objects if o["kind"] == "PersistentVolumeClaim"]  # models.existingClaim


def test_notes_say_what_to_run_next_and_that_crds_stay() -> None:
    notes = (CHART / "templates" / "NOTES.txt").read_text()
    for words in ("get secret", "port-forward", "apply -f examples/collection.yaml", "helm test", "except the CRDs"):
        assert words in notes


def test_redis_requires_its_generated_password_which_no_argument_shows() -> None:
    objects = template()
    redis = pod_spec(find(objects, "StatefulSet", "-redis"))["containers"][0]
    command = " ".join([*redis.get("command", []), *redis["args"]])
    assert "--protected-mode yes" in command and "requirepass" in command
    assert "--protected-mode no" not in command
    auth = next(e for e in redis["env"] if e["name"] == "REDISCLI_AUTH")
    assert auth["valueFrom"]["secretKeyRef"] == {"name": "semantik-redis", "key": "password"}
    password = base64.b64decode(find(objects, "Secret", "-redis")["data"]["password"]).decode()
    assert len(password) == 40 and password not in json.dumps(find(objects, "StatefulSet", "-redis"))
    url = base64.b64decode(find(objects, "Secret", "-redis")["data"]["redis-url"]).decode()
    assert url == f"redis://:{password}@semantik-redis:6379/0"
    # redis-cli exits 0 on NOAUTH: a probe passes only on PONG.
    for probe in ("readinessProbe", "livenessProbe"):
        assert "= PONG" in " ".join(redis[probe]["exec"]["command"])
