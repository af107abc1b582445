"""The whole product on a real node: the chart installed from images built here, a Collection indexed by
the operator's embedder and worker pods, searched, reindexed and deleted through the real Services.

Everything runs for real: the images come from the repository's Dockerfiles (hack/images.sh), the pods run
in containerd under a kubelet joined to the control plane (hack/node.sh, tests/e2e/conftest.py), Services
go through kube-proxy and names through CoreDNS. Only Qdrant is the gateway's embedded store (no Qdrant
image can be had here): the chart's `qdrant.mode: embedded`, from charts/semantik/ci/node-values.yaml.

The tests run in file order on one release: install, index and search, reindex under search, a gateway
killed mid-index, deletion."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from semantik.core.pipeline.chunk import chunk_text
from semantik.core.pipeline.extract import ExtractionError, read_and_extract
from semantik.core.pipeline.tokens import load_tokenizer
from semantik.core.services.collections import ChunkingSpec
from semantik.core.settings import bundled_model_path
from tests.cluster.conftest import Cluster
from tests.support.corpus import build_corpus, build_many_files
from tests.support.kube import condition, pod_ready, wait

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "hack" / "images.sh"
CHART = ROOT / "charts" / "semantik"
NAMESPACE = "semantik"
RELEASE = "semantik"
FULLNAME = RELEASE  # the chart names objects <release> when the release's name holds "semantik"
MODEL = "sentence-transformers/all-MiniLM-L6-v2"
APP_UID = 10001  # the service image's user: the volumes the pods write must be its
QUERY = "how many days of paid leave do employees get per year"
EXPECTED_FIRST = "docs/handbook/vacation.txt"


def timed(step: str, started: float) -> None:
    print(f"e2e: {step} took {time.monotonic() - started:.1f}s", file=sys.stderr, flush=True)


def run(*args: str | Path, timeout: float = 1800) -> str:
    """A hack/ script, its stderr (timings) passed through; a failure fails the test with its output."""
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout)
    sys.stderr.write(result.stderr)
    assert result.returncode == 0, f"{' '.join(map(str, args))} failed ({result.returncode}):\n{result.stderr[-6000:]}"
    return result.stdout


@dataclass
class Release:
    """The installed chart and what the tests need to reach it."""

    cluster: Cluster
    sources: Path
    api_key: str
    forwards: list[subprocess.Popen[str]] = field(default_factory=list)

    def kubectl(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return self.cluster.kubectl("-n", NAMESPACE, *args, **kwargs)

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        result = self.kubectl("get", kind, name, "-o", "json", check=False)
        return json.loads(result.stdout) if result.returncode == 0 else None

    def pods(self, selector: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = json.loads(self.kubectl("get", "pods", "-l", selector, "-o", "json").stdout)[
            "items"
        ]
        return items

    @contextmanager
    def gateway(self) -> Iterator[httpx.Client]:
        """An API client through `kubectl port-forward` to the gateway Service (its first API key)."""
        forward = subprocess.Popen(
            ["kubectl", "-n", NAMESPACE, "port-forward", f"service/{FULLNAME}-gateway", ":8080"],
            env=self.cluster.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            assert forward.stdout is not None
            line = forward.stdout.readline()
            match = re.search(r"127\.0\.0\.1:(\d+)", line)
            assert match, f"kubectl port-forward said: {line}{forward.stdout.read() if forward.poll() else ''}"
            # Drain what it prints per connection, or the pipe fills and it blocks.
            threading.Thread(target=forward.stdout.read, daemon=True).start()
            headers = {"Authorization": f"Bearer {self.api_key}"}
            with httpx.Client(base_url=f"http://127.0.0.1:{match[1]}", headers=headers, timeout=60) as client:
                yield client
        finally:
            forward.terminate()
            forward.wait(timeout=10)


def index_job_report(release: Release, name: str) -> str:
    """What a stuck IndexJob's failure should show: its status, and the last log lines of its workers,
    the gateway, the operator and PostgreSQL."""
    status = (release.get("indexjob", name) or {}).get("status", {})
    parts = [f"IndexJob {name} status: {json.dumps(status, indent=1)}"]
    selectors = [f"job-name={status.get('jobName')}"] + [
        f"app.kubernetes.io/component={component}" for component in ("gateway", "operator", "postgresql")
    ]
    for selector in selectors:
        for pod in release.pods(selector):
            logs = release.kubectl("logs", pod["metadata"]["name"], "--all-containers", "--tail=80", check=False)
            parts.append(f"--- {pod['metadata']['name']} ({selector}) ---\n{logs.stdout}{logs.stderr}")
    return "\n".join(parts)


def secret_value(release: Release, name: str, key: str) -> str:
    secret = release.get("secret", name)
    assert secret is not None, f"no Secret {name}"
    return base64.b64decode(secret["data"][key]).decode()


def host_volume(path: Path, *, owner: int | None = None) -> Path:
    """A node folder the pods can reach: every parent searchable, owned by the pods' user if they write it."""
    path.mkdir(parents=True, exist_ok=True)
    for part in [path, *path.parents]:
        if part == Path("/"):
            break
        part.chmod(part.stat().st_mode | 0o555)
    if owner is not None:
        os.chown(path, owner, owner)
    return path


