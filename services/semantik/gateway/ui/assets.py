"""The UI's static files, served with URLs that change with their content so browsers may keep them.

A page names `/static/ui.css?v=<digest>`; the file is cached for a year and never revalidated, so a search
page paints without a round trip for its stylesheet. A new release changes the digest, hence the URL.
"""

from __future__ import annotations

import hashlib
import os
from functools import cache
from pathlib import Path

from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC = Path(__file__).parent / "static"
IMMUTABLE = "public, max-age=31536000, immutable"


@cache
def digest(name: str) -> str:
    return hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:12]


def static_url(base: str, name: str) -> str:
    return f"{base}/static/{name}?v={digest(name)}"


class VersionedStaticFiles(StaticFiles):
    def file_response(
        self, full_path: str | os.PathLike[str], stat_result: os.stat_result, scope: Scope, status_code: int = 200
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        asked = scope.get("query_string", b"").decode()
        # Only a URL that names this content is immutable; a bare /static/ui.js stays revalidated.
        if asked == f"v={digest(Path(full_path).name)}":
            response.headers["Cache-Control"] = IMMUTABLE
        return response
