"""The embedder Deployment and Service of one (model, quantization), shared by the Collections using it.

Each Collection that uses the pair is an owner (none is the controller), so Kubernetes' garbage
collector removes the Deployment when the last of them is deleted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set
from typing import Any

from semantik_operator.builders.common import (
    POD_SECURITY,
    RESTRICTED_CONTAINER_SECURITY,
    labels,
    owner_reference,
    short_hash,
)
from semantik_operator.settings import OperatorSettings
from semantik_operator.spec import CollectionSpec, Quantization

PORT = 8000
MODEL_MOUNT = "/models"
CPU_REQUESTS = {"cpu": "1", "memory": "2Gi"}
GPU_REQUESTS = {"cpu": "2", "memory": "8Gi"}


def embedder_name(model: str, quantization: Quantization) -> str:
    return f"semantik-embed-{short_hash(model, quantization.value)}"


DEFAULT_URL_TEMPLATE = f"http://{{name}}.{{namespace}}.svc:{PORT}"


def embedder_url(name: str, namespace: str, template: str = DEFAULT_URL_TEMPLATE) -> str:
    return template.format(name=name, namespace=namespace)


def owners_without(owner_references: Sequence[Mapping[str, Any]], uid: str) -> list[dict[str, Any]]:
    """The embedder's owners once one Collection stops using it (after a reindex moved it to another)."""
    return [dict(owner) for owner in owner_references if owner.get("uid") != uid]


def stale_embedders(deployments: Sequence[Mapping[str, Any]], uid: str, keep: Set[str]) -> list[str]:
    """Embedders the Collection `uid` owns but neither searches with nor builds with any more: a change
    taken back, or overtaken by another, before its reindex swapped it in. Each holds a GPU for nothing."""
    stale = []
    for deployment in deployments:
        metadata = deployment["metadata"]
        owned = any(owner.get("uid") == uid for owner in metadata.get("ownerReferences") or [])
        if owned and "semantik.io/embedder" in (metadata.get("labels") or {}) and metadata["name"] not in keep:
            stale.append(str(metadata["name"]))
    return sorted(stale)


def model_directory(model: str) -> str:
    """Where the model sits in the mounted cache: the Hugging Face hub layout's folder name."""
    return f"{MODEL_MOUNT}/models--{model.replace('/', '--')}"


def _selector(name: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "semantik",
        "app.kubernetes.io/component": "embedder",
        "semantik.io/embedder": name,
    }


def build_embedder_deployment(
    spec: CollectionSpec,
    namespace: str,
    owners: Sequence[Mapping[str, Any]],
    settings: OperatorSettings,
) -> dict[str, Any]:
    embedding, placement = spec.embedding, spec.embedder
    name = embedder_name(embedding.model, embedding.quantization)
    gpus = placement.gpu.count
    requests: dict[str, str | int] = {**(GPU_REQUESTS if gpus else CPU_REQUESTS), **placement.resources.requests}
    limits: dict[str, str | int] = dict(placement.resources.limits)
    node_selector = dict(placement.node_selector)
    tolerations = [t.manifest() for t in placement.tolerations]
    if gpus:
        # Quantities as strings, as the API server stores them, so an apply is a no-op the second time.
        limits[placement.gpu.resource_name] = str(gpus)
        requests[placement.gpu.resource_name] = str(gpus)
        node_selector = {**settings.gpu_node_selector, **node_selector}
        gpu_toleration = {"key": placement.gpu.resource_name, "operator": "Exists", "effect": "NoSchedule"}
        if gpu_toleration not in tolerations:
            tolerations.append(gpu_toleration)
    pod_labels = {**labels("embedder", name), **_selector(name)}
    env = [
        {"name": "SEMANTIK_EMBEDDER_MODEL_NAME", "value": embedding.model},
        {"name": "SEMANTIK_EMBEDDER_MODEL_PATH", "value": model_directory(embedding.model)},
        {"name": "SEMANTIK_EMBEDDER_DTYPE", "value": embedding.quantization.value},
        {"name": "SEMANTIK_EMBEDDER_DEVICE", "value": "cuda" if gpus else "cpu"},
        # ONNX exports its graph into the pod's /tmp at start (HOME): the model cache volume is read-only.
        {"name": "SEMANTIK_EMBEDDER_BACKEND", "value": placement.backend.value},
        {"name": "SEMANTIK_EMBEDDER_HOST", "value": "0.0.0.0"},
        # Listening beyond its pod, the embedder requires the token (health and metrics stay open).
        {
            "name": "SEMANTIK_EMBEDDER_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": settings.embedder_token_secret, "key": "token"}},
        },
        {"name": "SEMANTIK_EMBEDDER_PORT", "value": str(PORT)},
        {"name": "HF_HUB_OFFLINE", "value": "1"},
        {"name": "HOME", "value": "/tmp"},
    ]
    container: dict[str, Any] = {
        "name": "embedder",
        "image": settings.service_image,
        "imagePullPolicy": settings.image_pull_policy,
        "args": ["semantik", "embedder"],
        "env": env,
        "ports": [{"name": "http", "containerPort": PORT}],
        "resources": {"requests": requests, **({"limits": limits} if limits else {})},
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 5},
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": "http"},
            "periodSeconds": 10,
            "failureThreshold": 6,
        },
        "startupProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 5, "failureThreshold": 60},
        "securityContext": RESTRICTED_CONTAINER_SECURITY,
        "volumeMounts": [
            {"name": "models", "mountPath": MODEL_MOUNT, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    pod_spec: dict[str, Any] = {
        "securityContext": POD_SECURITY,
        "containers": [container],
        "volumes": [
            {"name": "models", "persistentVolumeClaim": {"claimName": settings.model_cache_claim, "readOnly": True}},
            {"name": "tmp", "emptyDir": {}},
        ],
    }
    if node_selector:
        pod_spec["nodeSelector"] = node_selector
    if tolerations:
        pod_spec["tolerations"] = tolerations
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels("embedder", name, {"semantik.io/embedder": name}),
            "annotations": {"semantik.io/model": embedding.model, "semantik.io/quantization": embedding.quantization},
            "ownerReferences": [owner_reference(owner, controller=False) for owner in owners],
        },
        "spec": {
            "replicas": placement.replicas,
            "selector": {"matchLabels": _selector(name)},
            "template": {"metadata": {"labels": pod_labels}, "spec": pod_spec},
        },
    }


def build_embedder_service(name: str, namespace: str, owners: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels("embedder", name, {"semantik.io/embedder": name}),
            "ownerReferences": [owner_reference(owner, controller=False) for owner in owners],
        },
        "spec": {
            "selector": _selector(name),
            "ports": [{"name": "http", "port": PORT, "targetPort": "http"}],
        },
    }
