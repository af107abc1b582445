"""The container images, as far as they can be checked without a container engine (none runs here:
`docker build` needs one). hadolint lints both Dockerfiles; the final stages run as a non-root user,
install nothing and have no HEALTHCHECK or ENTRYPOINT; the operator image's environment is built from
uv.lock exactly as Dockerfile.operator builds it and runs the operator without torch; the build
context holds what the Dockerfiles copy. A real build is test_images_build, skipped here."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from fnmatch import fnmatch
from pathlib import Path

import pytest

from semantik_operator.builders.embedder import build_embedder_deployment
from semantik_operator.settings import OperatorSettings
from semantik_operator.spec import CollectionSpec

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = [ROOT / "Dockerfile.operator", ROOT / "Dockerfile.service"]
IDS = [path.name for path in DOCKERFILES]
VENV_BIN = Path(sys.executable).parent
UV_VERSION = "0.13.9"  # hack/bootstrap.sh's
UV = Path(os.environ.get("SEMANTIK_CACHE_DIR", Path.home() / ".cache" / "semantik")) / f"tools/uv-{UV_VERSION}/bin/uv"


def stages(dockerfile: Path) -> list[list[tuple[str, str]]]:
    """(instruction, arguments) per stage, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    result: list[list[tuple[str, str]]] = [[]]
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, arguments = line.partition(" ")
        if instruction.upper() == "FROM":
            result.append([])
        result[-1].append((instruction.upper(), arguments.strip()))
    return result


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=IDS)
def test_hadolint_passes(dockerfile: Path) -> None:
    result = subprocess.run(
        [str(VENV_BIN / "hadolint"), "--failure-threshold", "info", "--no-color", str(dockerfile)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=IDS)
def test_final_stage_is_slim_and_unprivileged(dockerfile: Path) -> None:
    header, *built = stages(dockerfile)
    assert len(built) >= 2, "multi-stage: a build stage and a final stage"
    base = dict(line.split("=", 1) for kind, line in header if kind == "ARG")["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:3\.1[12]\.\d+-slim-bookworm", base), base  # pinned to a patch release
    final = built[-1]
    assert final[0] == ("FROM", "${PYTHON_IMAGE}")
    users = [arguments for kind, arguments in final if kind == "USER"]
    assert users and re.fullmatch(r"[1-9]\d*:[1-9]\d*", users[-1]), users  # numeric: runAsNonRoot can check it
    runs = [arguments for kind, arguments in final if kind == "RUN"]
    assert all(run.startswith("useradd ") for run in runs), runs  # nothing installed, no compiler
    assert not any(kind in ("HEALTHCHECK", "ENTRYPOINT") for stage in built for kind, _ in stage)
    assert ("COPY", "--from=build /app/.venv /app/.venv") in final
    build = [arguments for kind, arguments in built[0] if kind == "RUN"]
    assert any("uv sync --frozen" in run for run in build), "installed from uv.lock"
    # Besides uv itself, the one package not from the lock: the locked torch version's CPU build.
    for run in build:
        for install in re.findall(r"\bpip install\b[^;&]*", run):
            assert "--no-cache-dir uv==" in install or '"torch==${torch}+cpu"' in install, install


def test_service_image_chooses_torch_by_build_argument() -> None:
    text = (ROOT / "Dockerfile.service").read_text()
    assert "ARG TORCH_VARIANT=cpu" in text and 'service-$TORCH_VARIANT"' in text
    # The operator gives the service image the whole command, so the image has no ENTRYPOINT.
    spec = CollectionSpec.model_validate({"sources": [{"name": "docs", "hostPath": "/srv"}]})
    collection = {"apiVersion": "semantik.io/v1alpha1", "kind": "Collection", "metadata": {"name": "c", "uid": "u"}}
    deployment = build_embedder_deployment(spec, "search", [collection], OperatorSettings())
    assert deployment["spec"]["template"]["spec"]["containers"][0]["args"][0] == "semantik"


def _image_packages(target: str) -> list[str]:
    result = subprocess.run(
        [str(ROOT / "hack" / "image-packages.sh"), target],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={**os.environ, "UV": str(UV), "UV_CACHE_DIR": str(UV.parents[3] / "uv")},
    )
    return result.stdout.split()


@pytest.mark.skipif(not UV.exists(), reason="uv is installed by hack/bootstrap.sh")
def test_cpu_variant_leaves_out_only_torch_and_cuda() -> None:
    left_out = {flag.removeprefix("--no-install-package=") for flag in _image_packages("service-cpu")}
    assert "torch" in left_out and "triton" in left_out and any(p.startswith("nvidia-") for p in left_out)
    assert all(p in ("torch", "triton") or p.startswith(("nvidia-", "cuda-")) for p in left_out), left_out
    assert _image_packages("service-cuda") == []


@pytest.mark.skipif(not UV.exists(), reason="uv is installed by hack/bootstrap.sh")
def test_operator_image_environment_runs_the_operator_without_torch(tmp_path: Path) -> None:
    """`uv sync` with Dockerfile.operator's flags into a fresh environment; the operator starts its
    import and its kopf from there, with nothing of the services' heavy dependencies installed."""
    environment = tmp_path / "venv"
    subprocess.run(
        [
            *(str(UV), "sync", "--frozen", "--no-default-groups", "--no-editable", "--quiet"),
            *("--python", sys.executable, *_image_packages("operator")),
        ],
        cwd=ROOT,
        check=True,
        env={
            **os.environ,
            "UV_PROJECT_ENVIRONMENT": str(environment),
            "UV_CACHE_DIR": str(UV.parents[3] / "uv"),
            "UV_PYTHON_DOWNLOADS": "never",
            "UV_LINK_MODE": "hardlink",
        },
        timeout=600,
    )
    python = environment / "bin" / "python"
    heavy = "('torch', 'transformers', 'qdrant_client')"
    probe = f"import sys, semantik_operator.main; print(sorted(m for m in {heavy} if m in sys.modules))"
    imported = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, cwd=tmp_path)
    assert imported.returncode == 0 and imported.stdout.strip() == "[]", imported.stderr
    installed = subprocess.run([str(python), "-c", "import torch"], capture_output=True, text=True, cwd=tmp_path)
    assert installed.returncode != 0  # not even installed
    version = subprocess.run([str(environment / "bin" / "kopf"), "--version"], capture_output=True, text=True)
    assert "1.45.2" in version.stdout


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rule: the last pattern that matches decides; `!` re-includes."""
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        bare = pattern.removeprefix("!").rstrip("/")
        parts = path.split("/")
        if any(fnmatch("/".join(parts[: n + 1]), bare) for n in range(len(parts))) or fnmatch(
            path, bare.replace("**/", "*")
        ):
            ignored = not negated
    return ignored


def test_dockerignore_keeps_the_context_to_what_the_dockerfiles_copy() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for dockerfile in DOCKERFILES:
        for stage in stages(dockerfile):
            for kind, arguments in stage:
                if kind == "COPY" and not arguments.startswith("--from"):
                    for source in arguments.split()[:-1]:
                        assert not _ignored(source.rstrip("/"), patterns), (dockerfile.name, source)
    for kept_out in (".venv/bin/python", ".git/config", "tests/conftest.py", "bench/__init__.py", "charts/semantik"):
        assert _ignored(kept_out, patterns), kept_out
    assert _ignored("services/semantik/__pycache__/cli.cpython-311.pyc", patterns)


def _docker_engine() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _docker_engine(), reason="no container engine here: `docker info` fails (only the client)")
@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=IDS)
def test_images_build(dockerfile: Path) -> None:
    tag = f"semantik-{dockerfile.suffix.lstrip('.')}:test"
    subprocess.run(["docker", "build", "-f", str(dockerfile), "-t", tag, str(ROOT)], check=True, timeout=3600)
    user = subprocess.run(
        ["docker", "image", "inspect", "-f", "{{.Config.User}}", tag], capture_output=True, text=True, check=True
    )
    assert user.stdout.strip() == "10001:10001"
