"""Small helpers the cluster and e2e tiers share to watch Kubernetes objects come and go."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def run_hack(script: Path, command: str, directory: Path, timeout: float, env: dict[str, str] | None = None) -> str:
    """`hack/<script> COMMAND DIR` (controlplane.sh, node.sh): its stdout; its stderr (the steps' timings)
    passed through, shown by pytest with a failure or with -s; a failure raises with the end of it."""
    started = time.monotonic()
    result = subprocess.run(
        [str(script), command, str(directory)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    sys.stderr.write(result.stderr)
    sys.stderr.write(f"hack/{script.name} {command} took {time.monotonic() - started:.1f}s\n")
    if result.returncode != 0:
        raise RuntimeError(f"hack/{script.name} {command} {directory} failed:\n{result.stderr[-6000:]}")
    return result.stdout


def exported(exports: str, names: Sequence[str]) -> dict[str, str]:
    """The variables `eval "$(hack/<script> env DIR)"` sets, as bash sees them."""
    script = 'eval "$1"; shift; for name; do printf "%s\\0" "${!name}"; done'
    printed = subprocess.run(
        ["bash", "-c", script, "bash", exports, *names], capture_output=True, text=True, check=True
    ).stdout
    return dict(zip(names, printed.split("\0")[:-1], strict=True))


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
