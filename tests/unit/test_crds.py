"""The CRDs are structural, documented field by field, and show what `kubectl get` users need."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

CRDS = Path(__file__).resolve().parents[2] / "crds"


def load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((CRDS / name).read_text())
    return document


def walk(schema: dict[str, Any], path: str) -> list[tuple[str, dict[str, Any]]]:
    nodes = [(path, schema)]
    for name, child in schema.get("properties", {}).items():
        nodes += walk(child, f"{path}.{name}")
    if "items" in schema:
        nodes += walk(schema["items"], f"{path}[]")
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        nodes += walk(extra, f"{path}{{}}")
    return nodes


@pytest.mark.parametrize("name", ["collection.yaml", "indexjob.yaml"])
def test_every_field_is_typed_and_described(name: str) -> None:
    version = load(name)["spec"]["versions"][0]
    schema = version["openAPIV3Schema"] if "openAPIV3Schema" in version else version["schema"]["openAPIV3Schema"]
    for path, node in walk(schema, "")[1:]:
        if path == ".metadata":
            continue
        assert "type" in node or node.get("x-kubernetes-int-or-string"), f"{path} has no type (not structural)"
        if not path.endswith("{}"):
            assert node.get("description"), f"{path} has no description: kubectl explain would show nothing"


def test_collection_names_columns_and_rules() -> None:
    crd = load("collection.yaml")
    assert crd["spec"]["group"] == "semantik.io"
    assert crd["spec"]["names"]["shortNames"] == ["col"]
    assert crd["spec"]["names"]["categories"] == ["semantik"]
    version = crd["spec"]["versions"][0]
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns == ["Phase", "Ready", "Documents", "Chunks", "Model", "Age"]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    rules = [r["rule"] for r in spec["chunking"]["x-kubernetes-validations"]]
    assert "self.chunkOverlap < self.chunkSize" in rules
    assert "oldSelf" in spec["embedding"]["x-kubernetes-validations"][0]["rule"]
    assert spec["embedding"]["properties"]["quantization"]["enum"] == ["float32", "float16", "bfloat16", "int8"]
    assert spec["indexing"]["properties"]["schedule"]["x-kubernetes-validations"]


def test_indexjob_names_columns_and_immutable_spec() -> None:
    crd = load("indexjob.yaml")
    assert crd["spec"]["names"]["shortNames"] == ["ij"]
    version = crd["spec"]["versions"][0]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["x-kubernetes-validations"][0]["rule"] == "self == oldSelf"
    assert spec["properties"]["mode"]["enum"] == ["full", "incremental", "reindex"]
