"""A collection's store placement (shards, replicas, on-disk) reaches Qdrant's create-collection call, and
the CRD, the gateway's API and the operator bound it alike."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError
from qdrant_client import models

from semantik.core.services.collections import StoreSpec
from semantik.core.store.placement import StorePlacement
from semantik.core.store.vectors import DENSE, SPARSE, VectorStore, collection_params

CRD = Path(__file__).resolve().parents[2] / "crds" / "collection.yaml"


def crd_store() -> dict[str, Any]:
    crd = yaml.safe_load(CRD.read_text())
    spec: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    store: dict[str, Any] = spec["properties"]["store"]
    return store


def test_shards_replicas_and_disk_reach_the_create_call() -> None:
    params = collection_params(384, StorePlacement(shards=12, replication_factor=2, on_disk=True))
    assert (params["shard_number"], params["replication_factor"], params["on_disk_payload"]) == (12, 2, True)
    dense = params["vectors_config"][DENSE]
    assert (dense.size, dense.distance, dense.on_disk) == (384, models.Distance.COSINE, True)
    sparse = params["sparse_vectors_config"][SPARSE]
    assert sparse.modifier == models.Modifier.IDF and sparse.index == models.SparseIndexParams(on_disk=True)


def test_an_unset_placement_leaves_every_choice_to_the_server() -> None:
    params = collection_params(768, StorePlacement())
    assert params["shard_number"] is params["replication_factor"] is params["on_disk_payload"] is None
    assert params["vectors_config"][DENSE].on_disk is None and params["vectors_config"][DENSE].size == 768
    assert params["sparse_vectors_config"][SPARSE].index is None
    # In RAM, asked for explicitly: the server is told so rather than left to its configured default.
    in_ram = collection_params(384, StorePlacement(on_disk=False))
    assert in_ram["on_disk_payload"] is False and in_ram["vectors_config"][DENSE].on_disk is False


async def test_the_store_creates_the_collection_with_its_placement(tmp_path: Path) -> None:
    store = VectorStore.open(url=None, path=tmp_path / "store")
    try:
        await store.ensure_collection("on-disk", 8, placement=StorePlacement(shards=3, on_disk=True))
        await store.ensure_collection("in-ram", 8)
        info = await store.client.get_collection("on-disk")
        assert isinstance(info.config.params.vectors, dict)
        assert info.config.params.vectors[DENSE].on_disk is True
        # An existing collection keeps its layout: Qdrant cannot reshard or move it in place.
        await store.ensure_collection("on-disk", 8, placement=StorePlacement(on_disk=False))
        again = await store.client.get_collection("on-disk")
        assert isinstance(again.config.params.vectors, dict) and again.config.params.vectors[DENSE].on_disk is True
        plain = await store.client.get_collection("in-ram")
        assert isinstance(plain.config.params.vectors, dict) and plain.config.params.vectors[DENSE].on_disk is None
    finally:
        await store.close()


@pytest.mark.parametrize(("field", "crd_field"), [("shards", "shards"), ("replication_factor", "replicationFactor")])
def test_the_api_and_the_crd_bound_the_layout_alike(field: str, crd_field: str) -> None:
    bounds = crd_store()["properties"][crd_field]
    low, high = bounds["minimum"], bounds["maximum"]
    assert StoreSpec.model_validate({field: low}) and StoreSpec.model_validate({field: high})
    for bad in (low - 1, high + 1):
        with pytest.raises(ValidationError):
            StoreSpec.model_validate({field: bad})


def test_qdrants_own_names_are_refused_not_dropped() -> None:
    with pytest.raises(ValidationError):
        StoreSpec.model_validate({"shard_number": 3})
