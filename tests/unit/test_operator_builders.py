"""Builders turn a Collection or IndexJob spec into the manifests the operator applies."""

from __future__ import annotations

import json
from typing import Any

import pytest

from semantik_operator.builders.common import child_name
from semantik_operator.builders.embedder import (
    build_embedder_deployment,
    build_embedder_service,
    embedder_name,
    embedder_url,
    owners_without,
    stale_embedders,
)
from semantik_operator.builders.indexing import (
    INDEX_WORKER_LABEL,
    build_index_job,
    build_worker_job,
    host_path_allowed,
    index_job_name,
    index_spec_hash,
    refused_host_paths,
    source_globs,
)
from semantik_operator.builders.store import build_store_request
from semantik_operator.settings import OperatorSettings
from semantik_operator.spec import CollectionSpec, IndexMode, Quantization

SETTINGS = OperatorSettings()


def collection(name: str = "handbook", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "semantik.io/v1alpha1",
        "kind": "Collection",
        "metadata": {"name": name, "namespace": "docs", "uid": f"uid-{name}"},
        "spec": {"sources": [{"name": "wiki", "pvc": {"claimName": "wiki-pvc", "path": "/export"}}], **spec},
    }


def test_gpu_embedder_asks_for_the_gpu_tolerates_its_taint_and_selects_gpu_nodes() -> None:
    body = collection(
        embedder={"gpu": {"count": 1}, "nodeSelector": {"pool": "a100"}}, embedding={"quantization": "float16"}
    )
    deployment = build_embedder_deployment(CollectionSpec.model_validate(body["spec"]), "docs", [body], SETTINGS)
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["resources"]["limits"] == {"nvidia.com/gpu": "1"}
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true", "pool": "a100"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert {"name": "SEMANTIK_EMBEDDER_DEVICE", "value": "cuda"} in container["env"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert deployment["metadata"]["ownerReferences"][0]["controller"] is False


def test_cpu_embedder_has_no_gpu_and_no_gpu_placement() -> None:
    body = collection()
    deployment = build_embedder_deployment(CollectionSpec.model_validate(body["spec"]), "docs", [body], SETTINGS)
    pod = deployment["spec"]["template"]["spec"]
    assert "limits" not in pod["containers"][0]["resources"]
    assert "nodeSelector" not in pod and "tolerations" not in pod
    assert {"name": "SEMANTIK_EMBEDDER_DEVICE", "value": "cpu"} in pod["containers"][0]["env"]


def test_the_embedder_runs_the_backend_the_collection_asks_for_torch_by_default() -> None:
    def backend_of(body: dict[str, Any]) -> str:
        spec = CollectionSpec.model_validate(body["spec"])
        env = build_embedder_deployment(spec, "docs", [body], SETTINGS)["spec"]["template"]["spec"]["containers"][0]
        return next(e["value"] for e in env["env"] if e["name"] == "SEMANTIK_EMBEDDER_BACKEND")

    assert backend_of(collection()) == "torch"
    onnx = collection(embedder={"backend": "onnx"}, embedding={"quantization": "int8"})
    assert backend_of(onnx) == "onnx"
    # The backend is where the model runs, not what the index is: a change rolls the pods and reindexes nothing.
    torch_int8 = collection(embedding={"quantization": "int8"})
    assert index_spec_hash(CollectionSpec.model_validate(onnx["spec"])) == index_spec_hash(
        CollectionSpec.model_validate(torch_int8["spec"])
    )
    assert build_store_request(
        CollectionSpec.model_validate(onnx["spec"]), source_path="/sources", embedder_url="http://e"
    ) == build_store_request(
        CollectionSpec.model_validate(torch_int8["spec"]), source_path="/sources", embedder_url="http://e"
    )


