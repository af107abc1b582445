"""Conditions follow the API conventions: lastTransitionTime moves only when the status does."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from semantik_operator.metrics import CollectionPhases
from semantik_operator.status import (
    PHASES,
    Condition,
    collection_phase,
    merge_conditions,
    ready_condition,
    workers_gone,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
T1 = datetime(2026, 1, 2, tzinfo=UTC)


def test_transition_time_changes_only_with_the_status() -> None:
    first = merge_conditions([], [Condition("Indexed", False, "Indexing", "running")], 1, T0)
    same = merge_conditions(first, [Condition("Indexed", False, "Indexing", "50% done")], 2, T1)
    assert same[0]["lastTransitionTime"] == "2026-01-01T00:00:00Z" and same[0]["message"] == "50% done"
    assert same[0]["observedGeneration"] == 2
    flipped = merge_conditions(same, [Condition("Indexed", True, "Indexed", "done")], 2, T1)
    assert flipped[0]["lastTransitionTime"] == "2026-01-02T00:00:00Z" and flipped[0]["status"] == "True"


def test_ready_carries_the_first_problem_and_the_phase_follows() -> None:
    conditions = [
        Condition("EmbedderReady", True, "Available", "1/1 ready"),
        Condition("StoreReady", False, "GatewayUnreachable", "no answer from the gateway"),
        Condition("Indexed", None, "Pending", "not yet"),
    ]
    ready = ready_condition(conditions)
    assert (ready.status, ready.reason) == (False, "GatewayUnreachable")
    assert collection_phase(conditions, indexing=False) == "Pending"
    assert collection_phase(conditions, indexing=True) == "Indexing"
    healthy = [Condition(c.type, True, "Ok", "") for c in conditions]
    assert ready_condition(healthy).status is True and collection_phase(healthy, indexing=False) == "Ready"
    invalid = [*healthy[:2], Condition("Indexed", False, "InvalidModel", "unknown model")]
    assert collection_phase(invalid, indexing=False) == "Failed"
    job_failed = [*healthy[:2], Condition("Indexed", False, "IndexJobFailed", "operation failed: ...")]
    # A failed first index leaves nothing to search; a failed reindex leaves the live generation answering.
    assert collection_phase(job_failed, indexing=False) == "Failed"
    assert collection_phase(job_failed, indexing=False, searchable=True) == "Degraded"
    assert collection_phase(conditions, indexing=False, searchable=True) == "Degraded"


def test_collections_by_phase_count_each_collection_once_in_its_latest_phase() -> None:
    phases = CollectionPhases()

    def exported() -> dict[str, float]:
        (family,) = phases.collect()
        assert family.name == "semantik_collections"
        return {sample.labels["phase"]: sample.value for sample in family.samples}

    assert set(exported()) == set(PHASES) and not any(exported().values())
    phases.record("docs", "handbook", "Indexing")
    phases.record("docs", "wiki", "Indexing")
    phases.record("ops", "handbook", "Ready")
    phases.record("docs", "handbook", "Ready")
    assert {p: n for p, n in exported().items() if n} == {"Indexing": 1, "Ready": 2}
    phases.record("docs", "wiki", "Deleting")
    phases.forget("docs", "wiki")
    phases.forget("docs", "never-seen")
    assert {p: n for p, n in exported().items() if n} == {"Ready": 2}


def test_a_refused_host_path_is_failed_not_pending() -> None:
    """No retry heals it: the Collection shows Failed (not Pending forever) and Ready carries the reason."""
    refused = [Condition("Indexed", False, "HostPathNotAllowed", "source etc: hostPath /etc is not allowed")]
    assert collection_phase(refused, indexing=False) == "Failed"
    ready = ready_condition(refused)
    assert (ready.status, ready.reason) == (False, "HostPathNotAllowed")
    missing = [Condition("Indexed", False, "SourceMissing", "claim docs does not exist")]
    assert collection_phase(missing, indexing=False) == "Pending"  # a claim may yet appear


def worker_job(condition: str | None, *, completed: str | None = None, reason: str = "") -> dict[str, Any]:
    status: dict[str, Any] = {"active": 0 if condition else 1}
    if condition:
        status["conditions"] = [
            {"type": "SuccessCriteriaMet" if condition == "Complete" else "FailureTarget", "status": "True"},
            {"type": condition, "status": "True", "reason": reason, "message": "why", "lastTransitionTime": completed},
        ]
    if completed and condition == "Complete":
        status["completionTime"] = completed
    return {"status": status}


def test_workers_still_running_or_just_finished_may_still_end_the_operation() -> None:
    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    assert workers_gone(worker_job(None), now, grace_seconds=300) is None
    assert workers_gone(worker_job("Complete", completed="2026-12-02T11:58:00Z"), now, grace_seconds=300) is None


def test_a_failed_gone_or_long_finished_worker_job_means_the_operation_cannot_end() -> None:
    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    failed = workers_gone(worker_job("Failed", reason="DeadlineExceeded"), now, grace_seconds=300)
    assert failed is not None and "DeadlineExceeded" in failed
    assert workers_gone(None, now, grace_seconds=300) == "its worker Job is gone"
    exited = workers_gone(worker_job("Complete", completed="2026-12-02T11:50:00Z"), now, grace_seconds=300)
    assert exited == "its workers all exited 600 s ago with the operation still open"
