"""Source roots: the folders an operator allows callers of the REST API (and the workers) to index.

A path is inside a root when its real path (every symbolic link followed, `..` folded) is the root's
real path or lies below it, compared by path components: `/srv/docs-evil` is not inside `/srv/docs`,
and neither is `/srv/docs/../etc` nor a link in `/srv/docs` that points to `/etc`. A path that does
not exist here (the gateway in service mode cannot see the workers' folders) resolves as far as it
can, the rest lexically; the workers check it again where the folder is mounted.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

from pydantic import BeforeValidator
from pydantic_settings import NoDecode

from semantik.core.errors import ForbiddenError

SETTING = "SEMANTIK_SOURCE_ROOTS"


def parse_roots(value: object) -> object:
    """A JSON list, or one string of folders separated by commas or colons (as PATH is)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        return json.loads(text)
    return [part.strip() for part in text.replace(",", os.pathsep).split(os.pathsep) if part.strip()]


SourceRoots = Annotated[list[Path], NoDecode, BeforeValidator(parse_roots)]
"""The type of a `source_roots` setting: pydantic-settings hands the raw env string to `parse_roots`."""


def real(path: str | Path) -> Path:
    return Path(os.path.realpath(Path(path).expanduser()))


def within_roots(path: str | Path, roots: Sequence[Path]) -> bool:
    try:
        resolved = real(path)
    except ValueError:  # a NUL byte: no such folder can exist
        return False
    return any(resolved == root or root in resolved.parents for root in (real(r) for r in roots))


def outside_roots_message(path: str | Path, roots: Sequence[Path]) -> str | None:
    """Why `path` may not be indexed, or None when it lies inside one of `roots`."""
    if not roots:
        return (
            f"path {str(path)!r} is refused: no source folder is allowed yet; an operator allows folders with {SETTING}"
        )
    if within_roots(path, roots):
        return None
    allowed = ", ".join(str(root) for root in roots)
    return f"path {str(path)!r} is outside the allowed source folders ({SETTING}: {allowed})"


def require_within_roots(path: str | None, roots: Sequence[Path], field: str) -> None:
    """403 unless `path` resolves inside one of `roots`; an empty path is left to the caller's own check."""
    if path:
        refused = outside_roots_message(path, roots)
        if refused is not None:
            raise ForbiddenError(refused, field=field)
