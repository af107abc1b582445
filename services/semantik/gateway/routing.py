"""Which of the app's routes a request is for, read before or after the router has run."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.routing import Match
from starlette.types import Scope


def matched_route(scope: Scope) -> tuple[str, Mapping[str, Any]] | None:
    """The route's path template and its path parameters, or None when no route matches."""
    for route in scope["app"].router.routes:
        match, child = route.matches(scope)
        if match is Match.FULL:
            return str(getattr(route, "path", "")), child.get("path_params", {})
    return None