def test_collections_with_the_same_model_share_one_embedder() -> None:
    first, second = collection("a"), collection("b")
    spec = CollectionSpec.model_validate(first["spec"])
    deployment = build_embedder_deployment(spec, "docs", [first, second], SETTINGS)
    assert [o["name"] for o in deployment["metadata"]["ownerReferences"]] == ["a", "b"]
    assert embedder_name(spec.embedding.model, Quantization.FLOAT32) == deployment["metadata"]["name"]
    assert embedder_name(spec.embedding.model, Quantization.INT8) != deployment["metadata"]["name"]
    service = build_embedder_service(deployment["metadata"]["name"], "docs", [first, second])
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


def test_a_collection_moved_to_another_embedder_leaves_its_owners_and_nothing_else() -> None:
    first, second = collection("a"), collection("b")
    deployment = build_embedder_deployment(
        CollectionSpec.model_validate(first["spec"]), "docs", [first, second], SETTINGS
    )
    owners = deployment["metadata"]["ownerReferences"]
    assert [o["name"] for o in owners_without(owners, "uid-a")] == ["b"]
    assert owners_without(owners_without(owners, "uid-a"), "uid-b") == []


def test_embedders_are_reached_by_service_dns_unless_the_template_says_otherwise() -> None:
    name = embedder_name("sentence-transformers/all-MiniLM-L6-v2", Quantization.FLOAT32)
    assert embedder_url(name, "docs", SETTINGS.embedder_url_template) == f"http://{name}.docs.svc:8000"
    local = OperatorSettings(embedder_url_template="http://{name}.{namespace}.svc.cluster.local:8000")
    assert embedder_url(name, "docs", local.embedder_url_template) == f"http://{name}.docs.svc.cluster.local:8000"


def test_worker_job_runs_burst_workers_on_the_operations_queue_with_sources_read_only() -> None:
    body = collection(indexing={"parallelism": 3})
    index_job = build_index_job(body, IndexMode.FULL, "handbook-full-1234abcd")
    index_job["metadata"]["uid"] = "uid-ij"
    job = build_worker_job(
        index_job,
        CollectionSpec.model_validate(body["spec"]),
        queue="semantik:job:op-1",
        embedder_url="http://semantik-embed-x.docs.svc:8000",
        settings=SETTINGS,
    )
    assert job["spec"]["parallelism"] == 3 and "completions" not in job["spec"]
    assert job["spec"]["backoffLimit"] == SETTINGS.job_backoff_limit
    assert job["spec"]["ttlSecondsAfterFinished"] == SETTINGS.job_ttl_seconds
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["args"] == ["semantik", "worker", "--queue", "semantik:job:op-1", "--burst"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "source-wiki")
    assert mount == {"name": "source-wiki", "mountPath": "/sources/wiki", "readOnly": True, "subPath": "export"}
    volume = next(v for v in pod["volumes"] if v["name"] == "source-wiki")
    assert volume["persistentVolumeClaim"] == {"claimName": "wiki-pvc", "readOnly": True}
    env = {e["name"]: e for e in container["env"]}
    assert "valueFrom" in env["SEMANTIK_INTERNAL_TOKEN"] and "SEMANTIK_DATABASE_URL" not in env
    assert json.loads(env["SEMANTIK_SOURCE_ROOTS"]["value"]) == ["/sources"]  # what the workers may read
    assert job["metadata"]["ownerReferences"][0]["kind"] == "IndexJob"
    # Bounded: a stuck run is stopped, a worker that balloons is killed, not its node.
    assert job["spec"]["activeDeadlineSeconds"] == SETTINGS.job_deadline_seconds == 6 * 3600
    assert container["resources"]["limits"]["memory"] == SETTINGS.worker_memory_limit == "3Gi"
    assert job["spec"]["template"]["metadata"]["labels"][INDEX_WORKER_LABEL] == "true"


def worker_job(
    collection_spec: dict[str, Any], index_spec: dict[str, Any], settings: OperatorSettings
) -> dict[str, Any]:
    body = collection(**collection_spec)
    index_job = build_index_job(body, IndexMode.FULL, "handbook-full-1234abcd")
    index_job["spec"].update(index_spec)
    index_job["metadata"]["uid"] = "uid-ij"
    return build_worker_job(
        index_job, CollectionSpec.model_validate(body["spec"]), queue="q", embedder_url="http://e", settings=settings
    )


