"""Fixtures every tier may use: the private PostgreSQL and Redis servers (see tests/support/servers.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support.servers import private_server

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a PostgreSQL server (its `semantik` database); tests make their own databases on it."""
    with private_server("postgres.sh", "SEMANTIK_TEST_POSTGRES_URL") as url:
        yield url


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with private_server("redis.sh", "SEMANTIK_TEST_REDIS_URL") as url:
        yield url
