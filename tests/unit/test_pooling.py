from __future__ import annotations

import torch

from semantik.contracts.models import Pooling
from semantik.core.embedding.pooling import pool

HIDDEN = torch.tensor(
    [
        [[1.0, 1.0], [3.0, 5.0], [100.0, 100.0]],  # last position is padding
        [[2.0, 0.0], [4.0, 2.0], [6.0, 4.0]],
    ]
)
RIGHT_PADDED = torch.tensor([[1, 1, 0], [1, 1, 1]])


def test_mean_pooling_ignores_padding() -> None:
    pooled = pool(HIDDEN, RIGHT_PADDED, Pooling.MEAN)
    assert torch.allclose(pooled, torch.tensor([[2.0, 3.0], [4.0, 2.0]]))


def test_cls_pooling_takes_the_first_token() -> None:
    assert torch.equal(pool(HIDDEN, RIGHT_PADDED, Pooling.CLS), torch.tensor([[1.0, 1.0], [2.0, 0.0]]))


def test_last_token_pooling_with_right_padding_takes_each_rows_last_real_token() -> None:
    assert torch.equal(pool(HIDDEN, RIGHT_PADDED, Pooling.LAST_TOKEN), torch.tensor([[3.0, 5.0], [6.0, 4.0]]))


def test_last_token_pooling_with_left_padding_takes_the_last_column() -> None:
    left_padded = torch.tensor([[0, 1, 1], [1, 1, 1]])
    assert torch.equal(pool(HIDDEN, left_padded, Pooling.LAST_TOKEN), torch.tensor([[100.0, 100.0], [6.0, 4.0]]))
