"""Cluster mode's pure builders: a REST create becomes the Collection the CRD accepts, what it cannot hold is
refused naming the field, and an index request that would edit the resource is a 409 naming kubectl."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from semantik.contracts.naming import store_name
from semantik.core.errors import ConflictError, InvalidInputError
from semantik.core.services.collections import CollectionSpec
from semantik.gateway.cluster_resources import (
    collection_resource,
    collection_view,
    index_job_resource,
    index_mode,
    source_name,
)


def resource(**status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "handbook", "namespace": "docs", "uid": "u-1"},
        "spec": {"sources": [{"name": "source", "hostPath": "/srv/handbook"}]},
        "status": status,
    }


def test_a_rest_create_becomes_a_collection_in_the_crds_shape() -> None:
    spec = CollectionSpec.model_validate(
        {
            "name": "handbook",
            "source_path": "/srv/handbook",
            "include": ["**/*.md"],
            "exclude": ["drafts/**"],
            "model": "BAAI/bge-small-en-v1.5",
            "chunking": {"strategy": "markdown", "chunk_size": 300, "chunk_overlap": 20},
            "search": {"language": "german"},
        }
    )
    body = collection_resource(spec, "docs")
    assert body["apiVersion"] == "semantik.io/v1alpha1" and body["kind"] == "Collection"
    assert body["metadata"]["name"] == "handbook" and body["metadata"]["namespace"] == "docs"
    assert body["spec"] == {
        "sources": [
            {"name": "handbook", "hostPath": "/srv/handbook", "include": ["**/*.md"], "exclude": ["drafts/**"]}
        ],
        "chunking": {"strategy": "markdown", "chunkSize": 300, "chunkOverlap": 20},
        "embedding": {"model": "BAAI/bge-small-en-v1.5"},
        "search": {"language": "german"},
    }


@pytest.mark.parametrize(
    ("path", "name"), [("/srv/team-docs/", "team-docs"), ("/srv/Team_Docs", "source"), ("/", "source")]
)
def test_the_source_is_named_after_its_folder_where_that_is_a_valid_name(path: str, name: str) -> None:
    assert source_name(path) == name


@pytest.mark.parametrize(
    ("fields", "field"),
    [({"source_path": "/srv/x", "description": "team docs"}, "description"), ({}, "source_path")],
)
def test_what_a_collection_cannot_hold_is_refused_naming_the_field(fields: dict[str, str], field: str) -> None:
    with pytest.raises(InvalidInputError) as refused:
        collection_resource(CollectionSpec.model_validate({"name": "x", **fields}), "docs")
    assert refused.value.field == field


def test_an_index_request_for_another_folder_is_a_conflict_naming_kubectl() -> None:
    assert index_mode(resource(), None, full=False) == "incremental"
    assert index_mode(resource(), "/srv/handbook/", full=True) == "full"
    with pytest.raises(ConflictError) as conflict:
        index_mode(resource(), "/srv/other", full=False)
    assert "kubectl -n docs edit collection handbook" in conflict.value.message and conflict.value.field == "path"


def test_a_rest_index_job_is_owned_by_its_collection_and_its_name_fits() -> None:
    job = index_job_resource(resource(), "full")
    assert job["spec"] == {"collectionRef": {"name": "handbook"}, "mode": "full"}
    assert job["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    # The API server appends 5 characters; Collection names are at most 40 and IndexJob names at most 52.
    assert (
        len(
            index_job_resource(resource() | {"metadata": {**resource()["metadata"], "name": "n" * 40}}, "full")[
                "metadata"
            ]["generateName"]
        )
        + 5
        <= 52
    )


def test_the_rest_view_takes_phase_and_conditions_from_status() -> None:
    ready = {"type": "Ready", "status": "True", "reason": "Indexed", "message": "", "lastTransitionTime": "t"}
    view = collection_view(resource(phase="Ready", conditions=[ready]), None)
    assert view.phase == "Ready" and [(c.type, c.status) for c in view.conditions] == [("Ready", "True")]
    assert view.store == store_name("docs", "handbook") and view.documents is None
    fresh = collection_view({"metadata": {"name": "new", "namespace": "docs"}, "spec": {}}, None)
    assert fresh.phase is None and fresh.conditions == [] and not fresh.deleting


def test_cluster_mode_needs_a_namespace(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from semantik.core import settings

    monkeypatch.setattr(settings, "SERVICE_ACCOUNT_NAMESPACE", tmp_path / "absent")
    with pytest.raises(ValueError, match="SEMANTIK_NAMESPACE"):
        settings.Settings(cluster_mode=True)
    assert settings.Settings(cluster_mode=True, namespace="docs").namespace == "docs"
    (tmp_path / "namespace").write_text("search\n")
    monkeypatch.setattr(settings, "SERVICE_ACCOUNT_NAMESPACE", tmp_path / "namespace")
    assert settings.Settings(cluster_mode=True).namespace == "search"


def test_a_rest_store_layout_becomes_the_collections_and_comes_back_to_the_gateway_unchanged() -> None:
    from semantik.gateway.routers.internal_collections import EnsureCollectionIn
    from semantik_operator.builders.store import build_store_request
    from semantik_operator.spec import CollectionSpec as OperatorSpec

    store = {"shards": 8, "replication_factor": 2}
    spec = CollectionSpec.model_validate({"name": "handbook", "source_path": "/srv/handbook", "store": store})
    body = collection_resource(spec, "docs")
    assert body["spec"]["store"] == {"shards": 8, "replicationFactor": 2}, "unset fields stay out of the resource"
    request = build_store_request(OperatorSpec.model_validate(body["spec"]), source_path="/s", embedder_url="u")
    assert EnsureCollectionIn.model_validate(request).store == spec.store
