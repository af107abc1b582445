"""How a Qdrant server lays out one store collection across its peers: shards, replicas, RAM or disk.

Chosen once per Semantik collection and kept on its row, so every store collection made for it (the
first one, each generation a reindex builds, a backfill's copy) is laid out alike. A Qdrant server cannot
reshard a collection in place, so a store collection keeps the placement it was created with.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StorePlacement:
    """None in a field means the Qdrant server's own default for it: a shard per peer at creation, one copy,
    vectors in RAM and payloads on disk."""

    shards: int | None = None
    """Shards of the collection (Qdrant's shard_number), spread over the peers; fixed at creation."""
    replication_factor: int | None = None
    """Copies of each shard on different peers: 2 keeps every shard served while one peer is down."""
    on_disk: bool | None = None
    """True: dense vectors, the sparse index and payloads are memory-mapped from disk and only the HNSW
    graph stays in RAM; False: all in RAM."""