def persistent_volume(name: str, path: Path, claim: str, modes: list[str]) -> dict[str, Any]:
    """A hostPath PersistentVolume bound ahead to one claim of the release (no provisioner here)."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name},
        "spec": {
            "capacity": {"storage": "2Gi"},
            "accessModes": modes,
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "semantik-local",
            "hostPath": {"path": str(path), "type": "Directory"},
            "claimRef": {"namespace": NAMESPACE, "name": claim},
        },
    }


def expected_documents(folder: Path, chunking: ChunkingSpec) -> dict[str, tuple[str, int]]:
    """Each file's status and chunk count under `chunking`, computed on the host apart from the product's
    runner: the answer the cluster's index must match exactly."""
    tokenizer = load_tokenizer(bundled_model_path())
    expected = {}
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = f"docs/{file.relative_to(folder)}"
        try:
            text = read_and_extract(file, relative).text
        except ExtractionError:
            expected[relative] = ("failed", 0)
            continue
        expected[relative] = ("indexed", len(chunk_text(text, chunking.config(), tokenizer)))
    return expected


def indexed_documents(client: httpx.Client, name: str) -> dict[str, tuple[str, int]]:
    response = client.get(f"/api/v1/collections/{name}/documents", params={"limit": 1000})
    assert response.status_code == 200, response.text
    return {item["path"]: (item["status"], item["chunk_count"]) for item in response.json()["items"]}


def collection(name: str, source: Path, **spec: Any) -> dict[str, Any]:
    """A Collection on CPU with small requests (the node has two cores), indexed by one worker pod."""
    body: dict[str, Any] = {
        "sources": [{"name": "docs", "hostPath": str(source)}],
        "embedding": {"model": MODEL, "quantization": "float32"},
        "chunking": {"strategy": "recursive", "chunkSize": 200, "chunkOverlap": 32},
        "embedder": {
            "replicas": 1,
            "gpu": {"count": 0},
            "resources": {"requests": {"cpu": "100m", "memory": "512Mi"}, "limits": {"memory": "3Gi"}},
        },
        "indexing": {"parallelism": 1, "batchSize": 8},
    }
    for key, value in spec.items():
        body[key] = {**body.get(key, {}), **value} if isinstance(value, dict) else value
    return {
        "apiVersion": "semantik.io/v1alpha1",
        "kind": "Collection",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": body,
    }


