"""Scheduled re-syncs: which cron tick, if any, is due now. The operator's timer creates one IndexJob
per tick, named after it, so a tick seen twice (a restart, two timer runs) makes one IndexJob."""

from __future__ import annotations

from datetime import UTC, datetime

from croniter import croniter


def due_tick(schedule: str, since: datetime, now: datetime) -> datetime | None:
    """The newest tick of `schedule` in (since, now], or None; ticks missed while down collapse into one."""
    previous: datetime = croniter(schedule, now.astimezone(UTC)).get_prev(datetime)
    return previous if previous > since else None


def tick_token(tick: datetime) -> str:
    return tick.astimezone(UTC).strftime("%Y%m%d%H%M")
