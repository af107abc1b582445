from __future__ import annotations

from pathlib import Path

from semantik.core.pipeline.plan import HashedFile, KnownDocument, plan_index
from semantik.core.pipeline.scan import RejectedFile, ScannedFile


def hashed(path: str, digest: str) -> HashedFile:
    return HashedFile(ScannedFile(path, Path("/r") / path, 10, 1.0), digest)


def known(
    path: str, digest: str | None, *, status: str = "indexed", error: str | None = None, chunks: int = 2
) -> KnownDocument:
    return KnownDocument(path, digest, status, error, chunks, 10, 1.0)


def test_unchanged_hash_is_skipped_and_changed_or_new_is_indexed() -> None:
    plan = plan_index(
        [hashed("a.md", "h1"), hashed("b.md", "h2-new"), hashed("c.md", "h3")],
        [],
        {"a.md": known("a.md", "h1"), "b.md": known("b.md", "h2")},
    )
    assert [h.file.relpath for h in plan.unchanged] == ["a.md"]
    assert [h.file.relpath for h in plan.to_index] == ["b.md", "c.md"]
    assert plan.removed == []
    assert plan.changes == 2


def test_full_reindexes_everything() -> None:
    plan = plan_index([hashed("a.md", "h1")], [], {"a.md": known("a.md", "h1")}, full=True)
    assert [h.file.relpath for h in plan.to_index] == ["a.md"]
    assert plan.unchanged == []


def test_missing_files_are_removed_with_their_chunk_counts() -> None:
    plan = plan_index(
        [hashed("a.md", "h1")], [], {"a.md": known("a.md", "h1"), "gone.md": known("gone.md", "x", chunks=7)}
    )
    assert [(d.path, d.chunk_count) for d in plan.removed] == [("gone.md", 7)]


def test_unchanged_failed_file_is_not_retried() -> None:
    plan = plan_index(
        [hashed("bad.pdf", "h")], [], {"bad.pdf": known("bad.pdf", "h", status="failed", error="corrupt PDF")}
    )
    assert plan.to_index == []
    assert plan.changes == 0


def test_rejections_are_recorded_once_until_their_reason_changes() -> None:
    big = RejectedFile("big.bin", "larger than the limit")
    first = plan_index([], [big], {})
    assert first.to_reject == [big]
    again = plan_index([], [big], {"big.bin": known("big.bin", None, status="failed", error="larger than the limit")})
    assert again.to_reject == [] and again.still_rejected == [big]
    assert again.removed == []
    changed = RejectedFile("big.bin", "permission denied")
    assert plan_index(
        [], [changed], {"big.bin": known("big.bin", None, status="failed", error="larger")}
    ).to_reject == [changed]


def test_a_rejected_file_that_was_indexed_before_is_rejected_not_removed() -> None:
    plan = plan_index([], [RejectedFile("a.md", "permission denied")], {"a.md": known("a.md", "h1")})
    assert [r.relpath for r in plan.to_reject] == ["a.md"]
    assert plan.removed == []
