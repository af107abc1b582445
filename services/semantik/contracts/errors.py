"""Semantik's JSON error body, `{"error": {"code", "message", "field"}}`: written by the gateway and the
embedder, read back by their clients (the embedder client, the workers, the operator)."""

from __future__ import annotations

import json

from pydantic import BaseModel, Field, ValidationError


def error_body(code: str, message: str, field: str | None = None) -> dict[str, dict[str, str | None]]:
    return {"error": {"code": code, "message": message, "field": field}}


class ErrorDetail(BaseModel):
    code: str = Field(description="What went wrong, for programs: not_found, conflict, invalid_input, ...")
    message: str = Field(description="What went wrong, for people.")
    field: str | None = Field(default=None, description="The request field at fault, when there is one.")


class ErrorOut(BaseModel):
    """The body of every error response."""

    error: ErrorDetail


def is_error_body(body: str) -> bool:
    """Whether a body is Semantik's error shape: every error the gateway and the embedder send is. A 4xx
    without it came from something between (a proxy, a port another listener took over while a pod was
    being replaced), so it says nothing about the resource asked for."""
    try:
        ErrorOut.model_validate_json(body)
    except ValidationError:
        return False
    return True


def error_parts(body: str) -> tuple[str, str | None]:
    """(message, field) of an error body, or the start of the body when it is not that shape."""
    try:
        error = json.loads(body)["error"]
        return str(error["message"]), error.get("field")
    except (ValueError, KeyError, TypeError):
        return body[:200], None
