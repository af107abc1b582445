"""kopf handlers: read the object, call the pure builders, apply, write status. Level-based: each run
asks what should exist now, so a handler that runs again after a crash reaches the same end state."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import kopf

from semantik.contracts.models import UnknownModelError, model_spec
from semantik.contracts.naming import owner_name, store_name
from semantik.contracts.queue import queue_name
from semantik_operator import metrics
from semantik_operator.builders.common import API_VERSION
from semantik_operator.builders.embedder import (
    build_embedder_deployment,
    build_embedder_service,
    embedder_name,
    embedder_url,
    owners_without,
    stale_embedders,
)
from semantik_operator.builders.indexing import (
    build_index_job,
    build_worker_job,
    index_job_name,
    index_spec_hash,
    job_name,
    refused_host_paths,
)
from semantik_operator.builders.schedule import due_tick, tick_token
from semantik_operator.builders.store import build_store_request
from semantik_operator.gateway import Gateway, GatewayError
from semantik_operator.kube import Kube
from semantik_operator.settings import OperatorSettings
from semantik_operator.spec import CollectionSpec, IndexJobSpec, IndexMode
from semantik_operator.status import Condition, collection_phase, merge_conditions, ready_condition, workers_gone

log = logging.getLogger(__name__)

COLLECTIONS = (API_VERSION.split("/")[0], "v1alpha1", "collections")
INDEXJOBS = (API_VERSION.split("/")[0], "v1alpha1", "indexjobs")
RETRY_GATEWAY_SECONDS = 30
RETRY_NAME_TAKEN_SECONDS = 300
"""A store name another Collection holds frees only when that one is deleted or this one renamed."""


def _now() -> datetime:
    return datetime.now(UTC)


def _write_status(
    patch: kopf.Patch,
    status: kopf.Status,
    meta: kopf.Meta,
    conditions: list[Condition],
    *,
    indexing: bool,
    searchable: bool = False,
) -> None:
    everything = [*conditions, ready_condition(conditions)]
    patch.status["conditions"] = merge_conditions(
        status.get("conditions") or [], everything, meta["generation"], _now()
    )
    patch.status["observedGeneration"] = meta["generation"]
    patch.status["phase"] = phase = collection_phase(conditions, indexing=indexing, searchable=searchable)
    metrics.COLLECTION_PHASES.record(meta["namespace"], meta["name"], phase)


@kopf.on.create(*COLLECTIONS)
@kopf.on.update(*COLLECTIONS, field="spec")
@kopf.on.resume(*COLLECTIONS)
async def reconcile_collection(
    body: kopf.Body,
    spec: kopf.Spec,
    meta: kopf.Meta,
    status: kopf.Status,
    namespace: str | None,
    name: str,
    patch: kopf.Patch,
    memo: Any,
    **_: Any,
) -> None:
    assert namespace is not None, "Collections and IndexJobs are namespaced"
    async with metrics.measured("collection"):
        settings: OperatorSettings = memo.settings
        gateway: Gateway = memo.gateway
        kube: Kube = memo.kube
        parsed = CollectionSpec.model_validate(dict(spec))
        try:
            model = model_spec(parsed.embedding.model)
        except UnknownModelError as exc:
            kopf.warn(body, reason="InvalidModel", message=str(exc))
            _write_status(patch, status, meta, [Condition("Indexed", False, "InvalidModel", str(exc))], indexing=False)
            return
        if parsed.embedding.dimension not in (None, model.dimension):
            message = f"{model.name} makes {model.dimension}-dimensional vectors, not {parsed.embedding.dimension}"
            kopf.warn(body, reason="InvalidDimension", message=message)
            _write_status(
                patch, status, meta, [Condition("Indexed", False, "InvalidDimension", message)], indexing=False
            )
            return
        if _refuse_host_paths(body, patch, status, meta, parsed, settings):
            return
        for source in parsed.sources:
            if source.pvc is not None and not await kube.exists(
                "v1", "PersistentVolumeClaim", source.pvc.claim_name, namespace
            ):
                message = f"source {source.name}: PersistentVolumeClaim {source.pvc.claim_name!r} does not exist"
                kopf.warn(body, reason="SourceMissing", message=message)
                _write_status(
                    patch, status, meta, [Condition("Indexed", False, "SourceMissing", message)], indexing=False
                )
                raise kopf.TemporaryError(message, delay=60)

        store = store_name(namespace, name)
        embedder = embedder_name(parsed.embedding.model, parsed.embedding.quantization)
        request = build_store_request(
            parsed,
            source_path=settings.sources_root,
            embedder_url=embedder_url(embedder, namespace, settings.embedder_url_template),
        )
        try:
            view = await gateway.ensure_collection(store, request, owner=owner_name(namespace, name))
        except GatewayError as exc:
            if exc.owned_by_another:
                kopf.warn(body, reason="StoreNameTaken", message=str(exc))
                condition = Condition("StoreReady", False, "StoreNameTaken", str(exc))
                _write_status(patch, status, meta, [condition], indexing=False)
                raise kopf.TemporaryError(str(exc), delay=RETRY_NAME_TAKEN_SECONDS) from exc
            if exc.status == 409:
                # A reindex to an earlier spec is running: this one is prepared once that ends.
                kopf.info(body, reason="ReindexBusy", message=str(exc))
                _write_status(patch, status, meta, [Condition("Indexed", None, "ReindexBusy", str(exc))], indexing=True)
                raise kopf.TemporaryError(str(exc), delay=RETRY_GATEWAY_SECONDS) from exc
            reason = "GatewayUnreachable" if exc.unreachable else "StoreRejected"
            kopf.warn(body, reason=reason, message=str(exc))
            _write_status(patch, status, meta, [Condition("StoreReady", False, reason, str(exc))], indexing=False)
            raise kopf.TemporaryError(str(exc), delay=RETRY_GATEWAY_SECONDS) from exc

        owners = await _collections_using(kube, namespace, embedder)
        await kube.apply(build_embedder_deployment(parsed, namespace, owners or [dict(body)], settings))
        await kube.apply(build_embedder_service(embedder, namespace, owners or [dict(body)]))
        # The embedder search uses stays the live generation's until a reindex swaps the new one in.
        serving = status.get("embedderService") or embedder
        deployments = await kube.list("apps/v1", "Deployment", namespace)
        for stale in stale_embedders(deployments, meta["uid"], keep={embedder, serving}):
            await _release_embedder(kube, stale, namespace, meta["uid"])
            kopf.info(body, reason="EmbedderReleased", message=f"{stale}: no longer searched with nor built with")

        last_job = status.get("lastIndexJob")
        waiting = f"waiting for IndexJob {last_job}"
        if not last_job:
            last_job = index_job_name(name, IndexMode.FULL, meta["uid"][:8])
            waiting = f"waiting for IndexJob {last_job}"
            if await kube.create(build_index_job(body, IndexMode.FULL, last_job)):
                kopf.info(body, reason="Created", message=f"IndexJob {last_job} for the first index")
        elif view.get("reindex"):
            # Named by what it builds, so a rerun of this handler finds the same IndexJob.
            last_job = index_job_name(name, IndexMode.REINDEX, index_spec_hash(parsed))
            waiting = f"IndexJob {last_job} builds the next generation; search reads the current one meanwhile"
            if await kube.create(build_index_job(body, IndexMode.REINDEX, last_job)):
                kopf.info(body, reason="Reindexing", message=f"IndexJob {last_job}: {_describe_index(parsed)}")
        patch.status["lastIndexJob"] = last_job
        patch.status["qdrantCollection"] = f"semantik-{store}"
        patch.status["embedderService"] = serving
        conditions = [
            Condition("EmbedderReady", None, "Starting", f"Deployment {embedder} applied"),
            Condition("StoreReady", True, "Ensured", f"store collection of {store} ensured through the gateway"),
            Condition("Indexed", None, "Pending", waiting),
        ]
        _write_status(patch, status, meta, conditions, indexing=True)


def _refuse_host_paths(
    body: kopf.Body,
    patch: kopf.Patch,
    status: kopf.Status,
    meta: kopf.Meta,
    spec: CollectionSpec,
    settings: OperatorSettings,
) -> bool:
    """Ready=False HostPathNotAllowed and a Warning Event when a hostPath source is not allowed; no index
    work starts until the spec or the operator's allowed list changes."""
    refused = refused_host_paths(spec, settings.allowed_host_paths)
    if not refused:
        return False
    message = "; ".join(refused)
    kopf.warn(body, reason="HostPathNotAllowed", message=message)
    _write_status(patch, status, meta, [Condition("Indexed", False, "HostPathNotAllowed", message)], indexing=False)
    return True


