"""Incremental planning: which files to (re)index, which are unchanged, which documents were removed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from semantik.core.pipeline.scan import RejectedFile, ScannedFile


@dataclass(frozen=True, slots=True)
class KnownDocument:
    """What the metadata DB remembers of a document."""

    path: str
    content_hash: str | None
    """Hash of the content last seen, indexed or failed; None for files rejected before reading."""
    status: str
    error: str | None
    chunk_count: int
    """Points of this document in the store (ids 0..chunk_count-1)."""
    size: int
    mtime: float


@dataclass(frozen=True, slots=True)
class HashedFile:
    file: ScannedFile
    content_hash: str


@dataclass(frozen=True, slots=True)
class IndexPlan:
    to_index: list[HashedFile]
    unchanged: list[HashedFile]
    to_reject: list[RejectedFile]
    """Rejected files whose failure is new, or whose reason changed: they get a failed row."""
    still_rejected: list[RejectedFile]
    removed: list[KnownDocument]

    @property
    def changes(self) -> int:
        return len(self.to_index) + len(self.to_reject) + len(self.removed)


def plan_index(
    current: Sequence[HashedFile],
    rejected: Sequence[RejectedFile],
    known: Mapping[str, KnownDocument],
    *,
    full: bool = False,
) -> IndexPlan:
    to_index: list[HashedFile] = []
    unchanged: list[HashedFile] = []
    for hashed in current:
        previous = known.get(hashed.file.relpath)
        if not full and previous is not None and previous.content_hash == hashed.content_hash:
            unchanged.append(hashed)
        else:
            to_index.append(hashed)

    to_reject: list[RejectedFile] = []
    still_rejected: list[RejectedFile] = []
    for rejection in rejected:
        previous = known.get(rejection.relpath)
        same = previous is not None and previous.content_hash is None and previous.error == rejection.reason
        (still_rejected if same and not full else to_reject).append(rejection)

    present = {hashed.file.relpath for hashed in current} | {rejection.relpath for rejection in rejected}
    removed = [document for path, document in sorted(known.items()) if path not in present]
    return IndexPlan(to_index, unchanged, to_reject, still_rejected, removed)
