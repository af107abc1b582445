from __future__ import annotations

import math

import pytest

from semantik.core.services.search import rocchio


def test_the_query_moves_towards_the_mean_of_the_feedback_and_stays_a_unit_vector() -> None:
    moved = rocchio([1.0, 0.0, 0.0], [[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], weight=2.0)

    # 1 + 2 * mean: (1, 1, 1), normalised.
    assert moved == pytest.approx([1 / math.sqrt(3)] * 3)
    assert math.fsum(x * x for x in moved) == pytest.approx(1.0)


def test_weight_zero_leaves_the_query_where_it_was() -> None:
    assert rocchio([0.6, 0.8], [[1.0, 0.0]], weight=0.0) == pytest.approx([0.6, 0.8])
