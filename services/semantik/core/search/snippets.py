"""Snippets: a window of a chunk around the query's words, with those words marked.

A word is marked when the analyzer gives it one of the query's terms, so "rotating" in a query marks
"rotation" and "ROTATE" in the text, and stopwords are never marked.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator

from semantik.core.search.analyzer import WORD, Analyzer

SNIPPET_CHARS = 320
# Bounds the work a snippet costs on the event loop, whatever the chunk holds.
SNIPPET_SCAN_CHARS = 64 * 1024


def make_snippet(
    text: str, terms: Collection[str], analyzer: Analyzer, width: int = SNIPPET_CHARS
) -> tuple[str, list[tuple[int, int]]]:
    """A window of `text` centred on the densest run of words with one of `terms` (the query's analysed
    terms), whitespace collapsed, "…" where it cuts the text, and the spans of those words in it.

    It runs on the event loop for every hit, so it is linear: one scan for the words, a sliding window
    for the densest run, and only the first SNIPPET_SCAN_CHARS of a chunk are searched.
    """
    wanted = frozenset(terms)
    if len(text) <= width:
        start = 0
    else:
        starts = [begin for begin, _ in _marked_words(text[:SNIPPET_SCAN_CHARS], wanted, analyzer)]
        start = max(0, min(_densest(starts, width) - width // 4, len(text) - width)) if starts else 0
    end = start + width
    prefix = "…" if start > 0 else ""
    suffix = "…" if end < len(text) else ""
    snippet = prefix + " ".join(text[start:end].split()) + suffix
    spans = list(_marked_words(snippet, wanted, analyzer))
    # A word the window cuts in two is not the word the text holds: "unrotated" cut to "rotated".
    if prefix and _inside_a_word(text, start) and spans and spans[0][0] == len(prefix):
        spans.pop(0)
    if suffix and _inside_a_word(text, end) and spans and spans[-1][1] == len(snippet) - len(suffix):
        spans.pop()
    return snippet, spans


def marked_spans(text: str, terms: Collection[str], analyzer: Analyzer) -> list[tuple[int, int]]:
    """The spans of the words of `text` (its first SNIPPET_SCAN_CHARS) that carry one of `terms`: a whole
    chunk's highlights, as `make_snippet` marks its window."""
    return list(_marked_words(text[:SNIPPET_SCAN_CHARS], frozenset(terms), analyzer))


def _marked_words(text: str, wanted: frozenset[str], analyzer: Analyzer) -> Iterator[tuple[int, int]]:
    if not wanted:
        return
    previous = None
    for begin, end, term in analyzer.word_spans(text):
        # A word that NFKC splits comes once per piece, each with the same span: mark it once.
        if term in wanted and (begin, end) != previous:
            previous = begin, end
            yield previous


def _inside_a_word(text: str, cut: int) -> bool:
    return 0 < cut < len(text) and WORD.fullmatch(text, cut - 1, cut + 1) is not None


def _densest(starts: list[int], width: int) -> int:
    """The first of the (sorted) positions that begins the window of `width` holding the most of them."""
    best, most, following = starts[0], 0, 0
    for index, begin in enumerate(starts):
        while following < len(starts) and starts[following] - begin < width:
            following += 1
        if following - index > most:
            best, most = begin, following - index
    return best
