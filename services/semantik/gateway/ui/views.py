"""Pure functions from search results and collection records to what a page shows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from urllib.parse import quote

from semantik.gateway.schemas import HitOut


@dataclass(frozen=True, slots=True)
class Segment:
    text: str
    marked: bool


@dataclass(slots=True)
class DocumentGroup:
    """One file's hits, in the order the search ranked them; the file ranks by its best hit."""

    collection: str
    path: str
    score: float
    source_link: str | None
    hits: list[HitOut] = field(default_factory=list)


def segments(text: str, spans: Sequence[tuple[int, int]]) -> list[Segment]:
    """`text` cut at the highlight spans; spans out of order, overlapping or outside the text are clipped,
    so a bad span can only lose a highlight, never text."""
    out: list[Segment] = []
    at = 0
    for start, end in sorted(spans):
        start, end = max(start, at), min(end, len(text))
        if start >= end:
            continue
        if start > at:
            out.append(Segment(text[at:start], False))
        out.append(Segment(text[start:end], True))
        at = end
    if at < len(text):
        out.append(Segment(text[at:], False))
    return out


def group_by_document(hits: Sequence[HitOut], source_urls: Mapping[str, str]) -> list[DocumentGroup]:
    groups: dict[tuple[str, str], DocumentGroup] = {}
    for hit in hits:
        key = (hit.collection, hit.path)
        if key not in groups:
            base = source_url_for(hit.collection, source_urls)
            groups[key] = DocumentGroup(hit.collection, hit.path, hit.score, source_link(base, hit.path))
        groups[key].hits.append(hit)
    return list(groups.values())


def source_url_for(collection: str, source_urls: Mapping[str, str]) -> str | None:
    """The base URL configured for the collection: its name, else the first pattern that matches it."""
    if collection in source_urls:
        return source_urls[collection]
    return next((url for pattern, url in source_urls.items() if fnmatchcase(collection, pattern)), None)


def source_link(base: str | None, path: str) -> str | None:
    # Settings accept only http(s) bases; each path segment is percent-encoded, so a file name can add
    # neither a scheme nor a query to the link.
    if base is None:
        return None
    return base.rstrip("/") + "/" + quote(path, safe="/")


def phase(*, active: bool, reindex: bool, documents: int, indexed: int, failed: int) -> str:
    """The embedded and service modes' phase of a collection (cluster mode shows its resource's)."""
    if active:
        return "Indexing"
    if reindex:
        return "Reindex pending"
    if documents == 0:
        return "Empty"
    if indexed == 0 and failed > 0:
        return "Failed"
    return "Ready"
