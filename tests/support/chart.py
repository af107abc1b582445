"""The Helm chart for tests: the helm binary hack/controlplane.sh builds, rendering, and walking the
objects of a render (pod specs, containers, labels)."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "semantik"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
CONTROLPLANE = ROOT / "hack" / "controlplane.sh"

WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "Pod"}


@cache
def helm_path() -> Path | None:
    """The helm that `hack/controlplane.sh build` made (pinned in hack/controlplane/versions.env)."""
    if shutil.which("go") is None:
        return None
    printed = subprocess.run([str(CONTROLPLANE), "env"], capture_output=True, text=True, check=True).stdout
    match = re.search(r"^export PATH=(\S+):", printed, re.MULTILINE)
    assert match, printed
    helm = Path(match.group(1)) / "helm"
    return helm if helm.exists() else None


HELM_MISSING_REASON = "helm is not built: hack/controlplane.sh build makes it from its Go module (go is needed)"


def helm(*args: str, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    binary = helm_path()
    assert binary is not None, HELM_MISSING_REASON
    result = subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=300, env=env)
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


def template(
    *values_files: Path, set_values: Sequence[str] = (), release: str = "semantik", namespace: str = "search"
) -> list[dict[str, Any]]:
    """`helm template` of the chart (helm test hooks included), as a list of objects."""
    args = ["template", release, str(CHART), "--namespace", namespace]
    for path in values_files:
        args += ["-f", str(path)]
    for item in set_values:
        args += ["--set", item]
    return [doc for doc in yaml.safe_load_all(helm(*args).stdout) if doc]


def find(objects: list[dict[str, Any]], kind: str, name_suffix: str = "") -> dict[str, Any]:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"].endswith(name_suffix)]
    assert len(matches) == 1, f"{kind} *{name_suffix}: {[o['metadata']['name'] for o in matches]}"
    return matches[0]


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    if obj["kind"] == "Pod":
        return dict(obj["spec"])
    if obj["kind"] == "CronJob":
        return dict(obj["spec"]["jobTemplate"]["spec"]["template"]["spec"])
    return dict(obj["spec"]["template"]["spec"])


def workloads(objects: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    return (o for o in objects if o["kind"] in WORKLOAD_KINDS)


def containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def env_of(container: dict[str, Any], objects: list[dict[str, Any]], secret_value: str = "secret") -> dict[str, str]:
    """A container's environment as its pod would see it: ConfigMaps of envFrom resolved from the render,
    values from Secrets replaced by `secret_value` (a Secret may be the user's own)."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        config_map = find(objects, "ConfigMap", source["configMapRef"]["name"])
        env.update(config_map["data"])
    for item in container.get("env", []):
        env[item["name"]] = item.get("value", secret_value)
    return env
