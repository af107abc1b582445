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


def schema_refusal(values: dict[str, Any], directory: Path) -> str:
    """`helm template` with `values`, which the chart's schema must refuse: its message."""
    path = directory / "refused-values.yaml"
    path.write_text(yaml.safe_dump(values))
    result = helm("template", "semantik", str(CHART), "-f", str(path), check=False)
    assert result.returncode != 0, "the schema let these values through"
    assert "values don't meet the specifications of the schema" in result.stderr, result.stderr
    return result.stderr


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


# --- dashboards ----------------------------------------------------------------------------------

DASHBOARDS = sorted((CHART / "dashboards").glob("*.json"))

_PROMQL_WORDS = {
    # aggregations, their modifiers, binary operators and keywords
    "sum", "avg", "min", "max", "count", "stddev", "stdvar", "topk", "bottomk", "quantile", "count_values",
    "group", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
    "offset", "atan2", "inf", "nan",
}  # fmt: skip


def panel_exprs(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every target of every panel, rows' nested panels included."""
    found: list[tuple[str, str]] = []
    for panel in dashboard.get("panels", []):
        for nested in [panel, *panel.get("panels", [])]:
            for target in nested.get("targets", []):
                found.append((nested.get("title", ""), target["expr"]))
    return found


def promql_metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: identifiers that are not functions (followed by
    `(`), keywords, label names (inside `{...}` or the `(...)` of by/without/on/ignoring), strings or
    durations."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)  # strings
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"(?<![\w:])\d+(?:ms|[smhdwy])\b", " ", text)  # durations (offset 5m)
    text = re.sub(r"(?<![\w:])(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", " ", text)  # numbers (1e-9)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        following = text[match.end() :].lstrip()[:1]
        word = match.group(0)
        if following == "(" or word.lower() in _PROMQL_WORDS:
            continue
        names.add(word)
    return names


def exported_names(exposition: str) -> set[str]:
    """Every series name a Prometheus text exposition can produce, from its HELP/TYPE metadata too (a
    labelled counter has no sample until first used): counters' _total and _created, histograms'
    _bucket, _count, _sum and _created, a gauge's own name."""
    from prometheus_client.parser import text_string_to_metric_families

    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_count", "_sum", "_created"),
        "summary": ("", "_count", "_sum", "_created"),
        "gauge": ("",),
        "info": ("_info",),
    }
    names: set[str] = set()
    for family in text_string_to_metric_families(exposition):
        names |= {family.name + suffix for suffix in suffixes.get(family.type, ("",))}
        names |= {sample.name for sample in family.samples}
    return names
