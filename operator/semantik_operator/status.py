"""Status in the Kubernetes API conventions: metav1.Condition entries and the phase they imply."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

CONDITION_TYPES = ("EmbedderReady", "StoreReady", "Indexed")
PHASES = ("Pending", "Indexing", "Ready", "Degraded", "Failed", "Deleting")
"""Every phase collection_phase can give, as the CRD's status.phase enum lists them."""
REFUSED = ("HostPathNotAllowed",)
"""Reasons that no retry heals: the spec (or the operator's settings) must change."""


@dataclass(frozen=True, slots=True)
class Condition:
    type: str
    status: bool | None
    """True, False, or None for Unknown."""
    reason: str
    message: str


def _status_text(status: bool | None) -> str:
    return "Unknown" if status is None else str(status)


def merge_conditions(
    existing: Sequence[Mapping[str, Any]], updates: Sequence[Condition], generation: int, now: datetime
) -> list[dict[str, Any]]:
    """New condition list; lastTransitionTime moves only when a condition's status changes."""
    by_type = {c["type"]: dict(c) for c in existing}
    for update in updates:
        previous = by_type.get(update.type)
        status = _status_text(update.status)
        changed = previous is None or previous.get("status") != status
        by_type[update.type] = {
            "type": update.type,
            "status": status,
            "reason": update.reason,
            "message": update.message,
            "lastTransitionTime": now.strftime("%Y-%m-%dT%H:%M:%SZ") if changed else previous["lastTransitionTime"],  # type: ignore[index]
            "observedGeneration": generation,
        }
    return sorted(by_type.values(), key=lambda c: c["type"])


def ready_condition(conditions: Sequence[Condition]) -> Condition:
    """Ready is True when every other condition is; otherwise it carries the first one that is not."""
    for condition in conditions:
        if condition.status is not True:
            return Condition("Ready", False if condition.status is False else None, condition.reason, condition.message)
    return Condition("Ready", True, "AllReady", "the index is built and its embedder is serving")


def collection_phase(
    conditions: Sequence[Condition], *, indexing: bool, searchable: bool = False, deleting: bool = False
) -> str:
    """`searchable`: a generation of the index is live and answers, whatever else is wrong."""
    if deleting:
        return "Deleting"
    by_type = {c.type: c for c in conditions}
    if any(c.status is False and (c.reason.startswith("Invalid") or c.reason in REFUSED) for c in conditions):
        return "Failed"
    if indexing:
        return "Indexing"
    if all(by_type.get(t) is not None and by_type[t].status is True for t in CONDITION_TYPES):
        return "Ready"
    if searchable or (by_type.get("Indexed") is not None and by_type["Indexed"].status is True):
        return "Degraded"
    if any(c.status is False and c.reason == "IndexJobFailed" for c in conditions):
        return "Failed"
    return "Pending"


def _kube_time(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def workers_gone(job: Mapping[str, Any] | None, now: datetime, grace_seconds: float) -> str | None:
    """Why an IndexJob's open operation can no longer end by itself, or None while its workers may still
    end it. Its Job failed (a deadline, too many crashed pods), is gone, or completed `grace_seconds` ago:
    every burst worker left while work stayed undone (jobs arq dropped, say), and nothing would ever run it.
    """
    if job is None:
        return "its worker Job is gone"
    status = job.get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Failed":
            return f"its worker Job failed ({condition.get('reason', 'no reason')}: {condition.get('message', '')})"
        if condition.get("type") == "Complete":
            completed = status.get("completionTime") or condition.get("lastTransitionTime")
            waited = (now - _kube_time(completed)).total_seconds() if completed else grace_seconds
            if waited >= grace_seconds:
                return f"its workers all exited {waited:.0f} s ago with the operation still open"
    return None
