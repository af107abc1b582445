"""The JSON error body one service writes is what its clients read back."""

from __future__ import annotations

import json

from semantik.contracts.errors import ErrorOut, error_body, error_parts


def test_a_written_error_reads_back_with_its_field() -> None:
    body = json.dumps(error_body("invalid_input", "chunk_size: too small", "chunk_size"))
    assert error_parts(body) == ("chunk_size: too small", "chunk_size")
    assert ErrorOut.model_validate_json(body).error.code == "invalid_input"


def test_a_body_of_another_shape_is_reported_by_its_start() -> None:
    assert error_parts("<html>" + "x" * 500) == ("<html>" + "x" * 194, None)
    assert error_parts('{"detail": "no"}') == ('{"detail": "no"}', None)
    assert error_parts('["error"]') == ('["error"]', None)