def ready_collection(release: Release, name: str, timeout: float = 600) -> dict[str, Any]:
    """The Collection once Ready=True and phase Ready (the phase follows when the operator saw the IndexJob end)."""
    found: dict[str, Any] = wait(
        f"Collection {name} Ready",
        lambda: (body := release.get("collection", name))
        and condition(body, "Ready").get("status") == "True"
        and body["status"].get("phase") == "Ready"
        and body,
        timeout=timeout,
        every=2,
    )
    return found


def chunking_of(body: dict[str, Any]) -> ChunkingSpec:
    chunking = body["spec"]["chunking"]
    return ChunkingSpec(
        strategy=chunking["strategy"], chunk_size=chunking["chunkSize"], chunk_overlap=chunking["chunkOverlap"]
    )


@pytest.fixture(scope="module")
def release(node_cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Release]:
    """The chart installed on the real node from images built here, every pod Running and Ready."""
    cluster: Cluster = node_cluster.cluster
    started = time.monotonic()
    run(IMAGES, "build")
    timed("images built (hack/images.sh build)", started)
    started = time.monotonic()
    run(IMAGES, "import", node_cluster.containerd_address)
    timed("images imported into the node's containerd", started)

    # Under the node's own directory: removed with the cluster, whatever happens.
    volumes = Path(node_cluster.directory) / "volumes"
    models = host_volume(volumes / "models")
    bundled = bundled_model_path()
    shutil.copytree(bundled, models / f"models--{MODEL.replace('/', '--')}", dirs_exist_ok=True)
    host_volume(volumes / "gateway-data", owner=APP_UID)
    sources = host_volume(volumes / "sources")
    build_corpus(sources / "handbook")
    build_many_files(sources / "notes")
    for path in sources.rglob("*"):
        path.chmod(path.stat().st_mode | (0o555 if path.is_dir() else 0o444))

    cluster.kubectl("create", "namespace", NAMESPACE)
    for name, path, claim, modes in [
        ("e2e-models", models, f"{FULLNAME}-models", ["ReadWriteMany", "ReadWriteOnce", "ReadOnlyMany"]),
        ("e2e-gateway-data", volumes / "gateway-data", f"{FULLNAME}-gateway-data", ["ReadWriteOnce"]),
    ]:
        cluster.apply(persistent_volume(name, path, claim, modes))

    started = time.monotonic()
    helm = subprocess.run(
        [
            "helm", "install", RELEASE, str(CHART), "--namespace", NAMESPACE,
            "-f", str(CHART / "ci" / "node-values.yaml"),
            "--set-json", f"operator.allowedHostPaths={json.dumps([str(sources)])}",
            "--wait", "--timeout", "10m",
        ],
        env=cluster.env, capture_output=True, text=True, timeout=700,
    )  # fmt: skip
    if helm.returncode != 0:
        pods = cluster.kubectl("-n", NAMESPACE, "get", "pods", "-o", "wide", check=False).stdout
        events = cluster.kubectl("-n", NAMESPACE, "get", "events", "--sort-by=.lastTimestamp", check=False).stdout
        raise AssertionError(f"helm install failed:\n{helm.stderr}\n{pods}\n{events[-6000:]}")
    timed("helm install to every pod Ready", started)

    release = Release(cluster, sources, "")
    release.api_key = secret_value(release, f"{FULLNAME}-api-key", "api-key")
    try:
        yield release
    finally:
        subprocess.run(
            ["helm", "uninstall", RELEASE, "--namespace", NAMESPACE, "--wait", "--timeout", "2m"],
            env=cluster.env, capture_output=True, timeout=180,
        )  # fmt: skip


