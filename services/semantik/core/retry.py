"""Bounded retries with exponential backoff for faults that heal (a store restart, a dropped connection)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, OperationalError

from semantik.core.errors import BackendUnavailableError

T = TypeVar("T")
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    BackendUnavailableError,
    ConnectionError,
    TimeoutError,
    OperationalError,
    DBAPIError,
)

log = logging.getLogger(__name__)


async def with_retries(
    action: Callable[[], Awaitable[T]],
    *,
    what: str,
    attempts: int = 5,
    first_delay: float = 0.5,
    transient: tuple[type[BaseException], ...] = TRANSIENT_ERRORS,
) -> T:
    delay = first_delay
    for attempt in range(1, attempts + 1):
        try:
            return await action()
        except transient as exc:
            if attempt == attempts:
                raise
            log.warning("retrying what=%s attempt=%d delay=%.1fs error=%r", what, attempt, delay, exc)
            await asyncio.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")
