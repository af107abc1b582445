"""IndexJobs a Collection asks for, and the batch/v1 Job of arq burst workers that carries one out."""

from __future__ import annotations

import json
import posixpath
from collections.abc import Mapping, Sequence
from typing import Any

from semantik_operator.builders.common import (
    API_VERSION,
    POD_SECURITY,
    RESTRICTED_CONTAINER_SECURITY,
    child_name,
    labels,
    owner_reference,
    short_hash,
)
from semantik_operator.builders.embedder import model_directory
from semantik_operator.settings import OperatorSettings
from semantik_operator.spec import CollectionSpec, IndexJobSpec, IndexMode, Source


def index_spec_hash(spec: CollectionSpec) -> str:
    """What an index is built with: a change of any of it needs a reindex into a new store collection."""
    e, c = spec.embedding, spec.chunking
    return short_hash(e.model, e.quantization.value, c.strategy, str(c.chunk_size), str(c.chunk_overlap))


def index_job_name(collection: str, mode: IndexMode, token: str) -> str:
    return child_name(collection[:40], mode.value, suffix=token)


def build_index_job(collection: Mapping[str, Any], mode: IndexMode, name: str) -> dict[str, Any]:
    metadata = collection["metadata"]
    return {
        "apiVersion": API_VERSION,
        "kind": "IndexJob",
        "metadata": {
            "name": name,
            "namespace": metadata["namespace"],
            "labels": labels("index", metadata["name"], {"semantik.io/collection": metadata["name"]}),
            "ownerReferences": [owner_reference(collection)],
        },
        "spec": {"collectionRef": {"name": metadata["name"]}, "mode": mode.value},
    }


def selected_sources(spec: CollectionSpec, job: IndexJobSpec) -> list[Source]:
    return [s for s in spec.sources if not job.sources or s.name in job.sources]


def source_globs(sources: Sequence[Source]) -> tuple[list[str], list[str]]:
    """Each source is a folder under the workers' sources root, so its globs are prefixed with its name."""
    include = [f"{s.name}/{pattern}" for s in sources for pattern in (s.include or ("**",))]
    exclude = [f"{s.name}/{pattern}" for s in sources for pattern in s.exclude]
    return include, exclude


INDEX_WORKER_LABEL = "semantik.io/index-worker"
"""Set on the pods of Jobs the operator owns; the chart's NetworkPolicies let only these reach Redis."""


def host_path_allowed(path: str, allowed: Sequence[str]) -> bool:
    """Whether `path` is one of `allowed` or lies below one, component by component (`/srv/docs-evil` is
    not below `/srv/docs`). Lexical: the node's symbolic links are out of the operator's sight, so the
    allowed folders should be ones whose contents the cluster's admins control."""
    normal = posixpath.normpath(path)
    if not posixpath.isabs(path) or ".." in path.split("/"):
        return False
    for root in allowed:
        base = posixpath.normpath(root)
        if posixpath.isabs(base) and (normal == base or normal.startswith(base.rstrip("/") + "/")):
            return True
    return False


def refused_host_paths(spec: CollectionSpec, allowed: Sequence[str]) -> list[str]:
    """Why each of the spec's hostPath sources may not be mounted; empty when all of them may."""
    where = ", ".join(allowed) if allowed else "none: the operator refuses every hostPath"
    return [
        f"source {s.name}: hostPath {s.host_path} is not under an allowed host path "
        f"(SEMANTIK_OPERATOR_ALLOWED_HOST_PATHS, chart value operator.allowedHostPaths: {where})"
        for s in spec.sources
        if s.host_path is not None and not host_path_allowed(s.host_path, allowed)
    ]


def active_deadline_seconds(job: IndexJobSpec, collection: CollectionSpec, settings: OperatorSettings) -> int:
    return job.active_deadline_seconds or collection.indexing.active_deadline_seconds or settings.job_deadline_seconds


