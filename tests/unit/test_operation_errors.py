"""What a failed operation stores for users: sentences, never an exception's type and repr."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.exc import OperationalError

from semantik.core.errors import InvalidInputError
from semantik.core.services.indexing import _describe

SECRET = "postgresql://semantik:hunter2@10.1.2.3:5432/semantik"


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (InvalidInputError("no folder to index: give a path", field="path"), "no folder to index: give a path"),
        (ConnectionRefusedError(111, f"connect to {SECRET}"), "a backend (the vector store or the embedder)"),
        (TimeoutError(SECRET), "did not answer; run the index again"),
        (OperationalError("SELECT 1", {}, Exception(SECRET)), "the metadata database failed"),
        (asyncio.CancelledError(), "interrupted"),
        (KeyboardInterrupt(), "interrupted"),
        (MemoryError(), "ran out of memory"),
        (ValueError(SECRET), "internal error; see the gateway's log (operation op-1)"),
        (KeyError(SECRET), "internal error; see the gateway's log (operation op-1)"),
    ],
)
def test_operation_errors_are_sentences_without_internals(exc: BaseException, expected: str) -> None:
    described = _describe(exc, "op-1")

    assert expected in described
    assert "10.1.2.3" not in described and "hunter2" not in described
    assert type(exc).__name__ not in described
