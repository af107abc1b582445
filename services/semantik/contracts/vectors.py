"""Vectors on the wire: little-endian float32 values, base64-encoded. Workers send points to the gateway
this way and the embedder answers this way when asked: four bytes a value, exact, where JSON numbers take
about twenty characters."""

from __future__ import annotations

import base64
import binascii

import numpy as np
import numpy.typing as npt


def encode_vector(vector: np.ndarray) -> str:
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()


def decode_vector(text: str) -> npt.NDArray[np.float32]:
    """The vector `text` encodes; ValueError when it is not base64 of a whole number of float32 values."""
    try:
        raw = base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise ValueError("vector is not base64") from exc
    if not raw or len(raw) % 4:
        raise ValueError("vector is not a whole number of float32 values")
    return np.frombuffer(raw, dtype="<f4").astype(np.float32)
