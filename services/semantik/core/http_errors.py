"""Reading Semantik's JSON error shape back out of an HTTP answer (the clients of its own services)."""

from __future__ import annotations

import httpx


def error_parts(response: httpx.Response) -> tuple[str, str | None]:
    """(message, field) of `{"error": {...}}`, or the start of the body when it is not that shape."""
    try:
        error = response.json()["error"]
        return str(error["message"]), error.get("field")
    except (ValueError, KeyError, TypeError):
        return response.text[:200], None
