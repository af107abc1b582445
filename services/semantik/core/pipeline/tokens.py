"""Token spans of a text under the embedding model's own tokenizer: what chunk sizes are counted in."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from tokenizers import Tokenizer

if TYPE_CHECKING:
    # transformers takes seconds to import; only the type is needed here.
    from transformers import PreTrainedTokenizerBase


@dataclass(frozen=True, slots=True)
class TokenSpans:
    offsets: tuple[tuple[int, int], ...]
    """Character span of each content token in the source text (no special tokens)."""
    word_starts: tuple[bool, ...]
    """True where a token begins a pre-tokenized word: a chunk may start there without splitting a word."""

    def __post_init__(self) -> None:
        if len(self.offsets) != len(self.word_starts):
            raise ValueError("offsets and word_starts must have one entry per token")

    def __len__(self) -> int:
        return len(self.offsets)


class TextTokenizer(Protocol):
    def spans(self, text: str) -> TokenSpans: ...

    def count(self, text: str) -> int:
        """Number of content tokens, special tokens not included."""
        ...


class HFTextTokenizer:
    """Adapter over a Hugging Face fast tokenizer that calls its Rust backend directly.

    The backend has no model_max_length, so a document of any length is tokenized whole, without the
    "sequence length is longer than the specified maximum" warning the Python wrapper logs. It works on a
    copy of the backend because a model's tokenizer.json often carries truncation and padding settings
    (all-MiniLM-L6-v2 truncates at 128) that must not apply here, while the caller's tokenizer, perhaps
    shared with the embedder, must keep them.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase | Tokenizer) -> None:
        if isinstance(tokenizer, Tokenizer):
            backend = tokenizer
        elif isinstance(getattr(tokenizer, "backend_tokenizer", None), Tokenizer):
            backend = tokenizer.backend_tokenizer
        else:
            kind = type(tokenizer).__name__
            raise TypeError(f"a fast (Rust-backed) tokenizer is needed for offsets, not {kind}")
        self._backend = Tokenizer.from_str(backend.to_str())
        self._backend.no_truncation()
        self._backend.no_padding()

    def spans(self, text: str) -> TokenSpans:
        encoding = self._backend.encode(text, add_special_tokens=False)
        words = encoding.word_ids
        # Each token's word against the previous token's (None before the first): a change starts a word.
        previous = [None, *words]
        starts = tuple(word is None or word != before for word, before in zip(words, previous, strict=False))
        return TokenSpans(tuple(encoding.offsets), starts)

    def count(self, text: str) -> int:
        return len(self._backend.encode(text, add_special_tokens=False).ids)


def load_tokenizer(model_dir: Path) -> HFTextTokenizer:
    """The tokenizer of a model directory on disk; never downloads (and names the setting if it is absent)."""
    from semantik.core.embedding.loading import load_tokenizer as load_pretrained

    return HFTextTokenizer(load_pretrained(model_dir))
