"""What the pipeline and the gateway need from an embedder, in-process or over HTTP.

The two kinds live beside this protocol, in core, since embedded mode runs the model in its own process:
`engine` (the model here: the CLI, an embedded gateway, and the embedder service around it) and `client`
(the embedder service over HTTP). `loading` reads models (embedders, rerankers, tokenizers) from disk only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import numpy as np
import numpy.typing as npt

from semantik.contracts.models import ModelSpec, UnknownModelError, model_spec
from semantik.core.errors import InvalidInputError


class TextKind(StrEnum):
    """Queries may get an instruction prefix that documents do not (per-model setting)."""

    DOCUMENT = "document"
    QUERY = "query"


class Precision(StrEnum):
    """Numeric precision of the model's forward pass."""

    FLOAT32 = "float32"
    FLOAT16 = "float16"
    BFLOAT16 = "bfloat16"
    INT8 = "int8"


class EmbedBackend(StrEnum):
    """What runs the model's forward pass: torch (every device and precision) or ONNX Runtime (CPU: float32
    and int8). torch is the default: on this project's 2-core AVX2 machine it ran 7 % faster than ORT at
    equal accuracy (`make bench`, embedder section); a CPU where ORT wins is one setting away."""

    TORCH = "torch"
    ONNX = "onnx"


@dataclass(frozen=True, slots=True)
class Embeddings:
    vectors: npt.NDArray[np.float32]
    """One row per input text, in input order."""
    tokens: int
    """Tokens the model saw, after truncation, without padding."""


def model_for(name: str) -> ModelSpec:
    """The model table's row for `name`; an unknown name is the caller's mistake (422 on `model`)."""
    try:
        return model_spec(name)
    except UnknownModelError as exc:
        raise InvalidInputError(str(exc), field="model") from None


class Embedder(Protocol):
    @property
    def model_name(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    async def embed(self, texts: Sequence[str], kind: TextKind = TextKind.DOCUMENT) -> Embeddings: ...

    async def aclose(self) -> None: ...
