"""Per-model behaviour in one table, so a new model family is a new row, not a new if-chain.

The gateway, the embedder service and the operator read the same rows (the operator checks a Collection's
model and dimension before any pod starts), so the table imports nothing but the standard library.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Pooling(StrEnum):
    MEAN = "mean"
    CLS = "cls"
    LAST_TOKEN = "last_token"


@dataclass(frozen=True, slots=True)
class ModelSpec:
    name: str
    dimension: int
    pooling: Pooling
    max_seq_length: int
    normalize: bool = True
    query_instruction: str = ""
    document_instruction: str = ""
    padding_side: str = "right"
    """Last-token pooling needs left padding so the last position is a real token in every row."""
    int8_modules: tuple[str, ...] = ()
    """Linear layers (name regexes) that int8 dynamic quantization may touch without hurting quality;
    chosen from the per-layer-group cosine table `make bench` prints."""
    onnx_fusion: str | None = None
    """onnxruntime's transformer optimizer model type ("bert", ...); None: ORT's generic graph passes only."""
    onnx_int8_modules: tuple[str, ...] = ()
    """As `int8_modules`, for the ONNX Runtime backend (its int8 kernels and per-channel scales differ from
    torch's, so the table is measured apart); empty: no int8 on that backend for this model."""


MODEL_SPECS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="sentence-transformers/all-MiniLM-L6-v2",
            dimension=384,
            pooling=Pooling.MEAN,
            max_seq_length=256,
            # Measured (bench embedder section): attention projections keep cosine >= 0.99 to float32;
            # the feed-forward layers drop it to 0.98 (input) and 0.91 (output), so they stay float32.
            int8_modules=(r"attention\.self\.(query|key|value)$", r"attention\.output\.dense$"),
            onnx_fusion="bert",
            # Measured (bench embedder section, ONNX per layer group, per-channel scales): each group alone
            # keeps cosine >= 0.992, but together with the feed-forward layers the worst text falls to 0.983;
            # the attention projections alone keep 0.995.
            onnx_int8_modules=(r"attention\.self\.(query|key|value)$", r"attention\.output\.dense$"),
        ),
        ModelSpec(
            name="Qwen/Qwen3-Embedding-0.6B",
            dimension=1024,
            pooling=Pooling.LAST_TOKEN,
            max_seq_length=8192,
            query_instruction=(
                "Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery:"
            ),
            padding_side="left",
            int8_modules=(r"self_attn\.(q|k|v|o)_proj$",),
        ),
    )
}


class UnknownModelError(ValueError):
    """A name outside the table; each process reports it its own way (the gateway: 422 on `model`)."""


def model_spec(name: str) -> ModelSpec:
    try:
        return MODEL_SPECS[name]
    except KeyError:
        known = ", ".join(sorted(MODEL_SPECS))
        raise UnknownModelError(f"unknown embedding model {name!r}; known models: {known}") from None
