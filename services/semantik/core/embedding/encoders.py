"""The forward pass behind the engine: token ids and mask in, last hidden states out, on some runtime.

The engine owns tokenizing, batching, out-of-memory splits, pooling and normalising; an encoder only runs
the model, so torch and ONNX Runtime share every other step and produce comparable vectors.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Protocol

import torch
from torch import nn

from semantik.core.embedding import EmbedBackend
from semantik.core.embedding.precision import Precision, prepare_model


class EncoderOutOfMemoryError(RuntimeError):
    """A backend could not allocate a batch's buffers; the engine splits the batch as for torch's OOM."""


OUT_OF_MEMORY_ERRORS = (torch.OutOfMemoryError, EncoderOutOfMemoryError)


class Encoder(Protocol):
    @property
    def backend(self) -> EmbedBackend: ...

    @property
    def device(self) -> torch.device: ...

    def inference_context(self) -> contextlib.AbstractContextManager[None]: ...

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor: ...


class TorchEncoder:
    backend = EmbedBackend.TORCH

    def __init__(self, model: nn.Module, precision: Precision, device: torch.device, int8_modules: Sequence[str]):
        self._device = device
        self._model, self._context = prepare_model(model, precision, device, int8_modules)
        self._model.eval()

    @property
    def device(self) -> torch.device:
        return self._device

    def inference_context(self) -> contextlib.AbstractContextManager[None]:
        context: Callable[[], contextlib.AbstractContextManager[None]] = self._context
        return context()

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden: torch.Tensor = self._model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return hidden
