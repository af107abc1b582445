"""The operator against a real kube-apiserver (kwok nodes, one with a GPU), the gateway, embedder and
workers as host processes: `kubectl apply` of a Collection turns a folder into a searchable index."""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from semantik.contracts.naming import store_name
from semantik_operator.builders.embedder import embedder_name
from semantik_operator.spec import Quantization
from tests.cluster.conftest import Cluster, operator_process, prepare_operator_namespace
from tests.support.corpus import COMMON_LICENSES
from tests.support.kube import condition, pod_ready, wait
from tests.support.servers import hack, private_server_directory
from tests.support.stack import EMBEDDER_TOKEN, INTERNAL_TOKEN, Process, Stack, free_port, wait_until_ready

NAMESPACE = "semantik-test"
AUTH = {"Authorization": f"Bearer {INTERNAL_TOKEN}"}
MINILM = "sentence-transformers/all-MiniLM-L6-v2"

pytestmark = [pytest.mark.timeout(900), pytest.mark.usefixtures("crds")]


@pytest.fixture(scope="module")
def sources_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sources")
    docs = root / "docs"
    docs.mkdir()
    for name in ("Apache-2.0", "MIT", "BSD", "GPL-3", "LGPL-3", "MPL-2.0"):
        if (COMMON_LICENSES / name).exists():
            shutil.copyfile(COMMON_LICENSES / name, docs / name)
    return root


@asynccontextmanager
async def running_stack(workdir: Path, gateway_env: dict[str, str] | None = None) -> AsyncIterator[Stack]:
    """An embedder and a gateway over private PostgreSQL and Redis servers, stopped at the end."""
    from tests.support.servers import fresh_postgres_database

    with private_server_directory("postgres.sh") as pg, private_server_directory("redis.sh") as redis:
        server = hack("postgres.sh", "start", pg)
        service = Stack(
            workdir=workdir,
            redis_url=hack("redis.sh", "start", redis),
            database_url=await fresh_postgres_database(server),
            embedder_port=free_port(),
            gateway_env=gateway_env or {},
        )
        service.start_embedder()
        service.start_gateway()
        try:
            yield service
        finally:
            service.stop_all()


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    async with running_stack(tmp_path_factory.mktemp("stack")) as service:
        yield service


@pytest.fixture(scope="module")
def operator(
    cluster: Cluster, stack: Stack, sources_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Process]:
    prepare_operator_namespace(cluster, NAMESPACE)
    # The model cache the embedder mounts (the chart makes this claim): a PV bound to it by name. One folder
    # for the session: this fixture runs once per module that uses it, and a PV's hostPath is immutable.
    models = tmp_path_factory.getbasetemp() / "operator-models"
    models.mkdir(exist_ok=True)
    for manifest in (
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": "semantik-test-models"},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadOnlyMany"],
                "hostPath": {"path": str(models)},
                "storageClassName": "",
                "claimRef": {"namespace": NAMESPACE, "name": "semantik-models"},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "semantik-models", "namespace": NAMESPACE},
            "spec": {
                "accessModes": ["ReadOnlyMany"],
                "resources": {"requests": {"storage": "1Gi"}},
                "storageClassName": "",
                "volumeName": "semantik-test-models",
            },
        },
    ):
        cluster.kubectl("apply", "-f", "-", input=json.dumps(manifest))
    process = operator_process(
        cluster, stack, NAMESPACE, sources_root, tmp_path_factory.mktemp("operator") / "operator.log"
    )
    process.start()
    yield process
    process.stop()


def get(cluster: Cluster, kind: str, name: str) -> dict[str, Any] | None:
    result = cluster.kubectl("-n", NAMESPACE, "get", kind, name, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def events_of(cluster: Cluster, name: str) -> str:
    return cluster.kubectl("-n", NAMESPACE, "get", "events", "--field-selector", f"involvedObject.name={name}").stdout


def apply_collection(cluster: Cluster, name: str, sources_root: Path, **spec: Any) -> None:
    body = {
        "apiVersion": "semantik.io/v1alpha1",
        "kind": "Collection",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"sources": [{"name": "docs", "hostPath": str(sources_root / "docs")}], **spec},
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(body))


