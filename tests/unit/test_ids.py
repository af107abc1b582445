from __future__ import annotations

import uuid

import pytest

from semantik.core.pipeline.ids import PointIdScheme, content_hash, file_key, point_id, point_ids

NAMED, BY_FILE = PointIdScheme.NAMED, PointIdScheme.BY_FILE


def test_named_ids_are_the_uuid5_that_stores_made_before_schemes() -> None:
    # Stores written before schemes existed hold exactly these ids; a different value would strand their chunks.
    assert point_id("handbook", "docs/keys.md", 3, scheme=NAMED) == "350bd496-4322-577e-ba17-2b527f1f0cc6"
    assert uuid.UUID(point_id("handbook", "docs/keys.md", 3, scheme=NAMED)).version == 5


@pytest.mark.parametrize("scheme", list(PointIdScheme))
def test_point_ids_are_deterministic_uuids(scheme: PointIdScheme) -> None:
    first = point_id("handbook", "docs/keys.md", 3, scheme=scheme)
    assert first == point_id("handbook", "docs/keys.md", 3, scheme=scheme)
    assert str(uuid.UUID(first)) == first


@pytest.mark.parametrize("scheme", list(PointIdScheme))
def test_point_ids_differ_by_collection_path_and_index(scheme: PointIdScheme) -> None:
    ids = {
        point_id("handbook", "docs/keys.md", 0, scheme=scheme),
        point_id("handbook", "docs/keys.md", 1, scheme=scheme),
        point_id("handbook", "docs/keys.mdx", 0, scheme=scheme),
        point_id("other", "docs/keys.md", 0, scheme=scheme),
        # Concatenation without a separator would make these two collide.
        point_id("a", "bc", 0, scheme=scheme),
        point_id("ab", "c", 0, scheme=scheme),
    }
    assert len(ids) == 6


def test_the_schemes_never_share_an_id() -> None:
    assert point_id("c", "p", 0, scheme=NAMED) != point_id("c", "p", 0, scheme=BY_FILE)


def test_by_file_ids_carry_their_file() -> None:
    chunks = point_ids("handbook", "docs/keys.md", range(0, 70_000, 1000), scheme=BY_FILE)
    assert {file_key(p) for p in chunks} == {file_key(chunks[0])}
    others = [
        point_id("handbook", "docs/keys.mdx", 0, scheme=BY_FILE),
        point_id("handbook", "docs/key.md", 0, scheme=BY_FILE),
        point_id("other", "docs/keys.md", 0, scheme=BY_FILE),
    ]
    assert len({file_key(p) for p in [chunks[0], *others]}) == 4


def test_a_chunk_index_past_32_bits_is_refused_not_wrapped() -> None:
    assert point_id("c", "p", 2**32 - 1, scheme=BY_FILE).endswith("ffffffff")
    with pytest.raises(ValueError, match="does not fit"):
        point_id("c", "p", 2**32, scheme=BY_FILE)


@pytest.mark.parametrize("scheme", list(PointIdScheme))
def test_point_ids_for_a_range(scheme: PointIdScheme) -> None:
    expected = [point_id("c", "p", 2, scheme=scheme), point_id("c", "p", 3, scheme=scheme)]
    assert point_ids("c", "p", range(2, 4), scheme=scheme) == expected
    assert point_ids("c", "p", range(5, 3), scheme=scheme) == []


def test_content_hash_is_sha256_hex() -> None:
    assert content_hash(b"abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert content_hash(b"abc") != content_hash(b"abd")
