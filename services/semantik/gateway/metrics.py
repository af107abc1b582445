"""Prometheus metrics the gateway exports; dashboards may only query names defined here."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

REQUESTS = Counter("semantik_gateway_requests_total", "HTTP requests served.", ["method", "route", "status"])
REQUEST_SECONDS = Histogram(
    "semantik_gateway_request_seconds",
    "HTTP request latency.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
SEARCH_SECONDS = Histogram(
    "semantik_search_seconds",
    "Search latency: query embedding plus vector search.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
OPERATIONS = Counter("semantik_index_operations_total", "Index operations that ended.", ["status"])
INDEXED_CHUNKS = Counter("semantik_indexed_chunks_total", "Chunks embedded and stored.")
INDEXED_FILES = Counter("semantik_indexed_files_total", "Files processed by index operations.", ["result"])
AUDIT_EVENTS_UNSTORED = Counter(
    "semantik_audit_events_unstored_total",
    "Audit events whose database insert failed: only the semantik.audit log line holds them.",
)