def test_every_pod_of_the_chart_runs_on_the_real_node_and_helm_test_passes(node_cluster: Any, release: Release) -> None:
    pods = json.loads(release.kubectl("get", "pods", "-o", "json").stdout)["items"]
    running = {pod["metadata"]["name"]: pod for pod in pods if pod["status"].get("phase") == "Running"}
    components = {pod["metadata"]["labels"].get("app.kubernetes.io/component") for pod in running.values()}
    assert {"gateway", "embedder", "operator", "postgresql", "redis"} <= components, components
    assert all(pod_ready(pod) for pod in running.values()), [p for p, pod in running.items() if not pod_ready(pod)]
    assert {pod["spec"]["nodeName"] for pod in running.values()} == {node_cluster.node_name}
    # The containers really run the images built here, as their own non-root users.
    statuses = [status for pod in running.values() for status in pod["status"]["containerStatuses"]]
    assert all(status["image"].startswith("localhost/semantik-") for status in statuses), statuses
    assert all(status["containerID"].startswith("containerd://") for status in statuses)
    logs = release.kubectl("logs", f"deployment/{FULLNAME}-gateway").stdout
    assert "Application startup complete" in logs or "Uvicorn running" in logs, logs[-2000:]

    started = time.monotonic()
    result = subprocess.run(
        ["helm", "test", RELEASE, "--namespace", NAMESPACE, "--logs", "--timeout", "5m"],
        env=release.cluster.env, capture_output=True, text=True, timeout=400,
    )  # fmt: skip
    timed("helm test", started)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Succeeded" in result.stdout, result.stdout


def test_a_collection_is_indexed_by_pods_and_searched_through_the_gateway_service(release: Release) -> None:
    started = time.monotonic()
    body = collection("handbook", release.sources / "handbook")
    release.cluster.apply(body)
    found = ready_collection(release, "handbook")
    timed("Collection applied to Ready", started)

    # The operator's own embedder Deployment served the index; the worker pods ran `semantik worker`.
    embedders = release.pods("semantik.io/embedder")
    assert embedders and all(pod_ready(pod) for pod in embedders), embedders
    index_job = release.get("indexjob", found["status"]["lastIndexJob"])
    assert index_job is not None and index_job["status"]["phase"] == "Succeeded", index_job
    job = release.get("job", index_job["status"]["jobName"])
    assert job is not None and job["status"].get("succeeded", 0) >= 1, job
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][:2] == ["semantik", "worker"] and container["image"].startswith("localhost/")

    expected = expected_documents(release.sources / "handbook", chunking_of(body))
    # The chart runs the gateway in cluster mode: REST speaks of the Collection's own name.
    with release.gateway() as client:
        assert indexed_documents(client, "handbook") == expected
        hits = client.post("/api/v1/collections/handbook/search", json={"query": QUERY, "k": 3}).json()["hits"]
        listed = client.get("/api/v1/collections").json()["items"]
    assert [(item["name"], item["phase"]) for item in listed] == [("handbook", "Ready")], listed
    assert hits and hits[0]["path"] == EXPECTED_FIRST, hits
    indexed = [status for status, _ in expected.values() if status == "indexed"]
    assert found["status"]["documents"] == len(indexed)
    assert found["status"]["chunks"] == sum(count for _, count in expected.values())


def test_a_chunking_change_swaps_generations_while_searches_keep_answering(release: Release) -> None:
    body = collection("handbook", release.sources / "handbook", chunking={"chunkSize": 64, "chunkOverlap": 8})
    with release.gateway() as client:
        before = client.get("/api/v1/collections/handbook").json()["index"]
        started = time.monotonic()
        release.cluster.apply(body)
        answers: list[list[str]] = []
        failures: list[str] = []

        def swapped() -> bool:
            response = client.post("/api/v1/collections/handbook/search", json={"query": QUERY, "k": 3})
            if response.status_code != 200:
                failures.append(f"{response.status_code} {response.text}")
            else:
                answers.append([hit["path"] for hit in response.json()["hits"]])
            state = client.get("/api/v1/collections/handbook").json()["index"]
            return bool(state["generation"] == before["generation"] + 1 and state["reindex"] is None)

        wait("the new generation", swapped, timeout=600, every=0.5)
        timed("reindex (chunking change) to the swap", started)
        after = client.get("/api/v1/collections/handbook").json()["index"]
        documents = indexed_documents(client, "handbook")
    assert not failures, failures
    assert len(answers) > 5 and all(paths and paths[0] == EXPECTED_FIRST for paths in answers), answers
    assert after["chunking"]["chunk_size"] == 64 and after["chunks"] > before["chunks"]
    assert documents == expected_documents(release.sources / "handbook", chunking_of(body))
    ready_collection(release, "handbook")