def phase_of(cluster: Cluster, name: str) -> str | None:
    return (get(cluster, "collection", name) or {}).get("status", {}).get("phase")


def index_until_ready(cluster: Cluster, name: str, sources_root: Path, stack: Stack, tmp: Path) -> None:
    """Apply the Collection with the defaults, run its first IndexJob's worker, wait for Ready."""
    apply_collection(cluster, name, sources_root)
    first = wait(
        "the first IndexJob", lambda: (get(cluster, "collection", name) or {}).get("status", {}).get("lastIndexJob")
    )
    worker = run_workers_of(cluster, first, stack, tmp)
    assert worker.wait(timeout=300) == 0, worker.log_tail()
    wait("Ready", lambda: condition(get(cluster, "collection", name), "Ready").get("status") == "True")


def reindex_job_of(cluster: Cluster, name: str) -> str:
    """The reindex IndexJob the operator made for the Collection's changed spec, once it is there."""
    return str(
        wait(
            "the reindex IndexJob",
            lambda: (job := (get(cluster, "collection", name) or {}).get("status", {}).get("lastIndexJob"))
            and "reindex" in job
            and job,
        )
    )


def run_workers_of(cluster: Cluster, index_job: str, stack: Stack, tmp: Path) -> Process:
    """Run the Job's worker as a host process with the Job's own command and environment (no container
    runtime here). Two things are mapped as a kubelet would: the Secrets (internal token, Redis URL,
    embedder token) and the model volume to the bundled model. The embedder URL is the host embedder's:
    the operator runs with SEMANTIK_OPERATOR_EMBEDDER_URL_TEMPLATE set to it, as there is no cluster DNS."""
    job_name = wait(
        "the IndexJob's Job", lambda: (get(cluster, "indexjob", index_job) or {}).get("status", {}).get("jobName")
    )
    job = wait("the Job", lambda: get(cluster, "job", job_name))
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][:2] == ["semantik", "worker"] and "--burst" in container["args"]
    secrets = {
        ("semantik-internal", "token"): INTERNAL_TOKEN,
        ("semantik-redis", "redis-url"): stack.redis_url,
        ("semantik-embedder-token", "token"): EMBEDDER_TOKEN,
    }
    env: dict[str, str] = {}
    for item in container["env"]:
        if "valueFrom" in item:
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = secrets[(ref["name"], ref["key"])]
        else:
            env[item["name"]] = item["value"]
    assert env["SEMANTIK_EMBEDDER_URL"] == stack.embedder_url
    env.pop("SEMANTIK_MODEL_PATH")
    env.pop("HOME")
    worker = Process(f"worker-{index_job}", container["args"][1:], env, tmp / f"{index_job}.log")
    worker.start()
    return worker


def ready_pod_node(cluster: Cluster, deployment_name: str) -> str | None:
    """The node of a Ready pod of the embedder Deployment, once there is one."""
    selector = f"semantik.io/embedder={deployment_name}"
    pods = json.loads(cluster.kubectl("-n", NAMESPACE, "get", "pods", "-l", selector, "-o", "json").stdout)["items"]
    ready = [pod for pod in pods if pod_ready(pod)]
    return str(ready[0]["spec"]["nodeName"]) if ready else None


