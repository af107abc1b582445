"""Conditions follow the API conventions: lastTransitionTime moves only when the status does."""

from __future__ import annotations

from datetime import UTC, datetime

from semantik_operator.metrics import CollectionPhases
from semantik_operator.status import PHASES, Condition, collection_phase, merge_conditions, ready_condition

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
