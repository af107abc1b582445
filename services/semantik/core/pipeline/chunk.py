"""Chunkers: pure functions from text to chunks whose sizes are counted in the model's own tokens.

The text is tokenized once; every boundary is chosen in token space, at the start of a word, and a
chunk's text is the slice of the source between its first and last token, so it maps back exactly.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from semantik.core.pipeline.tokens import TextTokenizer, TokenSpans

MIN_CHUNK_SIZE = 16
MAX_CHUNK_SIZE = 8192

# Separator hierarchy of the recursive strategy, coarsest first: a piece that is still too large is
# split at the next level. Each pattern marks where a new piece may begin (its match end).
_SEPARATORS = (
    re.compile(r"\n[ \t]*\n\s*"),  # paragraphs
    re.compile(r"\n\s*"),  # lines
    re.compile(r"(?<=[.!?;:])\s+"),  # sentences
    re.compile(r"\s+"),  # words
)
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")


class ChunkStrategy(StrEnum):
    FIXED = "fixed"
    RECURSIVE = "recursive"
    MARKDOWN = "markdown"


@dataclass(frozen=True, slots=True)
class ChunkingConfig:
    strategy: ChunkStrategy = ChunkStrategy.RECURSIVE
    chunk_size: int = 200
    chunk_overlap: int = 32

    def __post_init__(self) -> None:
        if not MIN_CHUNK_SIZE <= self.chunk_size <= MAX_CHUNK_SIZE:
            raise ValueError(f"chunk_size must be between {MIN_CHUNK_SIZE} and {MAX_CHUNK_SIZE} tokens")
        if self.chunk_overlap < 0:
            raise ValueError("chunk_overlap must not be negative")
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError("chunk_overlap must be smaller than chunk_size")


@dataclass(frozen=True, slots=True)
class Chunk:
    index: int
    text: str
    start: int
    end: int
    token_count: int
    heading: str | None = None


@dataclass(frozen=True, slots=True)
class _Range:
    """Tokens [begin, end) of the document."""

    begin: int
    end: int

    def __len__(self) -> int:
        return self.end - self.begin


class _Document:
    """The text with its token spans and, per separator level, the tokens a piece may begin at."""

    def __init__(self, text: str, spans: TokenSpans) -> None:
        self.text = text
        self.spans = spans
        self.token_starts = [start for start, _ in spans.offsets]
        self._boundaries: dict[int, list[int]] = {}

    def boundaries(self, level: int) -> list[int]:
        if level not in self._boundaries:
            found = {
                bisect.bisect_left(self.token_starts, match.end())
                for match in _SEPARATORS[level].finditer(self.text)
            }
            self._boundaries[level] = sorted(i for i in found if 0 < i < len(self.token_starts))
        return self._boundaries[level]

    def token_at_char(self, char: int) -> int:
        return bisect.bisect_left(self.token_starts, char)

    def chunk(self, index: int, tokens: _Range, heading: str | None) -> Chunk:
        start = self.spans.offsets[tokens.begin][0]
        end = self.spans.offsets[tokens.end - 1][1]
        return Chunk(index, self.text[start:end], start, end, len(tokens), heading)


def chunk_text(text: str, config: ChunkingConfig, tokenizer: TextTokenizer) -> list[Chunk]:
    spans = tokenizer.spans(text)
    if len(spans) == 0:
        return []
    document = _Document(text, spans)
    whole = _Range(0, len(spans))
    if config.strategy is ChunkStrategy.FIXED:
        ranges = [(r, None) for r in _fixed(document, whole, config.chunk_size, config.chunk_overlap)]
    elif config.strategy is ChunkStrategy.RECURSIVE:
        ranges = [(r, None) for r in _recursive(document, whole, config)]
    else:
        ranges = [
            (r, heading)
            for section, heading in _markdown_sections(document)
            for r in _recursive(document, section, config)
        ]
    return [document.chunk(index, tokens, heading) for index, (tokens, heading) in enumerate(ranges)]


def _fixed(document: _Document, whole: _Range, size: int, overlap: int) -> list[_Range]:
    word_starts = document.spans.word_starts
    ranges: list[_Range] = []
    begin = whole.begin
    while begin < whole.end:
        end = min(begin + size, whole.end)
        if end < whole.end:
            # End where the next word starts, unless one word fills the whole window.
            end = next((i for i in range(end, begin, -1) if word_starts[i]), end)
        ranges.append(_Range(begin, end))
        if end >= whole.end:
            break
        first = max(end - overlap, begin + 1)
        begin = next((i for i in range(first, end) if word_starts[i]), end)
    return ranges


def _recursive(document: _Document, section: _Range, config: ChunkingConfig) -> list[_Range]:
    pieces = _split(document, section, 0, config.chunk_size)
    return _merge(pieces, config.chunk_size, config.chunk_overlap)


def _split(document: _Document, tokens: _Range, level: int, size: int) -> list[_Range]:
    if len(tokens) <= size:
        return [tokens]
    if level == len(_SEPARATORS):
        return _fixed(document, tokens, size, 0)
    boundaries = document.boundaries(level)
    lo = bisect.bisect_right(boundaries, tokens.begin)
    hi = bisect.bisect_left(boundaries, tokens.end)
    cuts = [tokens.begin, *boundaries[lo:hi], tokens.end]
    if len(cuts) == 2:
        return _split(document, tokens, level + 1, size)
    pieces: list[_Range] = []
    for begin, end in zip(cuts, cuts[1:], strict=False):
        pieces += _split(document, _Range(begin, end), level + 1, size)
    return pieces


def _merge(pieces: Sequence[_Range], size: int, overlap: int) -> list[_Range]:
    """Greedy merge of contiguous pieces into chunks, each next chunk starting with trailing pieces of
    the previous one that add up to at most `overlap` tokens."""
    ranges: list[_Range] = []
    first = 0
    while first < len(pieces):
        last = first
        while last + 1 < len(pieces) and pieces[last + 1].end - pieces[first].begin <= size:
            last += 1
        ranges.append(_Range(pieces[first].begin, pieces[last].end))
        following = last + 1
        if following == len(pieces):
            break
        start = following
        while (
            start - 1 > first
            and pieces[last].end - pieces[start - 1].begin <= overlap
            and pieces[following].end - pieces[start - 1].begin <= size
        ):
            start -= 1
        first = start
    return ranges


def _markdown_sections(document: _Document) -> list[tuple[_Range, str | None]]:
    """Sections start at ATX headings outside fenced code; each carries its heading trail."""
    heading_starts: list[tuple[int, int, str]] = []
    fence: str | None = None
    position = 0
    for line in document.text.splitlines(keepends=True):
        fence_match = _FENCE.match(line)
        if fence_match:
            marker = fence_match.group(1)
            if fence is None:
                fence = marker[0] * 3
            elif marker.startswith(fence):
                fence = None
        elif fence is None:
            heading = _HEADING.match(line.rstrip("\n"))
            if heading:
                heading_starts.append((position, len(heading.group(1)), (heading.group(2) or "").strip()))
        position += len(line)

    sections: list[tuple[_Range, str | None]] = []
    trail: list[tuple[int, str]] = []
    begin, current = 0, None
    for char, level, title in heading_starts:
        token = document.token_at_char(char)
        if token > begin:
            sections.append((_Range(begin, token), current))
        trail = [(lvl, t) for lvl, t in trail if lvl < level] + [(level, title)]
        begin, current = token, " > ".join(t for _, t in trail if t) or None
    end = len(document.token_starts)
    if end > begin:
        sections.append((_Range(begin, end), current))
    return sections
