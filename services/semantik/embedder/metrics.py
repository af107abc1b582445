"""Prometheus metrics of the embedder service (all prefixed semantik_embedder_)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter("semantik_embedder_requests_total", "Embed requests answered.", ["status"])
REQUEST_SECONDS = Histogram(
    "semantik_embedder_request_seconds",
    "Embed request latency, queueing included.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
TEXTS = Counter("semantik_embedder_texts_total", "Texts embedded.")
TOKENS = Counter("semantik_embedder_tokens_total", "Tokens embedded (after truncation, without padding).")
BATCH_SIZE = Histogram(
    "semantik_embedder_batch_size",
    "Texts in one forward pass.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)
BATCH_TOKENS = Histogram(
    "semantik_embedder_batch_tokens",
    "Padded tokens in one forward pass.",
    buckets=(64, 256, 1024, 2048, 4096, 8192, 16384, 32768, 65536),
)
QUEUE_DEPTH = Gauge("semantik_embedder_queue_depth", "Texts waiting for a forward pass.")
ABANDONED_TEXTS = Counter(
    "semantik_embedder_abandoned_texts_total", "Queued texts dropped unembedded because their client left."
)
FORWARD_SECONDS = Histogram(
    "semantik_embedder_forward_seconds",
    "Duration of one forward pass.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
OOM_SPLITS = Counter("semantik_embedder_oom_splits_total", "Batches split in half after running out of memory.")
ERRORS = Counter("semantik_embedder_errors_total", "Requests that failed.", ["reason"])
