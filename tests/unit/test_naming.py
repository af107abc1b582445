"""A Collection's store name and back: the gateway reads operations by store, scopes speak of Collections."""

from __future__ import annotations

import pytest

from semantik.contracts.naming import collection_name, store_name


@pytest.mark.parametrize(
    ("namespace", "name"),
    [("docs", "handbook"), ("docs", "docs-handbook"), ("team-a", "x"), ("n" * 40, "c" * 40), ("a", "b" * 61)],
)
def test_the_store_name_leads_back_to_the_collection(namespace: str, name: str) -> None:
    assert collection_name(namespace, store_name(namespace, name)) == name


def test_a_store_of_another_namespace_has_no_collection_here() -> None:
    assert collection_name("team-a", store_name("team-b", "handbook")) is None
    assert collection_name("team-a", "handbook") is None
    assert collection_name("team-a", store_name("team-b", "c" * 60)) is None