def _describe_index(spec: CollectionSpec) -> str:
    e, c = spec.embedding, spec.chunking
    return f"{e.model} ({e.quantization.value}), {c.strategy} chunks of {c.chunk_size} overlapping {c.chunk_overlap}"


async def _collections_using(kube: Kube, namespace: str, embedder: str) -> list[dict[str, Any]]:
    """The embedder's owners: every Collection in the namespace whose spec asks for it, or whose live
    generation still searches with it while a reindex moves it to another."""
    owners = []
    for item in await kube.list(API_VERSION, "Collection", namespace):
        if item["metadata"].get("deletionTimestamp"):
            continue
        try:
            other = CollectionSpec.model_validate(item.get("spec") or {})
        except ValueError:
            continue
        serving = (item.get("status") or {}).get("embedderService")
        if embedder in (embedder_name(other.embedding.model, other.embedding.quantization), serving):
            owners.append(item)
    return sorted(owners, key=lambda item: item["metadata"]["name"])


async def _release_embedder(kube: Kube, embedder: str, namespace: str, uid: str) -> None:
    """This Collection no longer searches with `embedder`: drop it from the owners, or delete the
    embedder when no other Collection uses it (the garbage collector only acts on deleted owners)."""
    deployment = await kube.get("apps/v1", "Deployment", embedder, namespace)
    if deployment is None:
        return
    owners = owners_without(deployment["metadata"].get("ownerReferences") or [], uid)
    for api_version, kind in (("apps/v1", "Deployment"), ("v1", "Service")):
        if owners:
            await kube.patch(api_version, kind, embedder, namespace, {"metadata": {"ownerReferences": owners}})
        else:
            await kube.delete(api_version, kind, embedder, namespace)


