"""Vectors cross the wire as base64 float32: exact both ways, and a malformed one is refused."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from semantik.contracts.vectors import decode_vector, encode_vector


def test_a_vector_round_trips_exactly() -> None:
    vector = np.random.default_rng(7).standard_normal(384).astype(np.float32)
    decoded = decode_vector(encode_vector(vector))
    assert decoded.dtype == np.float32 and np.array_equal(decoded, vector)
    assert len(base64.b64decode(encode_vector(vector))) == 4 * 384


@pytest.mark.parametrize(
    ("text", "problem"),
    [("not base64!", "not base64"), (base64.b64encode(b"\x00" * 6).decode(), "whole number"), ("", "whole number")],
)
def test_a_malformed_vector_is_refused(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        decode_vector(text)
