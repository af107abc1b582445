"""The cluster tier's control plane: `hack/controlplane.sh up` in a private directory for the session.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler run as host processes started by
kwokctl from binaries built from their Go modules (cached under ~/.cache/semantik/bin, so only the
first run pays for the build); kwok fakes the nodes cpu-0, cpu-1 and gpu-0 and drives pods on them.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.kube import exported, run_hack
from tests.support.servers import reaper
from tests.support.stack import INTERNAL_TOKEN, Process, Stack, free_port

HACK = Path(__file__).resolve().parents[2] / "hack"
CONTROLPLANE = HACK / "controlplane.sh"

# Deletes the cluster and its directory even when the test process dies (tests/support/servers.reaper).
_REAPER = '"$0" down "$1" >/dev/null 2>&1; rm -rf "$1"'

# A cold build of the binaries takes tens of minutes on two cores; `up` with them built, seconds.
_UP_TIMEOUT = 3 * 3600

GO_MISSING = shutil.which("go") is None
GO_MISSING_REASON = "go is not installed: hack/controlplane.sh builds the control plane from Go modules"


@dataclass(frozen=True)
class Cluster:
    """A running control plane: its kubeconfig and the environment (`hack/controlplane.sh env`) to reach it."""

    directory: Path
    kubeconfig: Path
    env: dict[str, str]

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run the cluster's own kubectl; a failure raises with its stderr when check is set."""
        result = subprocess.run(
            ["kubectl", *args], input=input, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {shlex.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result

    def get(self, *args: str) -> Any:
        """`kubectl get ... -o json`, parsed."""
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def apply(self, manifest: dict[str, Any], namespace: str | None = None) -> None:
        """`kubectl apply` one object (JSON is YAML)."""
        self.kubectl("apply", *(["--namespace", namespace] if namespace else []), "-f", "-", input=json.dumps(manifest))


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """A control plane of its own for the session, deleted at its end."""
    if GO_MISSING:
        # A green run must mean this tier ran: a missing tool fails it with the reason.
        pytest.fail(GO_MISSING_REASON)
    with running_cluster() as running:
        yield running


@contextmanager
def running_cluster() -> Iterator[Cluster]:
    """Start a control plane in a temporary directory (hack/controlplane.sh up); delete it afterwards."""
    directory = Path(tempfile.mkdtemp(prefix="semantik-cluster-"))
    with reaper(_REAPER, str(CONTROLPLANE), str(directory), timeout=300):
        try:
            run_hack(CONTROLPLANE, "up", directory, _UP_TIMEOUT)
            # The environment exactly as `eval "$(hack/controlplane.sh env DIR)"` makes it.
            env = exported(run_hack(CONTROLPLANE, "env", directory, 60), ["KUBECONFIG", "PATH"])
            yield Cluster(directory, Path(env["KUBECONFIG"]), {**os.environ, **env})
        finally:
            run_hack(CONTROLPLANE, "down", directory, 300)
            shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    """A fresh namespace for one test, deleted (without waiting) after it."""
    name = f"t-{uuid.uuid4().hex[:12]}"
    cluster.kubectl("create", "namespace", name)
    # Pods are refused until the controller-manager has made the namespace's default service account.
    cluster.kubectl("wait", "--for=create", "serviceaccount/default", "--namespace", name, "--timeout=60s")
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


CRDS = Path(__file__).resolve().parents[2] / "crds"


@pytest.fixture(scope="session")
def crds(cluster: Cluster) -> Cluster:
    """The cluster with Semantik's CRDs installed from crds/ and established."""
    for crd in sorted(CRDS.glob("*.yaml")):
        cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crd))
    cluster.kubectl("wait", "--for=condition=Established", "crd/collections.semantik.io", "crd/indexjobs.semantik.io")
    return cluster


def operator_process(cluster: Cluster, stack: Stack, namespace: str, sources_root: Path, log_path: Path) -> Process:
    """`kopf run` of the operator as a host process, watching `namespace`, wired to the stack's gateway."""
    return Process(
        "operator",
        ["run", "--standalone", "--namespace", namespace, "-m", "semantik_operator.main"],
        {
            **cluster.env,
            "SEMANTIK_OPERATOR_GATEWAY_URL": stack.gateway_url,
            "SEMANTIK_OPERATOR_INTERNAL_TOKEN": INTERNAL_TOKEN,
            "SEMANTIK_OPERATOR_REDIS_URL": stack.redis_url,
            "SEMANTIK_OPERATOR_SOURCES_ROOT": str(sources_root),
            # The tests' Collections name host folders under the sources root; any other is refused.
            "SEMANTIK_OPERATOR_ALLOWED_HOST_PATHS": json.dumps([str(sources_root)]),
            # No cluster DNS on this host: every embedder Service is reached at the one host embedder.
            "SEMANTIK_OPERATOR_EMBEDDER_URL_TEMPLATE": stack.embedder_url,
            "SEMANTIK_OPERATOR_METRICS_PORT": str(free_port()),
            # The bounded retries of a deletion whose gateway is gone, in seconds instead of a minute.
            "SEMANTIK_OPERATOR_DELETE_RETRY_SECONDS": "2",
        },
        log_path,
        module="kopf",
    )


def prepare_operator_namespace(cluster: Cluster, namespace: str) -> None:
    """The namespace and the internal-token Secret the chart would make (idempotent)."""
    created = cluster.kubectl("create", "namespace", namespace, check=False)
    assert created.returncode == 0 or "already exists" in created.stderr, created.stderr
    token = f"--from-literal=token={INTERNAL_TOKEN}"
    secret = cluster.kubectl("-n", namespace, "create", "secret", "generic", "semantik-internal", token, check=False)
    # kubectl says so in its own words here ("failed to create secret ... already exists"), not the API's reason.
    assert secret.returncode == 0 or "already exists" in secret.stderr, secret.stderr