@kopf.timer(*COLLECTIONS, interval=10, initial_delay=5, idle=0)
async def observe_collection(
    body: kopf.Body,
    spec: kopf.Spec,
    meta: kopf.Meta,
    status: kopf.Status,
    namespace: str | None,
    name: str,
    patch: kopf.Patch,
    memo: Any,
    **_: Any,
) -> None:
    """Copy what is true now (embedder readiness, index counts, the last IndexJob) into status."""
    assert namespace is not None, "Collections and IndexJobs are namespaced"
    if not status.get("embedderService"):
        return
    if refused_host_paths(CollectionSpec.model_validate(dict(spec)), memo.settings.allowed_host_paths):
        return  # the refusal written by reconcile_collection stands until the spec changes
    gateway: Gateway = memo.gateway
    kube: Kube = memo.kube
    deployment = await kube.get("apps/v1", "Deployment", status["embedderService"], namespace)
    wanted = (deployment or {}).get("spec", {}).get("replicas", 1)
    ready = (deployment or {}).get("status", {}).get("readyReplicas", 0) or 0
    embedder = Condition(
        "EmbedderReady",
        ready >= wanted if deployment else False,
        "Available" if deployment and ready >= wanted else "Unavailable",
        f"{ready}/{wanted} embedder pods ready" if deployment else "the embedder Deployment is missing",
    )
    try:
        view = await gateway.collection(store_name(namespace, name), owner=owner_name(namespace, name))
        store = Condition("StoreReady", view is not None, "Ensured" if view else "Missing", "store collection present")
    except GatewayError as exc:
        view = None
        store = Condition(
            "StoreReady", False, "StoreNameTaken" if exc.owned_by_another else "GatewayUnreachable", str(exc)
        )
    job = (
        await kube.get(API_VERSION, "IndexJob", status.get("lastIndexJob", ""), namespace)
        if status.get("lastIndexJob")
        else None
    )
    job_phase = (job or {}).get("status", {}).get("phase", "Pending")
    indexed_at = view.get("last_indexed_at") if view else None
    parsed = CollectionSpec.model_validate(dict(spec))
    live_as_specified = view is not None and _live_generation_is(view, parsed)
    # A failed reindex whose change was taken back (or later made good) no longer says anything.
    abandoned = (job or {}).get("spec", {}).get("mode") == IndexMode.REINDEX and live_as_specified
    if job_phase == "Failed" and not abandoned:
        indexed = Condition("Indexed", False, "IndexJobFailed", (job or {}).get("status", {}).get("message", "failed"))
    elif indexed_at:
        indexed = Condition("Indexed", True, "Indexed", f"{view['documents'] if view else 0} documents indexed")
    else:
        indexed = Condition("Indexed", None, "Indexing", f"IndexJob {status.get('lastIndexJob')} is {job_phase}")
    wanted = embedder_name(parsed.embedding.model, parsed.embedding.quantization)
    if view is not None and live_as_specified and status["embedderService"] != wanted:
        await _release_embedder(kube, status["embedderService"], namespace, meta["uid"])
        kopf.info(body, reason="Swapped", message=f"generation {view['generation']} is live; search uses {wanted}")
        patch.status["embedderService"] = wanted
    if view is not None:
        patch.status["documents"] = view["documents"]
        patch.status["chunks"] = view["chunks"]
        patch.status["failedDocuments"] = view["failed_documents"]
        if indexed_at:
            patch.status["lastIndexedAt"] = indexed_at
    _write_status(
        patch,
        status,
        meta,
        [embedder, store, indexed],
        indexing=job_phase in ("Pending", "Running"),
        searchable=bool(indexed_at),
    )