def test_the_deadline_comes_from_the_indexjob_then_the_collection_then_the_setting() -> None:
    settings = OperatorSettings(job_deadline_seconds=900, worker_memory_limit="4Gi")
    assert worker_job({}, {}, settings)["spec"]["activeDeadlineSeconds"] == 900
    from_collection = worker_job({"indexing": {"activeDeadlineSeconds": 600}}, {}, settings)
    assert from_collection["spec"]["activeDeadlineSeconds"] == 600
    from_job = worker_job({"indexing": {"activeDeadlineSeconds": 600}}, {"activeDeadlineSeconds": 120}, settings)
    assert from_job["spec"]["activeDeadlineSeconds"] == 120
    container = from_job["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"] == {"memory": "4Gi"}


def test_host_paths_are_allowed_only_under_the_operators_list() -> None:
    allowed = ["/srv/docs", "/data/"]
    for path in ("/srv/docs", "/srv/docs/", "/srv/docs/team/a", "/data", "/data/x", "/srv//docs/./x"):
        assert host_path_allowed(path, allowed), path
    for path in ("/srv/docs-evil", "/srv", "/srv/docs/../../etc", "/srv/docs/..", "/etc", "srv/docs", "/", ""):
        assert not host_path_allowed(path, allowed), path
    assert not host_path_allowed("/srv/docs", [])  # the default: every hostPath refused
    assert host_path_allowed("/anything", ["/"])


def test_a_refused_host_path_is_named_and_never_mounted() -> None:
    spec = {"sources": [{"name": "etc", "hostPath": "/etc"}, {"name": "ok", "hostPath": "/srv/docs/a"}]}
    refused = refused_host_paths(CollectionSpec.model_validate(spec), ["/srv/docs"])
    assert len(refused) == 1 and "source etc" in refused[0] and "SEMANTIK_OPERATOR_ALLOWED_HOST_PATHS" in refused[0]
    # A PVC source needs no allowance; with no list, every hostPath is refused.
    assert refused_host_paths(CollectionSpec.model_validate(collection()["spec"]), []) == []
    assert len(refused_host_paths(CollectionSpec.model_validate(spec), [])) == 2
    with pytest.raises(ValueError, match="hostPath /etc"):
        worker_job(spec, {}, OperatorSettings(allowed_host_paths=["/srv/docs"]))
    job = worker_job(spec, {}, OperatorSettings(allowed_host_paths=["/srv/docs", "/etc"]))
    paths = [v["hostPath"]["path"] for v in job["spec"]["template"]["spec"]["volumes"] if "hostPath" in v]
    assert paths == ["/etc", "/srv/docs/a"]


def test_globs_are_prefixed_by_source_and_names_fit() -> None:
    spec = CollectionSpec.model_validate(
        {
            "sources": [
                {"name": "a", "hostPath": "/x", "include": ["**/*.md"]},
                {"name": "b", "hostPath": "/y", "exclude": ["tmp/**"]},
            ]
        }
    )
    assert source_globs(spec.sources) == (["a/**/*.md", "b/**"], ["b/tmp/**"])
    assert len(index_job_name("x" * 63, IndexMode.REINDEX, "12345678")) <= 63
    assert len(child_name("y" * 80, suffix="workers")) == 63


def test_a_change_of_model_or_chunking_changes_the_index_hash_and_nothing_else_does() -> None:
    base = CollectionSpec.model_validate(collection()["spec"])
    other_model = CollectionSpec.model_validate(
        {**collection()["spec"], "embedding": {"model": "Qwen/Qwen3-Embedding-0.6B"}}
    )
    other_chunks = CollectionSpec.model_validate({**collection()["spec"], "chunking": {"chunkSize": 300}})
    more_replicas = CollectionSpec.model_validate({**collection()["spec"], "embedder": {"replicas": 3}})
    assert len({index_spec_hash(base), index_spec_hash(other_model), index_spec_hash(other_chunks)}) == 3
    assert index_spec_hash(more_replicas) == index_spec_hash(base)


