"""The cron schedule of incremental re-syncs: one IndexJob per due tick, missed ticks collapse."""

from __future__ import annotations

from datetime import UTC, datetime

from semantik_operator.builders.schedule import due_tick, tick_token


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


def test_a_tick_is_due_once_after_it_passes() -> None:
    assert due_tick("0 3 * * *", since=at(1, 12), now=at(2, 2, 59)) is None
    tick = due_tick("0 3 * * *", since=at(1, 12), now=at(2, 3, 1))
    assert tick == at(2, 3)
    assert due_tick("0 3 * * *", since=tick, now=at(2, 9)) is None  # already run for this tick
    assert tick_token(tick) == "202603020300"


def test_ticks_missed_while_down_collapse_into_the_newest() -> None:
    assert due_tick("@hourly", since=at(1, 0), now=at(1, 5, 30)) == at(1, 5)
    assert due_tick("*/15 * * * *", since=at(1, 5), now=at(1, 5, 44)) == at(1, 5, 30)
