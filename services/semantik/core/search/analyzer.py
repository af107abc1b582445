"""The keyword analyzer: text to the terms the sparse (BM25) index stores and a query looks for.

A word is a run of word characters (with any combining accents inside it). Each word is normalised on its
own (Unicode NFKC, then case folding), so its span still refers to the original text; words shorter than
two characters, longer than MAX_WORD_CHARS or on the language's stopword list are dropped, and the rest
are reduced to their Snowball stem. For English this gives the same terms as bm25s's
`tokenize(lower=True, stopwords="en", stemmer=Stemmer("english"))` on ordinary text, the baseline the
sparse retrieval is measured against.

`term_id` maps a term to the index of its dimension in a sparse vector. The ids are fixed forever: every
stored sparse vector holds them, so changing the hash (or the analysis) invalidates every index built
before. Two terms may share an id (a 32-bit hash); with a vocabulary of a million terms a given term
collides with another about once in four thousand, and a collision only merges the two terms' weights.
"""

from __future__ import annotations

import functools
import hashlib
import re
import threading
import unicodedata
from collections.abc import Iterator
from typing import Literal, get_args

import Stemmer
from bm25s.stopwords import (
    STOPWORDS_DANISH,
    STOPWORDS_DUTCH,
    STOPWORDS_EN,
    STOPWORDS_FRENCH,
    STOPWORDS_GERMAN,
    STOPWORDS_ITALIAN,
    STOPWORDS_NORWEGIAN,
    STOPWORDS_PORTUGUESE,
    STOPWORDS_RUSSIAN,
    STOPWORDS_SPANISH,
    STOPWORDS_SWEDISH,
    STOPWORDS_TURKISH,
)

from semantik.core.errors import InvalidInputError

Language = Literal[
    "danish",
    "dutch",
    "english",
    "french",
    "german",
    "italian",
    "norwegian",
    "portuguese",
    "russian",
    "spanish",
    "swedish",
    "turkish",
]
"""The languages with a stopword list and a Snowball stemmer: what a collection's `search.language` may be."""
LANGUAGES: tuple[str, ...] = get_args(Language)
_STOPWORDS: dict[str, tuple[str, ...]] = {
    "danish": STOPWORDS_DANISH,
    "dutch": STOPWORDS_DUTCH,
    "english": STOPWORDS_EN,
    "french": STOPWORDS_FRENCH,
    "german": STOPWORDS_GERMAN,
    "italian": STOPWORDS_ITALIAN,
    "norwegian": STOPWORDS_NORWEGIAN,
    "portuguese": STOPWORDS_PORTUGUESE,
    "russian": STOPWORDS_RUSSIAN,
    "spanish": STOPWORDS_SPANISH,
    "swedish": STOPWORDS_SWEDISH,
    "turkish": STOPWORDS_TURKISH,
}

# bm25s's token pattern (scikit-learn's, \b\w\w+\b) keeps words of two characters or more.
MIN_WORD_CHARS = 2
# A longer "word" is a hash, a base64 blob or an attack, never a keyword. Dropping it before normalising or
# stemming bounds the work per word, so a 10 MB word costs only the linear scan that finds it.
MAX_WORD_CHARS = 64
# Word characters and the combining diacritical marks, so that a decomposed accent ("e" + U+0301) stays
# inside its word until NFKC composes it. One character class under one quantifier: linear time.
WORD = re.compile(r"[\w\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]+")
# Distinct words whose analysis is remembered per analyzer: natural text repeats its words, so most
# lookups hit, and the bound keeps memory flat whatever the text.
_CACHED_WORDS = 65_536


def fold(word: str) -> str:
    """NFKC and case folding, normalised again since folding can undo NFKC's composition (as Unicode's
    NFKC_Casefold does): full-width letters and ASCII ones, "ﬁ" and "fi", "Straße" and "STRASSE" fold alike."""
    if word.isascii():
        return word.lower()
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", word).casefold())


class Analyzer:
    """One language's analysis. Safe to share between threads: each thread gets its own stemmer."""

    def __init__(self, language: str = "english") -> None:
        if language not in _STOPWORDS:
            raise InvalidInputError(
                f"unknown language {language!r}; the keyword index knows {', '.join(LANGUAGES)}", field="language"
            )
        self.language = language
        self._stopwords = frozenset(fold(word) for word in _STOPWORDS[language])
        # PyStemmer's stemmer keeps state while it stems and must not be called from two threads at once.
        self._stemmers = threading.local()
        self._analyse = functools.lru_cache(maxsize=_CACHED_WORDS)(self._analyse_word)

    def terms(self, text: str) -> list[str]:
        """The analysed terms of `text`, in order, repeats kept."""
        return [term for _, _, term in self.word_spans(text) if term is not None]

    def word_spans(self, text: str) -> Iterator[tuple[int, int, str | None]]:
        """Each word's span in `text` and its term, None for a stopword or a dropped word.

        A word that NFKC splits (the fraction "½" becomes 1, a fraction slash, 2) gives one entry per piece,
        each with the span of the whole word."""
        for word in WORD.finditer(text):
            start, end = word.span()
            if end - start > MAX_WORD_CHARS:
                yield start, end, None
                continue
            for term in self._analyse(word.group()):
                yield start, end, term

    def _analyse_word(self, word: str) -> tuple[str | None, ...]:
        return tuple(self._term(piece) for piece in WORD.findall(fold(word))) or (None,)

    def _term(self, piece: str) -> str | None:
        # NFKC can lengthen a word (one character may become eighteen), so the bounds apply again here.
        if not MIN_WORD_CHARS <= len(piece) <= MAX_WORD_CHARS or piece in self._stopwords:
            return None
        stemmer: Stemmer.Stemmer | None = getattr(self._stemmers, "stemmer", None)
        if stemmer is None:
            # Without PyStemmer's own cache, which _analyse already is, and which slows a stream of new words.
            stemmer = self._stemmers.stemmer = Stemmer.Stemmer(self.language, 0)
        term: str = stemmer.stemWord(piece)
        return term


@functools.lru_cache(maxsize=len(LANGUAGES))
def analyzer_for(language: str) -> Analyzer:
    return Analyzer(language)


def term_id(term: str) -> int:
    """The term's dimension in a sparse vector: an unsigned 32-bit hash, fixed forever (see the module)."""
    return int.from_bytes(hashlib.blake2b(term.encode("utf-8"), digest_size=4).digest(), "little")