@kopf.timer(*COLLECTIONS, interval=30, initial_delay=10, idle=0)
async def scheduled_resync(
    body: kopf.Body,
    spec: kopf.Spec,
    meta: kopf.Meta,
    status: kopf.Status,
    namespace: str | None,
    name: str,
    patch: kopf.Patch,
    memo: Any,
    **_: Any,
) -> None:
    """An incremental IndexJob per due tick of indexing.schedule; a tick is skipped while a run is busy."""
    assert namespace is not None, "Collections and IndexJobs are namespaced"
    schedule = (spec.get("indexing") or {}).get("schedule")
    if not schedule or not status.get("lastIndexJob"):
        return
    since = _parse_time(status.get("lastScheduledAt") or meta["creationTimestamp"])
    tick = due_tick(schedule, since, _now())
    if tick is None:
        return
    kube: Kube = memo.kube
    patch.status["lastScheduledAt"] = tick.strftime("%Y-%m-%dT%H:%M:%SZ")
    last = await kube.get(API_VERSION, "IndexJob", status["lastIndexJob"], namespace)
    if last is not None and (last.get("status") or {}).get("phase", "Pending") in ("Pending", "Running"):
        kopf.info(
            body, reason="ScheduleSkipped", message=f"tick {tick:%Y-%m-%d %H:%M} skipped: {status['lastIndexJob']} runs"
        )
        return
    job = index_job_name(name, IndexMode.INCREMENTAL, tick_token(tick))
    if await kube.create(build_index_job(body, IndexMode.INCREMENTAL, job)):
        kopf.info(body, reason="Scheduled", message=f"IndexJob {job} for the {tick:%Y-%m-%d %H:%M} tick")
    patch.status["lastIndexJob"] = job