def test_collection_becomes_a_searchable_index_on_the_gpu_node(
    cluster: Cluster, stack: Stack, operator: Process, sources_root: Path, tmp_path: Path
) -> None:
    apply_collection(
        cluster, "handbook", sources_root, embedder={"gpu": {"count": 1}}, embedding={"quantization": "float16"}
    )
    deployment_name = embedder_name(MINILM, Quantization.FLOAT16)
    deployment = wait("embedder Deployment", lambda: get(cluster, "deployment", deployment_name))
    pod_spec = deployment["spec"]["template"]["spec"]
    assert pod_spec["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu": "1"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod_spec["tolerations"]
    assert get(cluster, "service", deployment_name) is not None

    assert wait("a Ready embedder pod", lambda: ready_pod_node(cluster, deployment_name)) == "gpu-0"

    collection = wait(
        "status.lastIndexJob",
        lambda: (get(cluster, "collection", "handbook") or {}).get("status", {}).get("lastIndexJob"),
    )
    worker = run_workers_of(cluster, collection, stack, tmp_path)
    try:
        assert worker.wait(timeout=300) == 0, worker.log_tail()
    finally:
        worker.stop()
    index_job = wait(
        "IndexJob Succeeded",
        lambda: (job := get(cluster, "indexjob", collection))
        and job.get("status", {}).get("phase") == "Succeeded"
        and job,
    )
    assert index_job["status"]["processedFiles"] == index_job["status"]["totalFiles"] > 0
    assert index_job["status"]["chunks"] > 0
    # Ready=True comes as soon as the gateway has the index; the phase leaves Indexing once the operator
    # has also seen its IndexJob end, a status refresh later.
    ready = wait(
        "Collection Ready",
        lambda: (found := get(cluster, "collection", "handbook"))
        and condition(found, "Ready").get("status") == "True"
        and found["status"].get("phase") == "Ready"
        and found,
    )
    status = ready["status"]
    assert status["documents"] == index_job["status"]["totalFiles"]
    assert {c["type"] for c in status["conditions"]} == {"EmbedderReady", "StoreReady", "Indexed", "Ready"}
    assert status["observedGeneration"] == ready["metadata"]["generation"]
    metrics = httpx.get(f"http://127.0.0.1:{operator.env['SEMANTIK_OPERATOR_METRICS_PORT']}/metrics").text
    assert re.search(r'^semantik_collections\{phase="Ready"\} [1-9]', metrics, re.MULTILINE), metrics
    table = cluster.kubectl("-n", NAMESPACE, "get", "col").stdout
    assert all(column in table for column in ("PHASE", "READY", "DOCUMENTS", "CHUNKS", "MODEL", "AGE"))

    hits = httpx.post(
        f"{stack.gateway_url}/api/v1/collections/{store_name(NAMESPACE, 'handbook')}/search",
        json={"query": "what must I include in a NOTICE file when I redistribute", "k": 3},
        timeout=60,
    ).json()["hits"]
    assert any(hit["path"] == "docs/Apache-2.0" for hit in hits), hits


def test_unknown_model_is_ready_false_with_a_reason(cluster: Cluster, operator: Process, sources_root: Path) -> None:
    apply_collection(cluster, "mystery", sources_root, embedding={"model": "acme/unknown-model"})
    ready = wait("Ready=False", lambda: condition(get(cluster, "collection", "mystery"), "Ready") or None)
    assert ready["status"] == "False" and ready["reason"] == "InvalidModel"
    events = cluster.kubectl("-n", NAMESPACE, "get", "events", "--field-selector", "involvedObject.name=mystery").stdout
    assert "InvalidModel" in events
    cluster.kubectl("-n", NAMESPACE, "delete", "collection", "mystery")


def test_a_collection_whose_store_name_another_holds_is_refused_and_its_deletion_drops_nothing(
    cluster: Cluster, stack: Stack, operator: Process, sources_root: Path
) -> None:
    # Collection `docs` of namespace `<NAMESPACE>-a` maps to the store name of this namespace's `a-docs`.
    url = f"{stack.gateway_url}/internal/v1/collections/{store_name(NAMESPACE + '-a', 'docs')}"
    auth = {"Authorization": f"Bearer {INTERNAL_TOKEN}"}
    holder = {"owner": f"{NAMESPACE}-a/docs"}
    held = httpx.put(url, params=holder, headers=auth, json={"source_path": str(sources_root), "model": MINILM})
    assert held.status_code == 201, held.text
    try:
        apply_collection(cluster, "a-docs", sources_root)
        store = wait("StoreReady=False", lambda: condition(get(cluster, "collection", "a-docs"), "StoreReady") or None)
        assert store["status"] == "False" and store["reason"] == "StoreNameTaken", store
        assert f"{NAMESPACE}-a/docs" in store["message"]
        assert condition(get(cluster, "collection", "a-docs"), "Ready")["status"] == "False"
        assert not (get(cluster, "collection", "a-docs") or {}).get("status", {}).get("lastIndexJob")

        cluster.kubectl("-n", NAMESPACE, "delete", "collection", "a-docs", "--timeout=60s")
        events = wait(
            "the deletion's Event", lambda: got if "NotDropped" in (got := events_of(cluster, "a-docs")) else None
        )
        assert "StoreNameTaken" in events
        assert httpx.get(url, params=holder, headers=auth).status_code == 200  # the holder's index stands
    finally:
        httpx.delete(url, params=holder, headers=auth)


def test_a_host_path_outside_the_allowed_list_is_refused(
    cluster: Cluster, stack: Stack, operator: Process, sources_root: Path
) -> None:
    """The operator runs with SEMANTIK_OPERATOR_ALLOWED_HOST_PATHS = [sources_root]: a source beside it
    (a look-alike name included) is never mounted, whether the Collection or a hand-made IndexJob asks."""
    sources = [
        {"name": "docs", "hostPath": str(sources_root / "docs")},
        {"name": "evil", "hostPath": f"{sources_root}-evil/etc"},
    ]
    apply_collection(cluster, "nosy", sources_root, sources=sources)
    ready = wait("Ready=False", lambda: condition(get(cluster, "collection", "nosy"), "Ready") or None)
    assert ready["status"] == "False" and ready["reason"] == "HostPathNotAllowed", ready
    assert "source evil" in ready["message"] and "SEMANTIK_OPERATOR_ALLOWED_HOST_PATHS" in ready["message"]
    status = (get(cluster, "collection", "nosy") or {})["status"]
    assert status["phase"] == "Failed" and "lastIndexJob" not in status
    events = cluster.kubectl("-n", NAMESPACE, "get", "events", "--field-selector", "involvedObject.name=nosy").stdout
    assert "HostPathNotAllowed" in events

    index_job = {
        "apiVersion": "semantik.io/v1alpha1",
        "kind": "IndexJob",
        "metadata": {"name": "nosy-by-hand", "namespace": NAMESPACE},
        "spec": {"collectionRef": {"name": "nosy"}, "mode": "full"},
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(index_job))
    refused = wait(
        "IndexJob Failed",
        lambda: (job := get(cluster, "indexjob", "nosy-by-hand")) and job.get("status", {}).get("phase") and job,
    )
    assert refused["status"]["phase"] == "Failed" and "hostPath" in refused["status"]["message"]
    assert "jobName" not in refused["status"]
    jobs = json.loads(cluster.kubectl("-n", NAMESPACE, "get", "jobs", "-o", "json").stdout)["items"]
    mounted = [v["hostPath"]["path"] for j in jobs for v in j["spec"]["template"]["spec"]["volumes"] if "hostPath" in v]
    assert not any(path.startswith(f"{sources_root}-evil") for path in mounted), mounted

    # Taking the source out lifts the refusal: the Collection is reconciled as any other.
    apply_collection(cluster, "nosy", sources_root, sources=sources[:1])
    wait("lastIndexJob", lambda: (get(cluster, "collection", "nosy") or {}).get("status", {}).get("lastIndexJob"))
    assert condition(get(cluster, "collection", "nosy"), "Ready").get("reason") != "HostPathNotAllowed"
    cluster.kubectl("-n", NAMESPACE, "delete", "indexjob", "nosy-by-hand")
    cluster.kubectl("-n", NAMESPACE, "delete", "collection", "nosy")


def test_shared_embedder_lives_until_its_last_collection_goes(
    cluster: Cluster, stack: Stack, operator: Process, sources_root: Path
) -> None:
    apply_collection(cluster, "one", sources_root, embedding={"quantization": "bfloat16"}, retainOnDelete=True)
    apply_collection(cluster, "two", sources_root, embedding={"quantization": "bfloat16"})
    name = embedder_name(MINILM, Quantization.BFLOAT16)
    wait(
        "two owners",
        lambda: len((get(cluster, "deployment", name) or {}).get("metadata", {}).get("ownerReferences", [])) == 2,
    )
    assert "nodeSelector" not in get(cluster, "deployment", name)["spec"]["template"]["spec"]  # type: ignore[index]
    assert wait("a Ready CPU embedder pod", lambda: ready_pod_node(cluster, name)) in ("cpu-0", "cpu-1")

    cluster.kubectl("-n", NAMESPACE, "delete", "collection", "one")
    time.sleep(3)
    assert get(cluster, "deployment", name) is not None
    retained = httpx.get(
        f"{stack.gateway_url}/internal/v1/collections/{store_name(NAMESPACE, 'one')}",
        headers={"Authorization": f"Bearer {INTERNAL_TOKEN}"},
    )
    assert retained.status_code == 200  # retainOnDelete kept the index

    cluster.kubectl("-n", NAMESPACE, "delete", "collection", "two")
    wait("the Deployment garbage-collected", lambda: get(cluster, "deployment", name) is None)
    dropped = httpx.get(
        f"{stack.gateway_url}/internal/v1/collections/{store_name(NAMESPACE, 'two')}",
        headers={"Authorization": f"Bearer {INTERNAL_TOKEN}"},
    )
    assert dropped.status_code == 404  # the finalizer dropped the index


def test_operator_killed_mid_reconcile_reaches_the_same_end_state(
    cluster: Cluster, operator: Process, sources_root: Path
) -> None:
    apply_collection(cluster, "sturdy", sources_root)
    time.sleep(0.5)
    operator.kill9()
    operator.start()
    name = embedder_name(MINILM, Quantization.FLOAT32)
    deployment = wait("embedder Deployment", lambda: get(cluster, "deployment", name))
    assert [o["name"] for o in deployment["metadata"]["ownerReferences"]] == ["sturdy"]
    jobs = json.loads(
        cluster.kubectl("-n", NAMESPACE, "get", "indexjobs", "-l", "semantik.io/collection=sturdy", "-o", "json").stdout
    )
    assert len(jobs["items"]) == 1  # one first IndexJob, not one per run of the handler
    cluster.kubectl("-n", NAMESPACE, "delete", "collection", "sturdy")


def test_a_gone_gateway_does_not_block_deletion(
    cluster: Cluster, stack: Stack, operator: Process, sources_root: Path
) -> None:
    apply_collection(cluster, "orphan", sources_root)
    wait("lastIndexJob", lambda: (get(cluster, "collection", "orphan") or {}).get("status", {}).get("lastIndexJob"))
    assert stack.gateway is not None
    stack.gateway.stop()
    try:
        cluster.kubectl("-n", NAMESPACE, "delete", "collection", "orphan", "--wait=false")
        wait("the finalizer released", lambda: get(cluster, "collection", "orphan") is None, timeout=240)
        events = cluster.kubectl(
            "-n", NAMESPACE, "get", "events", "--field-selector", "involvedObject.name=orphan"
        ).stdout
        assert "DeleteIncomplete" in events and "released after 5 attempts" in events
    finally:
        stack.gateway.start()
        wait_until_ready(f"{stack.gateway_url}/healthz", stack.gateway)


def test_a_changed_spec_is_reindexed_while_search_keeps_answering(
    cluster: Cluster, stack: Stack, operator: Process, sources_root: Path, tmp_path: Path
) -> None:
    store = store_name(NAMESPACE, "evolving")
    search_url = f"{stack.gateway_url}/api/v1/collections/{store}/search"
    query = {"query": "what must I include in a NOTICE file when I redistribute", "k": 3}
    index_until_ready(cluster, "evolving", sources_root, stack, tmp_path)
    old = httpx.get(f"{stack.gateway_url}/internal/v1/collections/{store}", headers=AUTH).json()
    old_embedder = embedder_name(MINILM, Quantization.FLOAT32)
    new_embedder = embedder_name(MINILM, Quantization.BFLOAT16)

    # A new quantization and chunking: a new embedder, and an index that has to be built again.
    apply_collection(
        cluster, "evolving", sources_root, embedding={"quantization": "bfloat16"}, chunking={"chunkSize": 64}
    )
    reindex = reindex_job_of(cluster, "evolving")
    assert get(cluster, "indexjob", reindex)["spec"]["mode"] == "reindex"  # type: ignore[index]
    wait("the new embedder", lambda: get(cluster, "deployment", new_embedder))
    assert get(cluster, "deployment", old_embedder) is not None, "the live generation's embedder stays meanwhile"
    pending = httpx.get(f"{stack.gateway_url}/internal/v1/collections/{store}", headers=AUTH).json()
    assert pending["generation"] == 1 and pending["reindex"]["chunking"]["chunk_size"] == 64

    worker = run_workers_of(cluster, reindex, stack, tmp_path)
    answers = []
    try:
        while worker.running:
            response = httpx.post(search_url, json=query, timeout=30)
            assert response.status_code == 200, response.text
            answers.append([hit["path"] for hit in response.json()["hits"]])
        assert worker.wait(timeout=300) == 0, worker.log_tail()
    finally:
        worker.stop()
    assert answers and all("docs/Apache-2.0" in paths for paths in answers), answers

    wait(
        "IndexJob Succeeded",
        lambda: (get(cluster, "indexjob", reindex) or {}).get("status", {}).get("phase") == "Succeeded",
    )
    swapped = httpx.get(f"{stack.gateway_url}/internal/v1/collections/{store}", headers=AUTH).json()
    assert swapped["generation"] == 2 and swapped["reindex"] is None and swapped["quantization"] == "bfloat16"
    assert swapped["chunking"]["chunk_size"] == 64 and swapped["chunks"] > old["chunks"]
    wait(
        "search moved to the new embedder",
        lambda: (get(cluster, "collection", "evolving") or {}).get("status", {}).get("embedderService") == new_embedder,
    )
    wait("the retired embedder removed", lambda: get(cluster, "deployment", old_embedder) is None)
    assert get(cluster, "service", old_embedder) is None
    events = cluster.kubectl(
        "-n", NAMESPACE, "get", "events", "--field-selector", "involvedObject.name=evolving"
    ).stdout
    assert "Reindexing" in events and "Swapped" in events
    hits = httpx.post(search_url, json=query, timeout=30).json()["hits"]
    assert any(hit["path"] == "docs/Apache-2.0" for hit in hits), hits
    cluster.kubectl("-n", NAMESPACE, "delete", "collection", "evolving")


def test_a_model_change_whose_reindex_fails_leaves_the_live_index_and_can_be_taken_back(
    cluster: Cluster, stack: Stack, operator: Process, sources_root: Path, tmp_path: Path
) -> None:
    """A change to another model: its reindex IndexJob and its embedder are made while the live index
    keeps answering. Only MiniLM's weights exist on this machine, so the reindex's worker, whose
    embedder serves MiniLM, must refuse to build a Qwen index (the failure a model missing from the
    cache gives): the IndexJob fails with that reason and generation 1 stays live. Taking the change
    back makes the Collection Ready again and releases the embedder made for the abandoned model."""
    qwen = "Qwen/Qwen3-Embedding-0.6B"
    store = store_name(NAMESPACE, "switching")
    search_url = f"{stack.gateway_url}/api/v1/collections/{store}/search"
    query = {"query": "what must I include in a NOTICE file when I redistribute", "k": 3}
    index_until_ready(cluster, "switching", sources_root, stack, tmp_path)
    live_embedder = embedder_name(MINILM, Quantization.FLOAT32)
    qwen_embedder = embedder_name(qwen, Quantization.FLOAT32)

    apply_collection(cluster, "switching", sources_root, embedding={"model": qwen})
    reindex = reindex_job_of(cluster, "switching")
    wait("Qwen's embedder", lambda: get(cluster, "deployment", qwen_embedder))
    pending = httpx.get(f"{stack.gateway_url}/internal/v1/collections/{store}", headers=AUTH).json()
    assert pending["reindex"]["model"] == qwen and pending["reindex"]["generation"] == 2
    worker = run_workers_of(cluster, reindex, stack, tmp_path)
    worker.wait(timeout=300)
    failed = wait(
        "the reindex Failed",
        lambda: (job := get(cluster, "indexjob", reindex)) and job.get("status", {}).get("phase") == "Failed" and job,
    )
    assert f"serves {MINILM}" in failed["status"]["message"] and qwen in failed["status"]["message"]
    indexed = wait(
        "Indexed=False with the reason",
        lambda: (c := condition(get(cluster, "collection", "switching"), "Indexed")).get("reason") == "IndexJobFailed"
        and c,
    )
    assert indexed["status"] == "False" and qwen in indexed["message"]
    wait("phase Degraded: searchable, not as the spec asks", lambda: phase_of(cluster, "switching") == "Degraded")
    live = httpx.get(f"{stack.gateway_url}/internal/v1/collections/{store}", headers=AUTH).json()
    assert live["generation"] == 1 and live["model"] == MINILM
    hits = httpx.post(search_url, json=query, timeout=30).json()["hits"]
    assert any(hit["path"] == "docs/Apache-2.0" for hit in hits), hits
    assert (get(cluster, "collection", "switching") or {})["status"]["embedderService"] == live_embedder

    apply_collection(cluster, "switching", sources_root, embedding={"model": MINILM})
    wait("Ready again", lambda: condition(get(cluster, "collection", "switching"), "Ready").get("status") == "True")
    wait("the abandoned model's embedder released", lambda: get(cluster, "deployment", qwen_embedder) is None)
    assert get(cluster, "service", qwen_embedder) is None and get(cluster, "deployment", live_embedder) is not None
    back = httpx.get(f"{stack.gateway_url}/internal/v1/collections/{store}", headers=AUTH).json()
    assert back["reindex"] is None and back["generation"] == 1
    events = cluster.kubectl("-n", NAMESPACE, "get", "events", "--field-selector", "involvedObject.name=switching")
    assert "EmbedderReleased" in events.stdout
    cluster.kubectl("-n", NAMESPACE, "delete", "collection", "switching")


def test_an_index_job_whose_workers_all_left_with_work_undone_fails_instead_of_running_forever(
    cluster: Cluster, stack: Stack, operator: Process, sources_root: Path
) -> None:
    # No worker runs the queue here, and kwok completes the Job's pod within seconds: exactly what a
    # cluster sees when every burst worker exits while the operation still has work (jobs arq dropped).
    # Last in the module: the operator runs with a short grace, which would fail other tests' operations.
    default_env = operator.env
    operator.stop()
    operator.env = {**default_env, "SEMANTIK_OPERATOR_WORKERS_EXIT_GRACE_SECONDS": "5"}
    operator.start()
    try:
        apply_collection(cluster, "stranded", sources_root)
        index_job = wait(
            "lastIndexJob",
            lambda: (get(cluster, "collection", "stranded") or {}).get("status", {}).get("lastIndexJob"),
        )
        failed = wait(
            "the IndexJob Failed",
            # A fresh IndexJob has no status until the operator's first write.
            lambda: (job := get(cluster, "indexjob", index_job))
            and job.get("status", {}).get("phase") == "Failed"
            and job,
            timeout=180,
        )
        assert "its workers all exited" in failed["status"]["message"], failed["status"]
        operation_id = failed["status"]["operationId"]
        ended = httpx.get(f"{stack.gateway_url}/internal/v1/operations/{operation_id}", headers=AUTH).json()
        assert ended["status"] == "failed" and "the operation cannot end" in ended["error"], ended
        wait(
            "Indexed=False with the reason",
            lambda: condition(get(cluster, "collection", "stranded"), "Indexed").get("reason") == "IndexJobFailed",
        )
        cluster.kubectl("-n", NAMESPACE, "delete", "collection", "stranded")
    finally:
        operator.stop()
        operator.env = default_env
        operator.start()
