from __future__ import annotations

import uuid

from semantik.core.pipeline.ids import content_hash, point_id, point_ids


def test_point_ids_are_deterministic_uuids() -> None:
    first = point_id("handbook", "docs/keys.md", 3)
    assert first == point_id("handbook", "docs/keys.md", 3)
    assert uuid.UUID(first).version == 5


def test_point_ids_differ_by_collection_path_and_index() -> None:
    ids = {
        point_id("handbook", "docs/keys.md", 0),
        point_id("handbook", "docs/keys.md", 1),
        point_id("handbook", "docs/keys.mdx", 0),
        point_id("other", "docs/keys.md", 0),
        # Concatenation without a separator would make these two collide.
        point_id("a", "bc", 0),
        point_id("ab", "c", 0),
    }
    assert len(ids) == 6


def test_point_ids_for_a_range() -> None:
    assert point_ids("c", "p", range(2, 4)) == [point_id("c", "p", 2), point_id("c", "p", 3)]
    assert point_ids("c", "p", range(5, 3)) == []


def test_content_hash_is_sha256_hex() -> None:
    assert content_hash(b"abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert content_hash(b"abc") != content_hash(b"abd")
