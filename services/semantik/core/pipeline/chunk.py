"""Chunkers: pure functions from text to chunks whose sizes are counted in the model's own tokens.

The text is tokenized once and every boundary is chosen in token space, at the start of a word. A
chunk's text is the slice of the source from its first token's start to its last token's end, so it
maps back exactly, and it re-tokenizes to the same tokens: WordPiece encodes each pre-tokenized word on
its own, and a prefix of a word keeps that word's first pieces. Only a single word longer than a chunk
is cut inside, and a piece starting inside a word is re-tokenized to check its size, since its first
pieces change.

No chunk is longer than MAX_CHUNK_CHARS characters, whatever the text. A tokenizer may give one token to
a whole run of characters (WordPiece turns any word over 100 characters into a single [UNK], so a 4 MB
file without a space would be one token), and a few tokens may sit far apart across blank space. So a
token longer than _MAX_TOKEN_CHARS is split into pieces of at most that many characters (each over 100,
so each still re-tokenizes to one [UNK]), and a section is cut before a token wherever the chunk_size
tokens ending there would span more than MAX_CHUNK_CHARS. Ordinary text never meets either bound: the
largest chunk_size of ordinary prose spans well under MAX_CHUNK_CHARS.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from itertools import compress, pairwise

from semantik.core.pipeline.tokens import TextTokenizer, TokenSpans

MIN_CHUNK_SIZE = 16
MAX_CHUNK_SIZE = 8192
MAX_CHUNK_CHARS = 64 * 1024
_MAX_TOKEN_CHARS = 1024

# Separator hierarchy of the recursive strategy, coarsest first: a piece still too large is split at the
# next level. A piece may begin at the token holding the first character after a match (a byte-level BPE
# such as Qwen's glues the space before a word to it). Then come all word starts, then anywhere.
_SEPARATORS = (
    re.compile(r"\n\s*\n\s*"),  # paragraphs: a blank line
    re.compile(r"\n\s*"),  # lines
    re.compile(r"[.?!]\s+"),  # sentences
    re.compile(r"\s+"),  # spaces
)
_WORD_LEVEL = len(_SEPARATORS)

_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})(.*)")

_Span = tuple[int, int]
"""Tokens [begin, end) of the document."""


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
        try:
            # Settings files and CRDs carry a plain string; a typo must fail here, not pick a strategy.
            object.__setattr__(self, "strategy", ChunkStrategy(self.strategy))
        except ValueError:
            choices = ", ".join(ChunkStrategy)
            raise ValueError(f"strategy must be one of {choices}, got {self.strategy!r}") from None
        if not MIN_CHUNK_SIZE <= self.chunk_size <= MAX_CHUNK_SIZE:
            raise ValueError(
                f"chunk_size must be between {MIN_CHUNK_SIZE} and {MAX_CHUNK_SIZE} tokens, got {self.chunk_size}"
            )
        if self.chunk_overlap < 0:
            raise ValueError(f"chunk_overlap must not be negative, got {self.chunk_overlap}")
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError(
                f"chunk_overlap ({self.chunk_overlap}) must be smaller than chunk_size ({self.chunk_size})"
            )


@dataclass(frozen=True, slots=True)
class Chunk:
    index: int
    """0-based position within the document."""
    text: str
    start: int
    """Character offsets into the source: source[start:end] == text."""
    end: int
    token_count: int
    heading: str | None = None
    """Markdown only: the trail of enclosing headings, such as "Install > Linux"."""


def chunk_text(text: str, config: ChunkingConfig, tokenizer: TextTokenizer) -> list[Chunk]:
    spans = tokenizer.spans(text)
    if len(spans) == 0:
        return []
    document = _Document(text, spans, tokenizer)
    size, overlap = config.chunk_size, config.chunk_overlap
    if config.strategy == ChunkStrategy.MARKDOWN:
        sections = _markdown_sections(document)
    else:
        sections = [((0, len(document)), None)]
    sections = [(part, heading) for section, heading in sections for part in document.bounded(section, size)]
    chunks: list[tuple[_Span, str | None]] = []
    for section, heading in sections:
        if config.strategy == ChunkStrategy.FIXED:
            ranges = _fixed(document, section, size, overlap)
        else:
            ranges = _recursive(document, section, size, overlap)
        chunks += [(tokens, heading) for tokens in ranges]
    return [document.chunk(index, tokens, heading) for index, (tokens, heading) in enumerate(chunks)]


class _Document:
    """The text with its tokens, and per separator level the tokens a piece may begin at (found lazily)."""

    def __init__(self, text: str, spans: TokenSpans, tokenizer: TextTokenizer) -> None:
        self.text = text
        self.offsets, self.word_starts = _split_long_tokens(spans)
        self.token_ends = [end for _, end in self.offsets]
        self._tokenizer = tokenizer
        self._word_start_tokens = list(compress(range(len(self.offsets)), self.word_starts))
        self._level_starts: dict[int, list[int]] = {}

    def __len__(self) -> int:
        return len(self.offsets)

    def piece_starts(self, level: int) -> list[int]:
        """Sorted tokens where a piece may begin at this level of the separator hierarchy."""
        if level == _WORD_LEVEL:
            return self._word_start_tokens
        if level not in self._level_starts:
            found = {self.token_at(match.end()) for match in _SEPARATORS[level].finditer(self.text)}
            self._level_starts[level] = sorted(t for t in found if t < len(self) and self.word_starts[t])
        return self._level_starts[level]

    def token_at(self, char: int) -> int:
        """The token holding this character or, where no token does (whitespace), the next one."""
        return bisect.bisect_right(self.token_ends, char)

    def last_word_start(self, after: int, until: int) -> int | None:
        """The last word start in (after, until]."""
        i = bisect.bisect_right(self._word_start_tokens, until) - 1
        return self._word_start_tokens[i] if i >= 0 and self._word_start_tokens[i] > after else None

    def first_word_start(self, since: int, before: int) -> int | None:
        """The first word start in [since, before)."""
        i = bisect.bisect_left(self._word_start_tokens, since)
        found = i < len(self._word_start_tokens) and self._word_start_tokens[i] < before
        return self._word_start_tokens[i] if found else None

    def fit(self, begin: int, end: int, size: int) -> int:
        """An end <= `end` at which tokens [begin, end), starting inside a word, re-tokenize on their own to
        at most `size` tokens (one token is taken as fitting, for progress). Only an overlong word gets
        here, so re-tokenizing is rare."""
        while end - begin > 1:
            text = self.text[self.offsets[begin][0] : self.offsets[end - 1][1]]
            excess = self._tokenizer.count(text) - size
            if excess <= 0:
                break
            end = max(begin + 1, end - excess)
        return end

    def bounded(self, section: _Span, size: int) -> list[_Span]:
        """The section cut so that no `size` consecutive tokens in a part span more than MAX_CHUNK_CHARS
        characters: at a word start where one will do, else at the token that would overflow."""
        begin, end = section
        if self.token_ends[end - 1] - self.offsets[begin][0] <= MAX_CHUNK_CHARS:
            return [section]
        cuts = [begin]
        for token in range(begin, end):
            first = max(cuts[-1], token - size + 1)
            if self.token_ends[token] - self.offsets[first][0] > MAX_CHUNK_CHARS:
                cut = self.last_word_start(cuts[-1], token)
                if cut is None or self.token_ends[token] - self.offsets[cut][0] > MAX_CHUNK_CHARS:
                    cut = token
                cuts.append(cut)
        return list(pairwise([*cuts, end]))

    def chunk(self, index: int, tokens: _Span, heading: str | None) -> Chunk:
        begin, end = tokens
        start, stop = self.offsets[begin][0], self.offsets[end - 1][1]
        return Chunk(index, self.text[start:stop], start, stop, end - begin, heading)


def _split_long_tokens(spans: TokenSpans) -> tuple[list[tuple[int, int]], list[bool]]:
    """The tokens with each one longer than _MAX_TOKEN_CHARS split into even pieces of at most that many
    characters; only its first piece starts a word."""
    offsets, word_starts = list(spans.offsets), list(spans.word_starts)
    if all(end - start <= _MAX_TOKEN_CHARS for start, end in offsets):
        return offsets, word_starts
    split_offsets: list[tuple[int, int]] = []
    split_starts: list[bool] = []
    for (start, end), word_start in zip(offsets, word_starts, strict=True):
        pieces = -(-(end - start) // _MAX_TOKEN_CHARS)
        bounds = [start + (end - start) * piece // pieces for piece in range(pieces + 1)]
        split_offsets += pairwise(bounds)
        split_starts += [word_start] + [False] * (pieces - 1)
    return split_offsets, split_starts


def _fixed(document: _Document, section: _Span, size: int, overlap: int) -> list[_Span]:
    """Windows of at most `size` tokens, ending where a word starts; each next one starts at a word start
    at most `overlap` tokens before the previous end, or at that end when no such word start will do."""
    begin, section_end = section
    windows: list[_Span] = []
    while True:
        end = min(begin + size, section_end)
        word_end = document.last_word_start(begin, end) if end < section_end else None
        if word_end is not None:
            end = word_end
        if not document.word_starts[begin]:
            end = document.fit(begin, end, size)
        windows.append((begin, end))
        if end == section_end:
            return windows
        following_word = document.first_word_start(end + 1, section_end)
        reach = section_end if following_word is None else following_word
        # Late enough that the next window reaches a word start past this end, or it would end here too.
        since = max(end - overlap, begin + 1, reach - size)
        next_begin = document.first_word_start(since, end)
        begin = end if next_begin is None else next_begin


def _recursive(document: _Document, section: _Span, size: int, overlap: int) -> list[_Span]:
    cuts = [*_piece_starts(document, section, 0, size), section[1]]
    return _merge(document, cuts, size, overlap)


def _piece_starts(document: _Document, tokens: _Span, level: int, size: int) -> Iterator[int]:
    """Where the pieces of `tokens` begin, splitting at ever finer separators until no piece has more
    than `size` tokens."""
    begin, end = tokens
    if end - begin <= size:
        yield begin
    elif level > _WORD_LEVEL:
        # One word longer than a chunk: the only place a cut falls inside a word.
        yield from (first for first, _ in _fixed(document, tokens, size, 0))
    else:
        starts = document.piece_starts(level)
        inner = starts[bisect.bisect_right(starts, begin) : bisect.bisect_left(starts, end)]
        for piece in pairwise([begin, *inner, end]):
            yield from _piece_starts(document, piece, level + 1, size)


def _merge(document: _Document, cuts: list[int], size: int, overlap: int) -> list[_Span]:
    """Greedy merge of consecutive pieces (piece i is tokens cuts[i] to cuts[i + 1]) into chunks of at most
    `size` tokens, each next chunk starting with trailing pieces of the previous one that add up to at
    most `overlap` tokens.

    A piece that starts inside a word (only an overlong word has them) stays a chunk of its own: it was cut
    to re-tokenize within `size` by itself, and the word pieces it turns into may outnumber its tokens.
    """
    pieces = len(cuts) - 1
    chunks: list[_Span] = []
    first = 0
    while True:
        last = first
        if document.word_starts[cuts[first]]:
            while last + 1 < pieces and cuts[last + 2] - cuts[first] <= size:
                last += 1
        chunks.append((cuts[first], cuts[last + 1]))
        following = last + 1
        if following == pieces:
            return chunks
        start = following
        while (
            start - 1 > first
            and cuts[following] - cuts[start - 1] <= overlap
            and cuts[following + 1] - cuts[start - 1] <= size
        ):
            start -= 1
        first = start


def _markdown_sections(document: _Document) -> list[tuple[_Span, str | None]]:
    """The document cut at each ATX heading, with the trail of headings each section lies under."""
    sections: list[tuple[_Span, str | None]] = []
    trail: list[tuple[int, str]] = []
    begin, heading = 0, None
    for position, level, title in _atx_headings(document.text):
        token = document.token_at(position)
        if token > begin:
            sections.append(((begin, token), heading))
        trail = [*(entry for entry in trail if entry[0] < level), (level, title)]
        begin, heading = token, " > ".join(title for _, title in trail if title) or None
    sections.append(((begin, len(document)), heading))
    return sections


def _atx_headings(text: str) -> Iterator[tuple[int, int, str]]:
    """(character position, level, title) of each ATX heading line outside fenced code blocks."""
    fence: str | None = None
    position = 0
    for line in text.split("\n"):
        fence_match = _FENCE.match(line)
        if fence is not None:
            if fence_match and _closes(fence, fence_match):
                fence = None
        elif fence_match and not (fence_match[1][0] == "`" and "`" in fence_match[2]):
            fence = fence_match[1]
        elif (heading := _atx_heading(line.rstrip())) is not None:
            yield position, heading[0], heading[1].strip()
        position += len(line) + 1


def _closes(fence: str, line: re.Match[str]) -> bool:
    marker, rest = line[1], line[2]
    return marker[0] == fence[0] and len(marker) >= len(fence) and not rest.strip()


def _atx_heading(line: str) -> tuple[int, str] | None:
    """(level, title) of an ATX heading line without trailing whitespace, else None: up to three spaces,
    one to six "#", then nothing or blanks and the title, less a closing run of "#" after a blank.

    A hand-written scan: the regular expression it replaces backtracked quadratically over blanks."""
    indent = len(line) - len(line.lstrip(" "))
    hashes = len(line) - indent - len(line[indent:].lstrip("#"))
    if indent > 3 or not 1 <= hashes <= 6:
        return None
    rest = line[indent + hashes :]
    if not rest:
        return hashes, ""
    if rest[0] not in " \t":
        return None
    title = rest.lstrip(" \t")
    closed = title.rstrip("#")
    if len(closed) < len(title) and closed[-1:] in (" ", "\t"):
        title = closed.rstrip(" \t")
    return hashes, title
