"""The operator on a real control plane: time from `kubectl apply` to every child created (embedder
Deployment + Service, first IndexJob and its worker Job) for 1 and for 100 Collections, and the
operator's RSS after reconciling 200."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from tests.cluster.conftest import Cluster, operator_process, prepare_operator_namespace, running_cluster
from tests.support.servers import fresh_postgres_database, hack, private_server_directory
from tests.support.stack import Stack, free_port

from bench.report import percentile

NAMESPACE = "bench"


def collection(name: str, root: Path) -> dict[str, object]:
    return {
        "apiVersion": "semantik.io/v1alpha1",
        "kind": "Collection",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"sources": [{"name": "docs", "hostPath": str(root / "docs")}]},
    }


def children_done(cluster: Cluster, names: list[str]) -> set[str]:
    jobs = json.loads(cluster.kubectl("-n", NAMESPACE, "get", "jobs", "-o", "json").stdout)["items"]
    with_job = {j["metadata"]["labels"].get("app.kubernetes.io/instance", "").rsplit("-full-", 1)[0] for j in jobs}
    return {name for name in names if name in with_job}


def apply_and_time(cluster: Cluster, names: list[str], root: Path) -> list[float]:
    started = time.perf_counter()
    cluster.kubectl(
        "apply",
        "-f",
        "-",
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": [collection(n, root) for n in names]}),
    )
    done: dict[str, float] = {}
    while len(done) < len(names) and time.perf_counter() - started < 900:
        for name in children_done(cluster, names) - done.keys():
            done[name] = time.perf_counter() - started
        time.sleep(0.2)
    return sorted(done.values())


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def main() -> None:
    with tempfile.TemporaryDirectory(prefix="semantik-bench-operator-") as tmp, running_cluster() as cluster:
        root = Path(tmp)
        (root / "docs").mkdir()
        (root / "docs" / "a.md").write_text("# A\n\nhello\n")
        for crd in sorted(Path("crds").glob("*.yaml")):
            cluster.kubectl("apply", "--server-side", "-f", str(crd))
        cluster.kubectl(
            "wait", "--for=condition=Established", "crd/collections.semantik.io", "crd/indexjobs.semantik.io"
        )
        prepare_operator_namespace(cluster, NAMESPACE)
        with private_server_directory("postgres.sh") as pg, private_server_directory("redis.sh") as redis:
            stack = Stack(
                workdir=root,
                redis_url=hack("redis.sh", "start", redis),
                database_url=await fresh_postgres_database(hack("postgres.sh", "start", pg)),
                embedder_port=free_port(),
            )
            stack.start_gateway()
            operator = operator_process(cluster, stack, NAMESPACE, root, root / "operator.log")
            operator.start()
            try:
                time.sleep(5)  # noqa: ASYNC251 - the bench drives blocking kubectl calls on purpose
                one = apply_and_time(cluster, ["single"], root)
                print(f"1 Collection: apply -> all children created in {one[0]:.2f} s")
                hundred = apply_and_time(cluster, [f"c{i:03d}" for i in range(100)], root)
                print(
                    f"100 Collections: {len(hundred)} done; p50 {percentile(hundred, 50):.1f} s, "
                    f"last {hundred[-1]:.1f} s after one apply"
                )
                apply_and_time(cluster, [f"d{i:03d}" for i in range(99)], root)
                assert operator.popen is not None
                print(f"operator RSS after reconciling 200 Collections: {rss_mib(operator.popen.pid):.0f} MiB")
            finally:
                operator.stop()
                stack.stop_all()