def test_a_gateway_killed_mid_index_is_replaced_and_the_index_job_still_succeeds(release: Release) -> None:
    body = collection("notes", release.sources / "notes")
    release.cluster.apply(body)
    index_job_name = wait(
        "the notes IndexJob",
        lambda: (release.get("collection", "notes") or {}).get("status", {}).get("lastIndexJob"),
        timeout=300,
    )
    # Mid-index: the worker pod has started handing batches to the gateway.
    wait(
        "the IndexJob processing files",
        lambda: (release.get("indexjob", index_job_name) or {}).get("status", {}).get("processedFiles", 0) > 0,
        timeout=600,
        every=0.5,
    )
    (victim,) = release.pods("app.kubernetes.io/component=gateway")
    started = time.monotonic()
    release.kubectl("delete", "pod", victim["metadata"]["name"], "--grace-period=0", "--force", "--wait=false")
    wait(
        "a new gateway pod Ready",
        lambda: [
            pod
            for pod in release.pods("app.kubernetes.io/component=gateway")
            if pod["metadata"]["uid"] != victim["metadata"]["uid"] and pod_ready(pod)
        ],
        timeout=300,
    )
    timed("gateway pod killed to its replacement Ready", started)
    try:
        # Below pytest's own limit, so a hang fails here with the pods' account of it.
        index_job = wait(
            "the IndexJob to finish",
            lambda: (job := release.get("indexjob", index_job_name))
            and job.get("status", {}).get("phase") in ("Succeeded", "Failed")
            and job,
            timeout=360,
            every=2,
        )
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{index_job_report(release, index_job_name)}") from exc
    assert index_job["status"]["phase"] == "Succeeded", index_job_report(release, index_job_name)
    found = ready_collection(release, "notes")

    expected = expected_documents(release.sources / "notes", chunking_of(body))
    with release.gateway() as client:
        assert indexed_documents(client, "notes") == expected
    assert index_job["status"]["chunks"] == sum(count for _, count in expected.values())
    assert found["status"]["chunks"] == sum(count for _, count in expected.values())


def test_deleting_a_collection_removes_its_children_and_its_index(release: Release) -> None:
    found = release.get("collection", "notes")
    assert found is not None
    embedder = found["status"]["embedderService"]
    uid = found["metadata"]["uid"]
    started = time.monotonic()
    release.kubectl("delete", "collection", "notes", "--timeout=120s")
    timed("Collection deleted", started)

    def owned_left() -> list[str]:
        left = []
        for kind in ("indexjobs", "jobs"):
            for item in json.loads(release.kubectl("get", kind, "-o", "json").stdout)["items"]:
                if any(ref["uid"] == uid for ref in item["metadata"].get("ownerReferences", [])):
                    left.append(f"{kind}/{item['metadata']['name']}")
        return left

    wait("the notes IndexJobs and Jobs gone", lambda: not owned_left(), timeout=120)
    # The embedder is shared by model and precision: handbook still uses the same one, so it stays.
    assert release.get("deployment", embedder) is not None
    with release.gateway() as client:
        assert client.get("/api/v1/collections/notes").status_code == 404
        assert client.get("/api/v1/collections/handbook").status_code == 200

    release.kubectl("delete", "collection", "handbook", "--timeout=120s")
    wait("the last Collection's embedder removed", lambda: release.get("deployment", embedder) is None, timeout=120)
    assert release.get("service", embedder) is None
    with release.gateway() as client:
        assert client.get("/api/v1/collections/handbook").status_code == 404
