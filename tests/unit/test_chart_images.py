"""The container images. hadolint lints both Dockerfiles; the final stages run as a non-root user,
install nothing and have no HEALTHCHECK or ENTRYPOINT; the operator image's environment is built from
uv.lock exactly as Dockerfile.operator builds it and runs the operator without torch; the build
context holds what the Dockerfiles copy. Then the images themselves: hack/images.sh builds them with
podman (one build per session, layer-cache hits when nothing changed) and each is run as the chart
runs it: non-root, read-only root filesystem, no capabilities, the chart's environment and command."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
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


# The product's Dockerfiles and hack/images.sh's Containerfiles for the local base, Python,
# PostgreSQL and Redis images.
LINTED = [*DOCKERFILES, *sorted((ROOT / "hack" / "images").glob("*.Containerfile"))]


@pytest.mark.parametrize("dockerfile", LINTED, ids=[path.name for path in LINTED])
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
    # Nothing else from the build stage but the project, kept apart so a code change copies only it.
    copies = [arguments for kind, arguments in final if kind == "COPY"]
    assert set(copies) <= {"--from=build /app/.venv /app/.venv", "--from=build /app/project /app/project"}, copies
    build = [arguments for kind, arguments in built[0] if kind == "RUN"]
    assert any("uv sync --frozen" in run for run in build), "installed from uv.lock"
    # Besides uv itself and the project (no dependencies), the one package not from the lock: the
    # locked torch version's CPU build.
    for run in build:
        for install in re.findall(r"\bpip install\b[^;&]*", run):
            project = "--no-deps --target /app/project ." in install
            assert "--no-cache-dir uv==" in install or '"torch==${torch}+cpu"' in install or project, install


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


# --- The images, built and run (hack/images.sh, podman) ---------------------------------------------

IMAGES_SH = ROOT / "hack" / "images.sh"
SERVICE = "localhost/semantik-service:dev"
OPERATOR = "localhost/semantik-operator:dev"
POSTGRES = "localhost/semantik-postgres:15-bookworm"
REDIS = "localhost/semantik-redis:7-bookworm"
# How the chart runs every container (templates/_helpers.tpl's security contexts), as podman options.
AS_THE_CHART_RUNS = ["--read-only", "--cap-drop=all", "--security-opt=no-new-privileges", "--network=none"]


@pytest.fixture(scope="module")
def podman_env() -> dict[str, str]:
    """Builds every image once (a cold build takes minutes, a warm one seconds: podman's layer cache)
    and returns the environment that points podman at hack/images.sh's storage."""
    build = subprocess.run([str(IMAGES_SH), "build"], capture_output=True, text=True, cwd=ROOT, timeout=3600)
    assert build.returncode == 0, f"hack/images.sh build failed:\n{build.stderr[-6000:]}"
    exports = subprocess.run([str(IMAGES_SH), "env"], capture_output=True, text=True, check=True).stdout
    env = dict(os.environ)
    env.update(re.findall(r"^export (\w+)=(\S+)$", exports, re.MULTILINE))
    return env


def podman(
    env: dict[str, str], *args: str, check: bool = True, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["podman", *args], capture_output=True, text=True, env=env, timeout=300)
    if check:
        assert result.returncode == 0, f"podman {' '.join(args)}: {result.stdout}{result.stderr}"
    return result


def _user(env: dict[str, str], image: str) -> str:
    return podman(env, "image", "inspect", "--format", "{{.Config.User}}", image).stdout.strip()


@pytest.fixture
def container(podman_env: dict[str, str]) -> Iterator[str]:
    """A name for a detached container, removed after the test."""
    name = f"semantik-test-{uuid.uuid4().hex[:8]}"
    yield name
    podman(podman_env, "rm", "--force", "--volumes", "--time=2", name, check=False)


def _wait_for(env: dict[str, str], name: str, probe: str, seconds: float = 60) -> None:
    """Runs the chart's exec probe in the container until it passes, as the kubelet would."""
    deadline = time.monotonic() + seconds
    while True:
        result = podman(env, "exec", name, "sh", "-c", probe, check=False)
        if result.returncode == 0:
            return
        if time.monotonic() > deadline:
            logs = podman(env, "logs", name, check=False)
            pytest.fail(f"probe {probe!r} never passed: {result.stderr}\n{logs.stdout}{logs.stderr}")
        time.sleep(0.5)


@pytest.mark.timeout(3600)
def test_service_image_runs_the_cli_and_torch_as_non_root(podman_env: dict[str, str]) -> None:
    assert _user(podman_env, SERVICE) == "10001:10001"
    script = "id -u && semantik --help >/dev/null && python -c 'import torch, semantik; print(torch.__version__)'"
    result = podman(podman_env, "run", "--rm", *AS_THE_CHART_RUNS, SERVICE, "sh", "-c", script)
    uid, torch_version = result.stdout.split()
    assert uid == "10001" and torch_version.startswith("2."), result.stdout


@pytest.mark.timeout(3600)
def test_operator_image_runs_kopf_without_torch(podman_env: dict[str, str]) -> None:
    assert _user(podman_env, OPERATOR) == "10001:10001"
    script = (
        "id -u && kopf --version && python -c 'import semantik_operator.main' && "
        "python -c 'import importlib.util as u; print(u.find_spec(\"torch\"))'"
    )
    result = podman(podman_env, "run", "--rm", *AS_THE_CHART_RUNS, OPERATOR, "sh", "-c", script)
    uid, version, torch = result.stdout.strip().splitlines()
    assert uid == "10001" and "1.45.2" in version and torch == "None", result.stdout
    size = int(podman(podman_env, "image", "inspect", "--format", "{{.Size}}", OPERATOR).stdout)
    assert size < 600_000_000, f"the operator image is {size} bytes"


@pytest.mark.timeout(3600)
def test_postgres_image_initialises_as_the_chart_runs_it(
    podman_env: dict[str, str], container: str, tmp_path: Path
) -> None:
    template = (ROOT / "charts/semantik/templates/postgresql.yaml").read_text()
    pgdata = re.search(r"\{name: PGDATA, value: (\S+)\}", template)
    probe = re.search(r'command: \["sh", "-c", "(pg_isready [^\]]*)"\]', template)
    assert pgdata and probe, "the chart's PGDATA and readiness probe"
    volumes = {"data": "/var/lib/postgresql/data", "run": "/var/run/postgresql", "tmp": "/tmp"}
    for directory in volumes:
        (tmp_path / directory).mkdir()
        (tmp_path / directory).chmod(0o777)  # the chart's emptyDirs: world-writable, owned by root
    env = {"POSTGRES_USER": "semantik", "POSTGRES_DB": "semantik", "POSTGRES_PASSWORD": "s3cret", "PGDATA": pgdata[1]}
    podman(
        podman_env,
        *("run", "--detach", "--name", container, *AS_THE_CHART_RUNS, "--user=999:999"),
        *(f"--env={key}={value}" for key, value in env.items()),
        *(f"--volume={tmp_path / directory}:{path}" for directory, path in volumes.items()),
        POSTGRES,
    )
    _wait_for(podman_env, container, probe[1].replace('\\"', '"'))
    query = ["psql", "-h", "127.0.0.1", "-U", "semantik", "-d", "semantik", "-tAc", "select current_user"]
    right = podman(podman_env, "exec", "--env=PGPASSWORD=s3cret", container, *query)
    assert right.stdout.strip() == "semantik"
    wrong = podman(podman_env, "exec", "--env=PGPASSWORD=wrong", container, *query, check=False)
    assert wrong.returncode != 0 and "password authentication failed" in wrong.stderr


@pytest.mark.timeout(3600)
def test_redis_image_runs_the_charts_command_with_a_password(
    podman_env: dict[str, str], container: str, tmp_path: Path
) -> None:
    template = (ROOT / "charts/semantik/templates/redis.yaml").read_text()
    command = re.search(r"args:\n\s+- >-\n(.*?)\n\s+env:", template, re.DOTALL)
    probe = re.search(r'exec: \{command: \["sh", "-c", "(.*?)"\]\}', template)
    assert command and probe, "the chart's redis command and readiness probe"
    for directory in ("data", "tmp"):
        (tmp_path / directory).mkdir()
        (tmp_path / directory).chmod(0o777)  # the chart's emptyDirs
    podman(
        podman_env,
        *("run", "--detach", "--name", container, *AS_THE_CHART_RUNS, "--user=999:999", "--env=REDISCLI_AUTH=s3cret"),
        *(f"--volume={tmp_path / directory}:/{directory}" for directory in ("data", "tmp")),
        *(REDIS, "sh", "-c", " ".join(command[1].split())),
    )
    _wait_for(podman_env, container, probe[1].replace('\\"', '"'))
    anonymous = podman(podman_env, "exec", container, "env", "-u", "REDISCLI_AUTH", "redis-cli", "ping")
    assert "NOAUTH" in anonymous.stdout + anonymous.stderr