def _live_generation_is(view: dict[str, Any], spec: CollectionSpec) -> bool:
    """Whether the gateway's live generation is built the way the spec asks, with no reindex pending."""
    e, c = spec.embedding, spec.chunking
    try:
        model = model_spec(e.model).name
    except UnknownModelError:
        return False
    return view.get("reindex") is None and (view["model"], view["quantization"], view["chunking"]) == (
        model,
        e.quantization.value,
        {"strategy": c.strategy, "chunk_size": c.chunk_size, "chunk_overlap": c.chunk_overlap},
    )


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@kopf.on.delete(*COLLECTIONS)
async def delete_collection(
    body: kopf.Body, spec: kopf.Spec, namespace: str | None, name: str, memo: Any, retry: int, **_: Any
) -> None:
    """Drop the index through the gateway unless retained; give up (and say so) on a gateway that is gone."""
    assert namespace is not None, "Collections and IndexJobs are namespaced"
    metrics.COLLECTION_PHASES.record(namespace, name, "Deleting")
    await _drop_index(body, spec, namespace, name, memo.gateway, retry, memo.settings)
    metrics.COLLECTION_PHASES.forget(namespace, name)


async def _drop_index(
    body: kopf.Body,
    spec: kopf.Spec,
    namespace: str,
    name: str,
    gateway: Gateway,
    retry: int,
    settings: OperatorSettings,
) -> None:
    if spec.get("retainOnDelete"):
        kopf.info(body, reason="Retained", message="the index and its metadata are kept (retainOnDelete)")
        return
    try:
        await gateway.drop_collection(store_name(namespace, name), owner=owner_name(namespace, name))
    except GatewayError as exc:
        if exc.owned_by_another:
            kopf.info(body, reason="NotDropped", message=f"nothing dropped: the index is another's: {exc}")
            return
        if retry + 1 >= settings.delete_attempts:
            kopf.warn(
                body,
                reason="DeleteIncomplete",
                message=f"released after {settings.delete_attempts} attempts; the index may remain in the store: {exc}",
            )
            return
        raise kopf.TemporaryError(str(exc), delay=settings.delete_retry_seconds) from exc
    kopf.info(body, reason="Deleted", message="the index and its metadata were dropped")


@kopf.on.create(*INDEXJOBS)
@kopf.on.resume(*INDEXJOBS)
async def start_index_job(
    body: kopf.Body,
    spec: kopf.Spec,
    meta: kopf.Meta,
    status: kopf.Status,
    namespace: str | None,
    name: str,
    patch: kopf.Patch,
    memo: Any,
    **_: Any,
) -> None:
    """Open the gateway's operation (idempotent by this IndexJob's uid), then the Job of workers."""
    assert namespace is not None, "Collections and IndexJobs are namespaced"
    async with metrics.measured("indexjob"):
        if status.get("phase") in ("Succeeded", "Failed"):
            return
        settings: OperatorSettings = memo.settings
        gateway: Gateway = memo.gateway
        kube: Kube = memo.kube
        parsed = IndexJobSpec.model_validate(dict(spec))
        collection = await kube.get(API_VERSION, "Collection", parsed.collection_ref.name, namespace)
        if collection is None:
            message = f"Collection {parsed.collection_ref.name!r} does not exist"
            patch.status.update({"phase": "Failed", "message": message, "observedGeneration": meta["generation"]})
            kopf.warn(body, reason="CollectionNotFound", message=message)
            return
        collection_spec = CollectionSpec.model_validate(collection.get("spec") or {})
        refused = refused_host_paths(collection_spec, settings.allowed_host_paths)
        if refused:
            message = "; ".join(refused)
            patch.status.update({"phase": "Failed", "message": message, "observedGeneration": meta["generation"]})
            kopf.warn(body, reason="HostPathNotAllowed", message=message)
            return
        store = store_name(namespace, parsed.collection_ref.name)
        try:
            operation = await gateway.open_operation(
                store,
                owner=owner_name(namespace, parsed.collection_ref.name),
                key=meta["uid"],
                full=parsed.mode is IndexMode.FULL,
                reindex=parsed.mode is IndexMode.REINDEX,
            )
        except GatewayError as exc:
            if exc.unreachable or exc.status == 404:
                patch.status["message"] = str(exc)
                raise kopf.TemporaryError(str(exc), delay=RETRY_GATEWAY_SECONDS) from exc
            patch.status.update({"phase": "Failed", "message": str(exc), "observedGeneration": meta["generation"]})
            kopf.warn(body, reason="Rejected", message=str(exc))
            return
        operation_id = operation["operation_id"]
        embedder = embedder_name(collection_spec.embedding.model, collection_spec.embedding.quantization)
        job = build_worker_job(
            body,
            collection_spec,
            queue=queue_name(operation_id),
            embedder_url=embedder_url(embedder, namespace, settings.embedder_url_template),
            settings=settings,
        )
        if await kube.create(job):
            kopf.info(body, reason="Created", message=f"Job {job['metadata']['name']} for operation {operation_id}")
        patch.status.update(
            {
                "phase": "Running",
                "operationId": operation_id,
                "jobName": job_name(name),
                "targetCollection": f"semantik-{store}",
                "startedAt": status.get("startedAt") or _now().strftime("%Y-%m-%dT%H:%M:%SZ"),
                "observedGeneration": meta["generation"],
            }
        )


