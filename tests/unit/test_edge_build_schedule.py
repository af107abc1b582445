"""When the edge store builds its HNSW index while points stream in. A build re-indexes the whole shard, so
the schedule decides whether loading a million chunks costs a few builds' worth of work or hundreds."""

from __future__ import annotations

from semantik.core.store.edge import BUILD_AFTER_POINTS, build_due

BATCH = 256
"""Points per upsert, as the indexing sink writes them."""


def load(points: int) -> tuple[int, int, int]:
    """Stream `points` in; returns the points all builds indexed in total, the number of builds, and the
    points left unbuilt at the end."""
    built = unbuilt = work = builds = 0
    for _ in range(0, points, BATCH):
        unbuilt += BATCH
        if build_due(built, unbuilt):
            work += built + unbuilt
            built, unbuilt, builds = built + unbuilt, 0, builds + 1
    return work, builds, unbuilt


def test_loading_a_million_points_costs_at_most_three_builds_of_everything() -> None:
    work, builds, _ = load(1_000_000)
    assert work <= 3 * 1_000_000
    assert builds <= 12
    # Building every 20k points instead, as the store first did: 25 times one build of everything.
    every_20k = sum(range(BUILD_AFTER_POINTS, 1_000_001, BUILD_AFTER_POINTS))
    assert every_20k > 8 * work


def test_what_waits_unbuilt_is_at_most_a_third_of_the_store() -> None:
    for points in (30_000, 100_000, 250_000, 1_000_000):
        _, _, unbuilt = load(points)
        assert unbuilt <= max(BUILD_AFTER_POINTS, points // 3), points


def test_nothing_is_built_for_fewer_points_than_a_build_is_worth() -> None:
    assert not build_due(0, BUILD_AFTER_POINTS - 1)
    assert build_due(0, BUILD_AFTER_POINTS)
    assert not build_due(1_000_000, BUILD_AFTER_POINTS)
    assert build_due(1_000_000, 500_000)
