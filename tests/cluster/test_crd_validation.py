"""`kubectl apply` rejects every bad Collection and IndexJob before the operator sees it, with a message
that names the field: the schema and its CEL rules, served by a real kube-apiserver."""

from __future__ import annotations

import copy
import json
import subprocess
from collections.abc import Callable
from typing import Any

import pytest

from tests.cluster.conftest import Cluster

pytestmark = pytest.mark.usefixtures("crds")

VALID: dict[str, Any] = {
    "apiVersion": "semantik.io/v1alpha1",
    "kind": "Collection",
    "metadata": {"name": "handbook", "namespace": "default"},
    "spec": {"sources": [{"name": "docs", "hostPath": "/srv/docs"}]},
}


def with_spec(**changes: Any) -> Callable[[dict[str, Any]], None]:
    def change(body: dict[str, Any]) -> None:
        body["spec"].update(changes)

    return change


def at(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(body: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = body
        for part in parents:
            node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
        if value is DELETE:
            del node[last]
        elif isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return change


DELETE = object()

BAD_COLLECTIONS: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("no sources", at("spec.sources", DELETE), "spec.sources"),
    ("empty sources", with_spec(sources=[]), "spec.sources"),
    ("source without a name", at("spec.sources.0", {"hostPath": "/srv"}), "spec.sources[0].name"),
    ("source with pvc and hostPath", at("spec.sources.0.pvc", {"claimName": "x"}), "exactly one of pvc or hostPath"),
    ("source with neither", at("spec.sources.0.hostPath", DELETE), "exactly one of pvc or hostPath"),
    ("relative hostPath", at("spec.sources.0.hostPath", "docs"), "hostPath: an absolute path on the node"),
    ("hostPath out of the root", at("spec.sources.0.hostPath", "/../etc"), "hostPath: '..' segments are not allowed"),
    ("hostPath climbing", at("spec.sources.0.hostPath", "/srv/docs/../../etc"), "spec.sources[0].hostPath"),
    (
        "pvc.path climbing",
        at("spec.sources.0", {"name": "docs", "pvc": {"claimName": "docs", "path": "/a/../../etc"}}),
        "pvc.path: '..' segments are not allowed",
    ),
    (
        "relative pvc.path",
        at("spec.sources.0", {"name": "docs", "pvc": {"claimName": "docs", "path": "a"}}),
        "spec.sources[0].pvc.path",
    ),
    (
        "deadline under a minute",
        with_spec(indexing={"activeDeadlineSeconds": 5}),
        "spec.indexing.activeDeadlineSeconds",
    ),
    ("source name with capitals", at("spec.sources.0.name", "Docs_1"), "spec.sources[0].name"),
    (
        "two sources of one name",
        with_spec(sources=[{"name": "a", "hostPath": "/a"}, {"name": "a", "hostPath": "/b"}]),
        "spec.sources[1]",
    ),
    ("negative chunk size", with_spec(chunking={"chunkSize": -5}), "spec.chunking.chunkSize"),
    ("chunk size as text", with_spec(chunking={"chunkSize": "big"}), "spec.chunking.chunkSize"),
    (
        "overlap equal to size",
        with_spec(chunking={"chunkSize": 100, "chunkOverlap": 100}),
        "chunkOverlap must be smaller",
    ),
    ("overlap over size", with_spec(chunking={"chunkSize": 50, "chunkOverlap": 64}), "chunkOverlap must be smaller"),
    ("negative overlap", with_spec(chunking={"chunkOverlap": -1}), "spec.chunking.chunkOverlap"),
    ("unknown strategy", with_spec(chunking={"strategy": "semantic"}), "spec.chunking.strategy"),
    ("unknown quantization", with_spec(embedding={"quantization": "int4"}), "spec.embedding.quantization"),
    ("unknown search language", with_spec(search={"language": "klingon"}), "spec.search.language"),
    (
        "int8 on a GPU",
        with_spec(embedding={"quantization": "int8"}, embedder={"gpu": {"count": 1}}),
        "int8 runs on CPU only",
    ),
    ("unknown embedder backend", with_spec(embedder={"backend": "tensorrt"}), "spec.embedder.backend"),
    (
        "onnx on a GPU",
        with_spec(embedder={"backend": "onnx", "gpu": {"count": 1}}),
        "spec.embedder.backend: onnx runs on CPU only",
    ),
    (
        "onnx in bfloat16",
        with_spec(embedding={"quantization": "bfloat16"}, embedder={"backend": "onnx"}),
        "spec.embedder.backend: onnx runs float32 or int8",
    ),
    ("negative GPU count", with_spec(embedder={"gpu": {"count": -1}}), "spec.embedder.gpu.count"),
    ("GPU count as text", with_spec(embedder={"gpu": {"count": "one"}}), "spec.embedder.gpu.count"),
    ("too many replicas", with_spec(embedder={"replicas": 100}), "spec.embedder.replicas"),
    (
        "unknown toleration operator",
        with_spec(embedder={"tolerations": [{"key": "k", "operator": "Maybe"}]}),
        "spec.embedder.tolerations[0].operator",
    ),
    (
        "cpu request not a quantity",
        with_spec(embedder={"resources": {"requests": {"cpu": "lots"}}}),
        "spec.embedder.resources.requests.cpu",
    ),
    ("schedule in words", with_spec(indexing={"schedule": "every day"}), "indexing.schedule"),
    ("schedule with four fields", with_spec(indexing={"schedule": "0 3 * *"}), "indexing.schedule"),
    ("schedule with a bad field", with_spec(indexing={"schedule": "0 3 * * mon!"}), "indexing.schedule"),
    ("zero parallelism", with_spec(indexing={"parallelism": 0}), "spec.indexing.parallelism"),
    ("huge batch", with_spec(indexing={"batchSize": 5000}), "spec.indexing.batchSize"),
    ("zero dimension", with_spec(embedding={"dimension": 0}), "spec.embedding.dimension"),
    ("empty model", with_spec(embedding={"model": ""}), "spec.embedding.model"),
    ("retainOnDelete as text", with_spec(retainOnDelete="yes"), "spec.retainOnDelete"),
    ("zero shards", with_spec(store={"shards": 0}), "spec.store.shards"),
    ("more shards than the bound", with_spec(store={"shards": 65}), "spec.store.shards"),
    ("zero replicas", with_spec(store={"replicationFactor": 0}), "spec.store.replicationFactor"),
    ("onDisk as text", with_spec(store={"onDisk": "yes"}), "spec.store.onDisk"),
    ("Qdrant's own field name", with_spec(store={"shard_number": 3}), "spec.store.shard_number"),
    ("a typo'd field", with_spec(chunking={"size": 100}), "spec.chunking.size"),
    ("name too long", at("metadata.name", "a" * 41), "metadata.name"),
]

BAD_INDEXJOBS: list[tuple[str, dict[str, Any], str]] = [
    ("no collection", {}, "spec.collectionRef"),
    ("unknown mode", {"collectionRef": {"name": "handbook"}, "mode": "partial"}, "spec.mode"),
    ("zero parallelism", {"collectionRef": {"name": "handbook"}, "parallelism": 0}, "spec.parallelism"),
    (
        "deadline under a minute",
        {"collectionRef": {"name": "handbook"}, "activeDeadlineSeconds": 0},
        "spec.activeDeadlineSeconds",
    ),
]


def apply(cluster: Cluster, body: dict[str, Any], *, dry_run: bool = True) -> subprocess.CompletedProcess[str]:
    args = ["apply", "--validate=strict", "-f", "-"]
    if dry_run:
        args.append("--dry-run=server")
    return cluster.kubectl(*args, input=json.dumps(body), check=False)


def test_the_valid_collection_is_accepted(cluster: Cluster) -> None:
    result = apply(cluster, VALID)
    assert result.returncode == 0, result.stderr


def test_an_onnx_embedder_in_int8_on_cpu_is_accepted_and_torch_is_the_default(cluster: Cluster) -> None:
    body = copy.deepcopy(VALID)
    body["spec"]["embedding"] = {"quantization": "int8"}
    body["spec"]["embedder"] = {"backend": "onnx"}
    result = apply(cluster, body)
    assert result.returncode == 0, result.stderr
    defaulted = cluster.kubectl(
        "apply", "--dry-run=server", "-o", "json", "-f", "-", input=json.dumps(VALID), check=False
    )
    assert defaulted.returncode == 0, defaulted.stderr
    assert json.loads(defaulted.stdout)["spec"]["embedder"]["backend"] == "torch"


def test_paths_that_only_look_like_dot_dot_and_deadlines_are_accepted(cluster: Cluster) -> None:
    body = copy.deepcopy(VALID)
    body["spec"]["sources"] = [
        {"name": "docs", "hostPath": "/srv/..docs/a..b/..."},
        {"name": "wiki", "pvc": {"claimName": "wiki", "path": "/export/..old"}},
    ]
    body["spec"]["indexing"] = {"activeDeadlineSeconds": 3600}
    result = apply(cluster, body)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(("case", "change", "field"), BAD_COLLECTIONS, ids=[c[0] for c in BAD_COLLECTIONS])
def test_bad_collection_is_rejected_naming_the_field(
    cluster: Cluster, case: str, change: Callable[[dict[str, Any]], None], field: str
) -> None:
    body = copy.deepcopy(VALID)
    change(body)
    result = apply(cluster, body)
    assert result.returncode != 0, f"{case}: accepted"
    assert field in result.stderr, f"{case}: {result.stderr}"


@pytest.mark.parametrize(("case", "spec", "field"), BAD_INDEXJOBS, ids=[c[0] for c in BAD_INDEXJOBS])
def test_bad_indexjob_is_rejected_naming_the_field(
    cluster: Cluster, case: str, spec: dict[str, Any], field: str
) -> None:
    body = {
        "apiVersion": "semantik.io/v1alpha1",
        "kind": "IndexJob",
        "metadata": {"name": "run", "namespace": "default"},
        "spec": spec,
    }
    result = apply(cluster, body)
    assert result.returncode != 0 and field in result.stderr, f"{case}: {result.stderr}"


def test_immutable_fields_cannot_change(cluster: Cluster) -> None:
    body = copy.deepcopy(VALID)
    body["metadata"]["name"] = "immutable"
    body["spec"]["embedding"] = {"dimension": 384}
    assert apply(cluster, body, dry_run=False).returncode == 0
    try:
        body["spec"]["embedding"]["dimension"] = 768
        result = apply(cluster, body)
        assert result.returncode != 0 and "embedding.dimension is immutable" in result.stderr, result.stderr
    finally:
        cluster.kubectl("delete", "collection", "immutable", "--wait=false", check=False)

    job = {
        "apiVersion": "semantik.io/v1alpha1",
        "kind": "IndexJob",
        "metadata": {"name": "fixed", "namespace": "default"},
        "spec": {"collectionRef": {"name": "handbook"}},
    }
    assert apply(cluster, job, dry_run=False).returncode == 0
    try:
        job["spec"]["mode"] = "full"
        result = apply(cluster, job)
        assert result.returncode != 0 and "spec is immutable" in result.stderr, result.stderr
    finally:
        cluster.kubectl("delete", "indexjob", "fixed", "--wait=false", check=False)


def test_the_store_layout_is_kept_once_set(cluster: Cluster) -> None:
    body = copy.deepcopy(VALID)
    body["metadata"]["name"] = "sharded"
    assert apply(cluster, body, dry_run=False).returncode == 0
    try:
        # A Collection made before the block existed may take one: its next generation is laid out so.
        body["spec"]["store"] = {"shards": 6, "onDisk": True}
        assert apply(cluster, body, dry_run=False).returncode == 0
        body["spec"]["store"]["replicationFactor"] = 2
        assert apply(cluster, body, dry_run=False).returncode == 0
        for field, value in (("shards", 12), ("replicationFactor", 3), ("onDisk", False)):
            changed = copy.deepcopy(body)
            changed["spec"]["store"][field] = value
            result = apply(cluster, changed)
            assert result.returncode != 0 and f"store.{field} is immutable" in result.stderr, result.stderr
            del changed["spec"]["store"][field]
            result = apply(cluster, changed)
            assert result.returncode != 0 and f"store.{field} is immutable" in result.stderr, result.stderr
    finally:
        cluster.kubectl("delete", "collection", "sharded", "--wait=false", check=False)


def test_explain_documents_the_fields(cluster: Cluster) -> None:
    out = cluster.kubectl("explain", "collection.spec.chunking").stdout
    assert "chunkOverlap" in out and "smaller than chunkSize" in out
    search = cluster.kubectl("explain", "collection.spec.search.language").stdout
    assert "stemmer" in search and "re-embedding" in search  # single words: kubectl explain wraps lines
    columns = cluster.kubectl("get", "collections", "-o", "wide").stdout + cluster.kubectl("get", "col").stderr
    assert "No resources found" in columns or "PHASE" in columns
