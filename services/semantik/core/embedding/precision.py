"""Precision modes: what each does to a model, and whether this device can run it."""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import nn

from semantik.core.embedding import Precision
from semantik.core.errors import InvalidInputError

__all__ = ["Precision", "prepare_model", "quantize_int8"]


def prepare_model(
    model: nn.Module, precision: Precision, device: torch.device, int8_modules: Sequence[str]
) -> tuple[nn.Module, Callable[[], contextlib.AbstractContextManager[None]]]:
    """Convert the model for `precision` on `device`; returns it with the context each forward runs in."""
    model = model.float().to(device)
    if precision is Precision.FLOAT32:
        return model, contextlib.nullcontext
    if precision is Precision.FLOAT16:
        if device.type == "cpu" and not torch.ops.mkldnn._is_mkldnn_fp16_supported():
            raise InvalidInputError("float16 needs a GPU or a CPU with AVX512-FP16/AMX-FP16", field="dtype")
        return model.half(), contextlib.nullcontext
    if precision is Precision.BFLOAT16:
        if device.type == "cuda":
            return model.to(torch.bfloat16), contextlib.nullcontext
        if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
            raise InvalidInputError("bfloat16 needs a GPU or a CPU with AVX512-BF16 or AMX", field="dtype")
        # Weights stay float32; autocast runs the matrix products in bfloat16 on AMX/AVX512-BF16 and
        # keeps the reductions (layer norm, softmax) in float32, which is where bf16 loses quality.
        return model, lambda: _cpu_autocast_bf16()
    if device.type != "cpu":
        raise InvalidInputError("int8 (dynamic quantization) runs on the CPU only", field="dtype")
    return quantize_int8(model, int8_modules), contextlib.nullcontext


@contextlib.contextmanager
def _cpu_autocast_bf16() -> Iterator[None]:
    with torch.autocast("cpu", dtype=torch.bfloat16):
        yield


def quantize_int8(model: nn.Module, module_patterns: Sequence[str]) -> nn.Module:
    """Dynamic int8 quantization of the Linear layers whose names match the patterns."""
    patterns = [re.compile(p) for p in module_patterns]
    names = {
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and any(p.search(name) for p in patterns)
    }
    if not names:
        return model
    with warnings.catch_warnings():
        # torch.ao's eager quantization warns that it will move to torchao; it is what ships with torch.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        quantized: nn.Module = torch.ao.quantization.quantize_dynamic(  # type: ignore[no-untyped-call]
            model, names, dtype=torch.qint8
        )
    return quantized