def test_the_store_request_carries_the_keyword_language_and_the_gateway_accepts_it() -> None:
    from pydantic import ValidationError

    from semantik.gateway.routers.internal_collections import EnsureCollectionIn

    english = CollectionSpec.model_validate(collection()["spec"])
    german = CollectionSpec.model_validate({**collection()["spec"], "search": {"language": "german"}})
    request = build_store_request(german, source_path="/sources", embedder_url="http://embed:8000")
    assert request["search"] == {"language": "german"}
    accepted = EnsureCollectionIn.model_validate(request)
    assert accepted.search.language == "german"
    assert (accepted.source_path, accepted.include, accepted.embedder_url) == (
        "/sources",
        ["wiki/**"],
        "http://embed:8000",
    )

    assert build_store_request(english, source_path="/s", embedder_url="u")["search"] == {"language": "english"}
    # The keyword index is rebuilt from stored text: a language change is no reindex of the embeddings.
    assert index_spec_hash(german) == index_spec_hash(english)
    with pytest.raises(ValidationError):
        CollectionSpec.model_validate({**collection()["spec"], "search": {"language": "klingon"}})


def test_store_names_are_unique_per_namespace_and_fit() -> None:
    from semantik.contracts.naming import store_name

    assert store_name("docs", "handbook") == "docs-handbook"
    assert store_name("a" * 40, "b" * 40) != store_name("c" * 40, "b" * 40)
    assert len(store_name("a" * 63, "b" * 40)) <= 63


def test_an_embedder_no_longer_searched_nor_built_with_is_stale() -> None:
    def deployment(name: str, *owners: str, embedder: bool = True) -> dict[str, Any]:
        labels = {"semantik.io/embedder": name} if embedder else {}
        return {"metadata": {"name": name, "labels": labels, "ownerReferences": [{"uid": u} for u in owners]}}

    live, pending, abandoned = "semantik-embed-live", "semantik-embed-next", "semantik-embed-gone"
    deployments = [
        deployment(live, "uid-a"),
        deployment(pending, "uid-a", "uid-b"),
        deployment(abandoned, "uid-a", "uid-b"),
        deployment("unrelated-app", "uid-a", embedder=False),
        deployment("semantik-embed-other", "uid-b"),
    ]
    assert stale_embedders(deployments, "uid-a", keep={live, pending}) == [abandoned]
    assert stale_embedders(deployments, "uid-a", keep={live}) == [abandoned, pending]
    assert stale_embedders(deployments, "uid-c", keep=set()) == []


def test_the_store_layout_reaches_the_gateway_body_and_the_gateway_accepts_it() -> None:
    from semantik.gateway.routers.internal_collections import EnsureCollectionIn

    store = {"shards": 12, "replicationFactor": 2, "onDisk": True}
    sharded = CollectionSpec.model_validate({**collection()["spec"], "store": store})
    request = build_store_request(sharded, source_path="/sources", embedder_url="http://embed:8000")
    assert request["store"] == {"shards": 12, "replication_factor": 2, "on_disk": True}
    accepted = EnsureCollectionIn.model_validate(request).store
    assert accepted is not None
    assert (accepted.shards, accepted.replication_factor, accepted.on_disk) == (12, 2, True)

    # Only the fields the Collection sets: the rest stay the Qdrant server's defaults.
    partial = CollectionSpec.model_validate({**collection()["spec"], "store": {"shards": 6}})
    assert build_store_request(partial, source_path="/s", embedder_url="u")["store"] == {"shards": 6}
    # No block: no field, so the gateway keeps the collection's layout as it is.
    plain = CollectionSpec.model_validate(collection()["spec"])
    assert "store" not in build_store_request(plain, source_path="/s", embedder_url="u")
    assert (
        EnsureCollectionIn.model_validate(build_store_request(plain, source_path="/s", embedder_url="u")).store is None
    )
    # The layout lives in the store, not the vectors: a change of it is no reindex.
    assert index_spec_hash(sharded) == index_spec_hash(plain)
