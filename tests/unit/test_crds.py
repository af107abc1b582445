"""The CRDs are structural, documented field by field, and show what `kubectl get` users need."""

from __future__ import annotations

import re
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


def source_path_rules() -> dict[str, list[dict[str, str]]]:
    spec = load("collection.yaml")["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    source = spec["properties"]["sources"]["items"]["properties"]
    return {
        "hostPath": source["hostPath"]["x-kubernetes-validations"],
        "pvc.path": source["pvc"]["properties"]["path"]["x-kubernetes-validations"],
    }


def cel_holds(rule: str, value: str) -> bool:
    """The two rule shapes these fields use, evaluated as the API server does (RE2 and Python's re agree on
    this pattern); tests/cluster/test_crd_validation.py checks the real API server."""
    if rule == "self.startsWith('/')":
        return value.startswith("/")
    negated = re.fullmatch(r"!self\.matches\('(.*)'\)", rule)
    assert negated is not None, f"a rule this test does not know: {rule}"
    return re.search(negated.group(1), value) is None


@pytest.mark.parametrize("field", ["hostPath", "pvc.path"])
def test_source_paths_must_be_absolute_and_free_of_dot_dot(field: str) -> None:
    rules = source_path_rules()[field]
    assert all(r["message"].startswith(f"{field}: ") for r in rules), "each message names the field"

    def accepted(value: str) -> bool:
        return all(cel_holds(r["rule"], value) for r in rules)

    for good in ("/", "/srv/docs", "/srv/docs/", "/srv/..docs", "/srv/docs../x", "/srv/./docs", "/a/.../b"):
        assert accepted(good), good
    for bad in ("/..", "/../etc", "/srv/../etc", "/srv/docs/..", "/srv/docs/../", "docs", "../etc", "", ".."):
        assert not accepted(bad), bad


def test_index_jobs_may_set_a_deadline() -> None:
    job = load("indexjob.yaml")["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    collection = load("collection.yaml")["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    for field in (
        job["properties"]["activeDeadlineSeconds"],
        collection["properties"]["indexing"]["properties"]["activeDeadlineSeconds"],
    ):
        assert field["type"] == "integer" and field["minimum"] >= 1


def test_search_language_is_one_the_analyzer_knows_defaulting_to_english() -> None:
    from typing import get_args

    from semantik.core.search.analyzer import Language as GatewayLanguage
    from semantik_operator.spec import Language as OperatorLanguage

    spec = load("collection.yaml")["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    search = spec["properties"]["search"]
    language = search["properties"]["language"]
    assert language["type"] == "string"
    assert search["default"] == {"language": "english"} and language["default"] == "english"
    assert "klingon" not in language["enum"] and "English" not in language["enum"]
    # The API server, the operator and the gateway must refuse and accept the same languages.
    assert sorted(language["enum"]) == sorted(get_args(GatewayLanguage)) == sorted(OperatorLanguage)
    assert "stemmer" in language["description"] and "without re-embedding" in language["description"]
