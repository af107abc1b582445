"""Small helpers the cluster and e2e tiers share to watch Kubernetes objects come and go."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait(what: str, probe: Callable[[], Any], timeout: float = 120.0, every: float = 0.5) -> Any:
    """Poll `probe` every `every` seconds until it returns something truthy, and return that; after
    `timeout` seconds fail naming `what` and the last answer."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(every)
    raise TimeoutError(f"{what}: not reached in {timeout:.0f}s (last: {last!r})")


def condition(body: dict[str, Any] | None, kind: str) -> dict[str, Any]:
    """The status condition of type `kind` of an object, or {} (no object, no such condition)."""
    for item in (body or {}).get("status", {}).get("conditions", []):
        if item["type"] == kind:
            return dict(item)
    return {}


def pod_ready(pod: dict[str, Any]) -> bool:
    return condition(pod, "Ready").get("status") == "True"
