"""A real node for end-to-end tests: `hack/controlplane.sh up` without fake nodes, then `hack/node.sh up`.

The session's cluster has one node, node-0: this host itself, with containerd, a kubelet, kube-proxy and
CoreDNS (docs/node.md), so pods really run. It needs root and go; without them the fixture fails with the
reason instead of skipping. Images are never pulled: import them into `containerd_address` (namespace
k8s.io) with hack/images.sh import, or use TOOLS_IMAGE (busybox and kubectl), which node.sh imports.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cluster.conftest import Cluster
from tests.support.kube import exported, run_hack
from tests.support.servers import reaper

HACK = Path(__file__).resolve().parents[2] / "hack"
CONTROLPLANE = HACK / "controlplane.sh"
NODE = HACK / "node.sh"

# An image every node has: Debian's static busybox (sh, wget, nslookup, httpd, ...) and kubectl, FROM scratch.
TOOLS_IMAGE = "semantik.local/node-tools:1"

# Stops the node, then deletes the cluster and its directory, even when the test process dies.
_REAPER = '"$0" down "$2" >/dev/null 2>&1; "$1" down "$2" >/dev/null 2>&1; rm -rf "$2"'

# A cold build of the binaries takes tens of minutes on two cores; `up` with them built, seconds.
_CONTROLPLANE_UP_TIMEOUT = 3 * 3600
_NODE_UP_TIMEOUT = 900
_NODE_EXPORTS = ["KUBECONFIG", "PATH", "CONTAINERD_ADDRESS", "SEMANTIK_NODE_NAME", "SEMANTIK_NODE_IP"]


@dataclass(frozen=True)
class NodeCluster:
    """A control plane with one real node, this host: the cluster, the node's containerd and its address."""

    cluster: Cluster
    containerd_address: str
    node_name: str
    node_ip: str
    directory: Path


def _missing_requirement() -> str | None:
    if os.geteuid() != 0:
        return "the real node (hack/node.sh) needs root: it runs containerd and the kubelet, sets iptables and sysctls"
    if shutil.which("go") is None:
        return "go is not installed: hack/controlplane.sh builds the control plane, kubelet and CoreDNS from Go modules"
    return None


def host_network_state() -> dict[str, list[str]]:
    """What a node leaves on the host when `down` misses something: links, netns, mounts, iptables chains."""

    def lines(*command: str) -> list[str]:
        result = subprocess.run(command, capture_output=True, text=True)
        return result.stdout.splitlines()

    links = sorted(re.sub(r"@.*", "", line.split()[0]) for line in lines("ip", "-br", "link"))
    chains = [line for line in lines("iptables-save") + lines("ip6tables-save") if re.search(r"KUBE-|CNI-", line)]
    mounts = [line for line in lines("cat", "/proc/self/mounts") if re.search(r"kubelet|containerd|netns", line)]
    return {"links": links, "netns": sorted(lines("ip", "netns", "list")), "mounts": mounts, "chains": chains}


@pytest.fixture(scope="session")
def node_cluster() -> Iterator[NodeCluster]:
    """A control plane (no kwok nodes) and this host as its one real node, for the session."""
    missing = _missing_requirement()
    if missing:
        pytest.fail(missing)
    before = host_network_state()
    directory = Path(tempfile.mkdtemp(prefix="semantik-node-"))
    with reaper(_REAPER, str(NODE), str(CONTROLPLANE), str(directory), timeout=300):
        try:
            run_hack(CONTROLPLANE, "up", directory, _CONTROLPLANE_UP_TIMEOUT, env={"SEMANTIK_KWOK_NODES": ""})
            run_hack(NODE, "up", directory, _NODE_UP_TIMEOUT)
            exports = exported(run_hack(NODE, "env", directory, 60), _NODE_EXPORTS)
            env = {**os.environ, "KUBECONFIG": exports["KUBECONFIG"], "PATH": exports["PATH"]}
            cluster = Cluster(directory, Path(exports["KUBECONFIG"]), env)
            yield NodeCluster(
                cluster=cluster,
                containerd_address=exports["CONTAINERD_ADDRESS"],
                node_name=exports["SEMANTIK_NODE_NAME"],
                node_ip=exports["SEMANTIK_NODE_IP"],
                directory=directory,
            )
        finally:
            try:
                run_hack(NODE, "down", directory, 300)
            finally:
                run_hack(CONTROLPLANE, "down", directory, 300)
                shutil.rmtree(directory, ignore_errors=True)
    after = host_network_state()
    left = {key: sorted(set(after[key]) - set(before[key])) for key in before}
    assert not any(left.values()), f"hack/node.sh down left things on the host: {left}"
