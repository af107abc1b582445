from __future__ import annotations

import math

import bm25s
import pytest

from semantik.core.search.analyzer import Analyzer, term_id
from semantik.core.search.sparse import K1, B, SparseVector, document_vector, query_vector

CHUNKS = [
    "Rotate the signing keys every 90 days; a rotated key stays valid for a day.",
    "Key rotation is automatic when the rotation interval is set in the collection's settings.",
    "The gateway answers searches; the worker indexes documents and writes their vectors.",
    "An experimental study of a wing in a propeller slipstream at different angles of attack.",
    "Documents are split into chunks, and every chunk is embedded and stored with its keyword weights.",
    "Keys, keys, keys: the word repeated in a short chunk weighs more than once in a long one.",
]


def weight(vector: SparseVector, term: str) -> float:
    return dict(zip(vector.indices, vector.values, strict=True))[term_id(term)]


def test_weights_are_bm25_term_frequency_saturation() -> None:
    terms = ["wing"] * 2 + [f"filler{i}" for i in range(8)]
    vector = document_vector(terms, average_length=5)
    # tf / (tf + k1 * (1 - b + b * length / average)), by hand: 2 / (2 + 1.5 * (0.25 + 0.75 * 10 / 5)).
    assert weight(vector, "wing") == pytest.approx(2 / 4.625)
    assert weight(vector, "filler0") == pytest.approx(1 / 3.625)
    assert (K1, B) == (1.5, 0.75)


def test_a_chunk_of_average_length_saturates_by_k1_alone() -> None:
    vector = document_vector(["wing", "wing", "slipstream", "lift"], average_length=4, k1=1.2, b=0.5)
    assert weight(vector, "wing") == pytest.approx(2 / (2 + 1.2))
    assert weight(vector, "lift") == pytest.approx(1 / (1 + 1.2))


def test_a_longer_chunk_weighs_a_term_less() -> None:
    short = document_vector(["wing", "lift"], average_length=10)
    long = document_vector(["wing"] + ["lift"] * 30, average_length=10)
    assert weight(long, "wing") < weight(short, "wing")
    # Without length normalisation (b = 0) only the term's own count matters.
    unnormalised = document_vector(["wing"] + ["lift"] * 30, average_length=10, b=0)
    assert weight(unnormalised, "wing") == weight(document_vector(["wing"], average_length=10, b=0), "wing")


def test_an_unknown_average_length_counts_as_the_chunks_own() -> None:
    terms = ["wing", "wing", "lift"]
    assert document_vector(terms, average_length=0) == document_vector(terms, average_length=3)
    assert document_vector(terms, average_length=-1) == document_vector(terms, average_length=3)
    assert document_vector([], average_length=0) == SparseVector((), ())


def test_indices_are_sorted_unique_term_ids() -> None:
    terms = ["wing", "lift", "drag", "wing", "slipstream", "lift"]
    vector = document_vector(terms, average_length=6)
    assert list(vector.indices) == sorted({term_id(term) for term in terms})
    assert len(vector.values) == len(vector.indices)


def test_colliding_terms_add_up() -> None:
    # Two terms whose 32-bit ids are equal (found by search, once).
    assert term_id("term20925") == term_id("term40583")
    assert query_vector(["term20925", "term40583", "term40583"]) == SparseVector((term_id("term20925"),), (3.0,))
    vector = document_vector(["term20925", "term40583"], average_length=2)
    assert vector.values == pytest.approx((2 / (1 + K1),))


def test_a_query_counts_its_repeated_terms() -> None:
    vector = query_vector(["wing", "lift", "wing"])
    assert weight(vector, "wing") == 2.0
    assert weight(vector, "lift") == 1.0
    assert query_vector([]) == SparseVector((), ())


@pytest.mark.parametrize(
    "query", ["rotating keys", "keys keys rotation", "documents chunks vectors", "wing slipstream attack"]
)
def test_scores_equal_bm25s(query: str) -> None:
    """What Qdrant computes from these vectors (IDF times the dot product) is bm25s's BM25 score."""
    analyzer = Analyzer()
    chunk_terms = [analyzer.terms(chunk) for chunk in CHUNKS]
    average = sum(map(len, chunk_terms)) / len(chunk_terms)
    vectors = [dict(zip(v.indices, v.values, strict=True)) for v in (document_vector(t, average) for t in chunk_terms)]
    query_terms = analyzer.terms(query)
    query_weights = query_vector(query_terms)

    def idf(index: int) -> float:
        holding = sum(index in vector for vector in vectors)
        return math.log(1 + (len(vectors) - holding + 0.5) / (holding + 0.5))

    ours = [
        sum(
            count * idf(index) * vector.get(index, 0.0)
            for index, count in zip(query_weights.indices, query_weights.values, strict=True)
        )
        for vector in vectors
    ]

    retriever = bm25s.BM25(method="lucene", k1=K1, b=B)
    retriever.index(chunk_terms, show_progress=False)
    assert ours == pytest.approx(list(retriever.get_scores(query_terms)), rel=1e-5)
    assert max(ours) > 0
