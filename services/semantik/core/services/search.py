"""Search: embed the query with the collection's model, ask the store, shape hits with snippets."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from semantik.core.context import Semantik
from semantik.core.embedding import TextKind
from semantik.core.errors import InvalidInputError
from semantik.core.services.collections import load_collection
from semantik.core.store.vectors import SearchFilter

SNIPPET_CHARS = 320
# Bounds on the work a snippet costs on the event loop, whatever the chunk or the query holds.
SNIPPET_SCAN_CHARS = 64 * 1024
MAX_SNIPPET_TERMS = 32
# Single quantifiers over one character class: linear in the text.
WORD = re.compile(r"\w{3,}", re.UNICODE)
_WORD_RUN = re.compile(r"\w+")
STOPWORDS = frozenset(
    [
        "the",
        "and",
        "for",
        "are",
        "but",
        "not",
        "you",
        "all",
        "any",
        "can",
        "her",
        "was",
        "one",
        "our",
        "out",
        "how",
        "what",
        "when",
        "who",
        "why",
        "with",
        "this",
        "that",
        "from",
        "have",
        "has",
        "had",
        "into",
        "must",
        "your",
        "they",
        "them",
        "then",
        "there",
        "their",
        "will",
        "would",
        "should",
        "about",
        "which",
    ]
)


@dataclass(frozen=True, slots=True)
class Hit:
    score: float
    path: str
    chunk_index: int
    text: str
    snippet: str
    highlights: list[tuple[int, int]]
    """Character spans in `snippet` of the query's words, for bold or <mark>."""
    start: int
    end: int
    heading: str | None


async def search(
    app: Semantik,
    name: str,
    query: str,
    *,
    k: int = 10,
    score_threshold: float | None = None,
    search_filter: SearchFilter | None = None,
    per_document: int | None = 1,
) -> list[Hit]:
    """Ranked hits; by default one per file (its best chunk), as a search engine lists pages."""
    if not query.strip():
        raise InvalidInputError("query must not be empty", field="query")
    if not 1 <= k <= 100:
        raise InvalidInputError("k must be between 1 and 100", field="k")
    if per_document is not None and not 1 <= per_document <= 100:
        raise InvalidInputError("max_per_document must be between 1 and 100, or unset", field="max_per_document")
    collection = await load_collection(app, name)
    embedder = await app.embedder_at(collection.embedder_url)
    if embedder.model_name != collection.model_name:
        raise InvalidInputError(
            f"collection {name!r} was indexed with {collection.model_name}, but its embedder runs "
            f"{embedder.model_name}; set SEMANTIK_MODEL_NAME and SEMANTIK_MODEL_PATH to match",
            field="collection",
        )
    vector = (await embedder.embed([query], TextKind.QUERY)).vectors[0]
    found = await app.store.search(
        collection.qdrant_collection,
        vector.tolist(),
        limit=k,
        score_threshold=score_threshold,
        search_filter=search_filter,
        per_document=per_document,
    )
    return [_hit(chunk.score, chunk.payload, query) for chunk in found]


def query_terms(query: str) -> list[str]:
    return [w.lower() for w in WORD.findall(query) if w.lower() not in STOPWORDS]


def make_snippet(text: str, query: str, width: int = SNIPPET_CHARS) -> tuple[str, list[tuple[int, int]]]:
    """A window of the chunk centred on the densest run of query words, with their spans marked.

    It runs on the event loop for every hit, so it is linear: one scan for the words, a sliding window
    for the densest run, and only the first SNIPPET_SCAN_CHARS of a chunk are searched.
    """
    terms = tuple(dict.fromkeys(query_terms(query)))[:MAX_SNIPPET_TERMS]
    if len(text) <= width:
        start = 0
    else:
        starts = [begin for begin, _ in _term_words(text[:SNIPPET_SCAN_CHARS], terms)]
        start = max(0, min(_densest(starts, width) - width // 4, len(text) - width)) if starts else 0
    window = text[start : start + width]
    prefix = "…" if start > 0 else ""
    suffix = "…" if start + width < len(text) else ""
    snippet = prefix + " ".join(window.split()) + suffix
    return snippet, list(_term_words(snippet, terms))


def _term_words(text: str, terms: tuple[str, ...]) -> Iterator[tuple[int, int]]:
    """Spans of the words (runs of word characters) that start with a query term, ignoring case."""
    if not terms:
        return
    longest = max(map(len, terms))
    for word in _WORD_RUN.finditer(text):
        begin = word.start()
        # Only the head of a word can match, so a giant word costs no more than a short one.
        if text[begin : min(begin + longest, word.end())].lower().startswith(terms):
            yield begin, word.end()


def _densest(starts: list[int], width: int) -> int:
    """The first of the (sorted) positions that begins the window of `width` holding the most of them."""
    best, most, following = starts[0], 0, 0
    for index, begin in enumerate(starts):
        while following < len(starts) and starts[following] - begin < width:
            following += 1
        if following - index > most:
            best, most = begin, following - index
    return best


def _hit(score: float, payload: dict[str, Any], query: str) -> Hit:
    text = str(payload.get("text", ""))
    snippet, spans = make_snippet(text, query)
    return Hit(
        score=score,
        path=str(payload["path"]),
        chunk_index=int(payload["chunk_index"]),
        text=text,
        snippet=snippet,
        highlights=spans,
        start=int(payload["start"]),
        end=int(payload["end"]),
        heading=payload.get("heading"),
    )
