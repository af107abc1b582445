"""IndexJobs a Collection asks for, and the batch/v1 Job of arq burst workers that carries one out."""

from __future__ import annotations

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
    volumes, mounts = source_volumes(sources, settings.sources_root)
    parallelism = spec.parallelism or collection.indexing.parallelism
    env = [
        {"name": "SEMANTIK_REDIS_URL", "value": settings.redis_url},
        {"name": "SEMANTIK_GATEWAY_URL", "value": settings.gateway_url},
        {
            "name": "SEMANTIK_INTERNAL_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": settings.internal_token_secret, "key": "token"}},
        },
        {"name": "SEMANTIK_EMBEDDER_URL", "value": embedder_url},
        {"name": "SEMANTIK_MODEL_NAME", "value": collection.embedding.model},
        {"name": "SEMANTIK_MODEL_PATH", "value": model_directory(collection.embedding.model)},
        {"name": "SEMANTIK_WORKER_BATCH_FILES", "value": str(spec.batch_size or collection.indexing.batch_size)},
        {"name": "HF_HUB_OFFLINE", "value": "1"},
        {"name": "HOME", "value": "/tmp"},
    ]
    container = {
        "name": "worker",
        "image": settings.service_image,
        "imagePullPolicy": settings.image_pull_policy,
        "args": ["semantik", "worker", "--queue", queue, "--burst"],
        "env": env,
        "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}},
        "securityContext": RESTRICTED_CONTAINER_SECURITY,
        "volumeMounts": [
            *mounts,
            {"name": "models", "mountPath": "/models", "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    name = job_name(metadata["name"])
    pod_labels = labels("worker", metadata["name"], {"semantik.io/index-job": metadata["name"]})
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
