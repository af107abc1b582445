"""The whole product on a real cluster: hack/kind-e2e.sh builds both images, installs the chart into a
kind cluster, indexes the example Collection and searches it through the gateway.

Needs a container engine (kind runs its nodes as containers, the images must be built); none runs on
the machines this project is developed on, so there it is skipped with that reason."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "hack" / "kind-e2e.sh"


def _missing() -> str | None:
    if shutil.which("docker") is None:
        return "no docker client: kind needs a container engine"
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        return "no container engine answers `docker info` (only the client is installed): kind cannot run"
    if shutil.which("go") is None:
        return "go is needed to build kind, helm and kubectl (hack/controlplane.sh, hack/kind-e2e.sh)"
    return None


@pytest.mark.skipif(_missing() is not None, reason=str(_missing()))
@pytest.mark.timeout(3600)
def test_kind_end_to_end() -> None:
    result = subprocess.run([str(SCRIPT)], capture_output=True, text=True, timeout=3500)
    assert result.returncode == 0, result.stderr[-8000:]
    assert "end to end passed" in result.stderr
