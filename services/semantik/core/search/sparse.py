"""BM25 as sparse vectors: a chunk's term-frequency weights and a query's term counts, keyed by term id.

The score of a chunk is the dot product of the two, with Qdrant multiplying each dimension by its IDF
(`Modifier.IDF`: ln(1 + (N - n + 0.5) / (n + 0.5)), Lucene's). That is Lucene's BM25 as bm25s computes it
(method "lucene"): per query term, IDF * tf / (tf + k1 * (1 - b + b * length / average_length)), without the
classic constant factor (k1 + 1), which Lucene dropped as it changes no ranking.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from semantik.core.search.analyzer import term_id

K1 = 1.5
B = 0.75


@dataclass(frozen=True, slots=True)
class SparseVector:
    """Term ids in ascending order, each once, with their weights; terms whose ids collide add up."""

    indices: tuple[int, ...]
    values: tuple[float, ...]


def document_vector(terms: Sequence[str], average_length: float, *, k1: float = K1, b: float = B) -> SparseVector:
    """A chunk's BM25 weights, IDF left to the store: `terms` are its analysed terms, `average_length` the
    collection's mean count of them per chunk (an unknown or zero mean counts as this chunk's length)."""
    length = len(terms)
    if average_length <= 0:
        average_length = length or 1
    saturation = k1 * (1 - b + b * length / average_length)
    return _by_id({term: tf / (tf + saturation) for term, tf in Counter(terms).items()})


def query_vector(terms: Sequence[str]) -> SparseVector:
    """A query's weights: how often each term occurs in it, as bm25s adds a repeated query term's score
    once per occurrence."""
    return _by_id(Counter(terms))


def _by_id(weights: Mapping[str, float]) -> SparseVector:
    summed: dict[int, float] = {}
    for term, weight in weights.items():
        index = term_id(term)
        summed[index] = summed.get(index, 0.0) + weight
    indices = sorted(summed)
    return SparseVector(tuple(indices), tuple(float(summed[index]) for index in indices))