@kopf.timer(*INDEXJOBS, interval=5, initial_delay=2, idle=0)
async def observe_index_job(
    body: kopf.Body,
    status: kopf.Status,
    meta: kopf.Meta,
    namespace: str | None,
    patch: kopf.Patch,
    memo: Any,
    **_: Any,
) -> None:
    """Copy the operation's counters into status until it ends; fail it when its workers can no longer."""
    if status.get("phase") != "Running" or not status.get("operationId"):
        return
    assert namespace is not None, "IndexJobs are namespaced"
    gateway: Gateway = memo.gateway
    try:
        # The Job before the operation: workers exit only after the operation they finished has ended.
        job = await memo.kube.get("batch/v1", "Job", status.get("jobName", ""), namespace)
        operation = await gateway.operation(status["operationId"])
        if operation["status"] not in ("succeeded", "failed", "cancelled"):
            settings: OperatorSettings = memo.settings
            reason = workers_gone(job, _now(), settings.workers_exit_grace_seconds)
            if reason is not None:
                await gateway.fail_operation(status["operationId"], f"the operation cannot end: {reason}")
                operation = await gateway.operation(status["operationId"])
    except GatewayError as exc:
        patch.status["message"] = f"progress unknown: {exc}"
        return
    patch.status.update(
        {
            "totalFiles": operation["files_total"],
            "processedFiles": operation["files_processed"],
            "failedFiles": operation["files_failed"],
            "chunks": operation["chunks"],
        }
    )
    if operation["status"] in ("succeeded", "failed", "cancelled"):
        succeeded = operation["status"] == "succeeded"
        message = (
            f"{operation['files_processed']} files, {operation['chunks']} chunks, {operation['files_failed']} failed"
            if succeeded
            else f"operation {operation['status']}: {operation.get('error') or 'no reason given'}"
        )
        patch.status.update(
            {
                "phase": "Succeeded" if succeeded else "Failed",
                "completedAt": _now().strftime("%Y-%m-%dT%H:%M:%SZ"),
                "message": message,
                "conditions": merge_conditions(
                    status.get("conditions") or [],
                    [Condition("Complete", succeeded, "Succeeded" if succeeded else "OperationFailed", message)],
                    meta["generation"],
                    _now(),
                ),
            }
        )
        (kopf.info if succeeded else kopf.warn)(body, reason="Succeeded" if succeeded else "Failed", message=message)
