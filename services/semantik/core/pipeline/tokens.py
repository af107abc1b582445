"""Token spans of a text under the embedding model's own tokenizer: what chunk sizes are counted in."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tokenizers import Tokenizer
from transformers import PreTrainedTokenizerBase


@dataclass(frozen=True, slots=True)
class TokenSpans:
    offsets: tuple[tuple[int, int], ...]
    """Character span of each content token in the source text (no special tokens)."""
    word_starts: tuple[bool, ...]
    """True where a token begins a pre-tokenized word: a chunk may start there without splitting a word."""

    def __len__(self) -> int:
        return len(self.offsets)


class TextTokenizer(Protocol):
    def spans(self, text: str) -> TokenSpans: ...

    def count(self, text: str) -> int: ...


class HFTextTokenizer:
    """Adapter over a Hugging Face fast tokenizer, using its Rust backend directly.

    The backend has no model_max_length, so long documents are tokenized whole, without truncation
    and without the "sequence is longer than the maximum" warning the Python wrapper prints.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase | Tokenizer) -> None:
        backend = tokenizer if isinstance(tokenizer, Tokenizer) else tokenizer.backend_tokenizer
        backend = Tokenizer.from_str(backend.to_str())
        backend.no_truncation()
        backend.no_padding()
        self._backend = backend

    @classmethod
    def from_dir(cls, model_dir: Path) -> HFTextTokenizer:
        return cls(Tokenizer.from_file(str(model_dir / "tokenizer.json")))

    def spans(self, text: str) -> TokenSpans:
        encoding = self._backend.encode(text, add_special_tokens=False)
        offsets = tuple((int(a), int(b)) for a, b in encoding.offsets)
        words = encoding.word_ids
        starts = tuple(i == 0 or words[i] is None or words[i] != words[i - 1] for i in range(len(words)))
        return TokenSpans(offsets, starts)

    def count(self, text: str) -> int:
        return len(self._backend.encode(text, add_special_tokens=False).ids)
