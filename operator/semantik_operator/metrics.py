"""The operator's Prometheus metrics, served on SEMANTIK_OPERATOR_METRICS_PORT (9091)."""

from __future__ import annotations

import time
from collections import Counter as Tally
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from semantik_operator.status import PHASES

RECONCILES = Counter("semantik_operator_reconcile_total", "Reconciles by kind and result", ["kind", "result"])
RECONCILE_SECONDS = Histogram("semantik_operator_reconcile_seconds", "Time of one reconcile", ["kind"])
IN_FLIGHT = Gauge("semantik_operator_reconciles_in_flight", "Reconciles running now", ["kind"])


class CollectionPhases(Collector):
    """Collections by the phase this operator last wrote into their status. Counted at scrape time
    from one entry per Collection, so a Collection that changes phase or goes away leaves no stale
    series behind; every phase is exported, zero included, so a dashboard shows the empty ones."""

    def __init__(self) -> None:
        self._phases: dict[tuple[str, str], str] = {}

    def record(self, namespace: str, name: str, phase: str) -> None:
        self._phases[namespace, name] = phase

    def forget(self, namespace: str, name: str) -> None:
        self._phases.pop((namespace, name), None)

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily("semantik_collections", "Collections by phase", labels=["phase"])
        counts = Tally(self._phases.values())
        for phase in (*PHASES, *sorted(set(counts) - set(PHASES))):
            family.add_metric([phase], counts[phase])
        yield family


COLLECTION_PHASES = CollectionPhases()
REGISTRY.register(COLLECTION_PHASES)


@asynccontextmanager
async def measured(kind: str) -> AsyncIterator[None]:
    started = time.perf_counter()
    IN_FLIGHT.labels(kind).inc()
    try:
        yield
    except Exception:
        RECONCILES.labels(kind, "error").inc()
        raise
    else:
        RECONCILES.labels(kind, "success").inc()
    finally:
        IN_FLIGHT.labels(kind).dec()
        RECONCILE_SECONDS.labels(kind).observe(time.perf_counter() - started)
