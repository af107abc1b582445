"""Pooling of token states into one vector per text, chosen by the model's spec."""

from __future__ import annotations

import torch

from semantik.contracts.models import Pooling


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: Pooling) -> torch.Tensor:
    if pooling is Pooling.MEAN:
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
    if pooling is Pooling.CLS:
        return hidden[:, 0]
    # Last-token pooling: with left padding the last column is a real token in every row; with right
    # padding, index each row's own last real token.
    if bool(attention_mask[:, -1].all()):
        return hidden[:, -1]
    last = attention_mask.sum(dim=1) - 1
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