def source_volumes(sources: Sequence[Source], root: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    for source in sources:
        volume = f"source-{source.name}"[:63]
        mount: dict[str, Any] = {"name": volume, "mountPath": f"{root}/{source.name}", "readOnly": True}
        if source.pvc is not None:
            volumes.append(
                {"name": volume, "persistentVolumeClaim": {"claimName": source.pvc.claim_name, "readOnly": True}}
            )
            if source.pvc.path.strip("/"):
                mount["subPath"] = source.pvc.path.strip("/")
        else:
            assert source.host_path is not None
            volumes.append({"name": volume, "hostPath": {"path": source.host_path, "type": "Directory"}})
        mounts.append(mount)
    return volumes, mounts


def job_name(index_job: str) -> str:
    return child_name(index_job[:52], suffix="workers")


def build_worker_job(
    index_job: Mapping[str, Any],
    collection: CollectionSpec,
    *,
    queue: str,
    embedder_url: str,
    settings: OperatorSettings,
) -> dict[str, Any]:
    metadata = index_job["metadata"]
    spec = IndexJobSpec.model_validate(index_job["spec"])
    sources = selected_sources(collection, spec)
    refused = refused_host_paths(collection, settings.allowed_host_paths)
    if refused:
        raise ValueError("; ".join(refused))  # the handlers refuse first; no Job may mount such a folder
    volumes, mounts = source_volumes(sources, settings.sources_root)
    parallelism = spec.parallelism or collection.indexing.parallelism
    env = [
        # Secrets by reference, so neither the Job's spec nor the operator ever holds them.
        {
            "name": "SEMANTIK_REDIS_URL",
            "valueFrom": {"secretKeyRef": {"name": settings.redis_secret, "key": "redis-url"}},
        },
        {"name": "SEMANTIK_GATEWAY_URL", "value": settings.gateway_url},
        {
            "name": "SEMANTIK_INTERNAL_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": settings.internal_token_secret, "key": "token"}},
        },
        {"name": "SEMANTIK_EMBEDDER_URL", "value": embedder_url},
        {
            "name": "SEMANTIK_EMBEDDER_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": settings.embedder_token_secret, "key": "token"}},
        },
        {"name": "SEMANTIK_MODEL_NAME", "value": collection.embedding.model},
        {"name": "SEMANTIK_MODEL_PATH", "value": model_directory(collection.embedding.model)},
        {"name": "SEMANTIK_WORKER_BATCH_FILES", "value": str(spec.batch_size or collection.indexing.batch_size)},
        # The workers read only what this Job mounts, under the sources root.
        {"name": "SEMANTIK_SOURCE_ROOTS", "value": json.dumps([settings.sources_root])},
        {"name": "HF_HUB_OFFLINE", "value": "1"},
        {"name": "HOME", "value": "/tmp"},
    ]
    container = {
        "name": "worker",
        "image": settings.service_image,
        "imagePullPolicy": settings.image_pull_policy,
        "args": ["semantik", "worker", "--queue", queue, "--burst"],
        "env": env,
        "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": settings.worker_memory_limit}},
        "securityContext": RESTRICTED_CONTAINER_SECURITY,
        "volumeMounts": [
            *mounts,
            {"name": "models", "mountPath": "/models", "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    name = job_name(metadata["name"])
    pod_labels = labels(
        "worker", metadata["name"], {"semantik.io/index-job": metadata["name"], INDEX_WORKER_LABEL: "true"}
    )
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": metadata["namespace"],
            "labels": pod_labels,
            "ownerReferences": [owner_reference(index_job)],
        },
        "spec": {
            # The work-queue pattern: no completions; each burst worker exits 0 once the queue is drained.
            "parallelism": parallelism,
            "backoffLimit": settings.job_backoff_limit,
            # Bounds a run that hangs (a worker stuck on one file): Kubernetes stops its pods and fails the Job.
            "activeDeadlineSeconds": active_deadline_seconds(spec, collection, settings),
            "ttlSecondsAfterFinished": settings.job_ttl_seconds,
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "restartPolicy": "OnFailure",
                    "securityContext": POD_SECURITY,
                    "containers": [container],
                    "volumes": [
                        *volumes,
                        {
                            "name": "models",
                            "persistentVolumeClaim": {"claimName": settings.model_cache_claim, "readOnly": True},
                        },
                        {"name": "tmp", "emptyDir": {}},
                    ],
                },
            },
        },
    }
