"""The operator's Prometheus metrics, served on SEMANTIK_OPERATOR_METRICS_PORT (9091)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from prometheus_client import Counter, Gauge, Histogram

RECONCILES = Counter("semantik_operator_reconcile_total", "Reconciles by kind and result", ["kind", "result"])
RECONCILE_SECONDS = Histogram("semantik_operator_reconcile_seconds", "Time of one reconcile", ["kind"])
IN_FLIGHT = Gauge("semantik_operator_reconciles_in_flight", "Reconciles running now", ["kind"])


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
