"""API keys: random tokens shown once, stored as SHA-256 hashes, looked up by a short prefix."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from semantik.core.context import Semantik
from semantik.core.db.models import ApiKey, utcnow
from semantik.core.errors import InvalidInputError, NotFoundError, UnauthorizedError

KEY_PREFIX = "sk_"


@dataclass(frozen=True, slots=True)
class ApiKeyView:
    id: int
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked: bool


def hash_key(key: str) -> str:
    # Keys carry 256 bits of randomness, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(key.encode()).hexdigest()


async def create_key(app: Semantik, name: str) -> tuple[str, ApiKeyView]:
    if not name.strip() or len(name) > 100:
        raise InvalidInputError("key name must be 1-100 characters", field="name")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(name=name, prefix=key[:12], key_hash=hash_key(key))
    async with app.sessions.begin() as session:
        session.add(row)
    return key, _view(row)


async def list_keys(app: Semantik) -> Sequence[ApiKeyView]:
    async with app.sessions() as session:
        rows = await session.scalars(select(ApiKey).order_by(ApiKey.id))
        return [_view(row) for row in rows]


async def revoke_key(app: Semantik, key_id: int) -> None:
    async with app.sessions.begin() as session:
        row = await session.get(ApiKey, key_id)
        if row is None:
            raise NotFoundError(f"API key {key_id} does not exist", field="id")
        row.revoked_at = row.revoked_at or utcnow()


async def verify_key(app: Semantik, key: str) -> ApiKeyView:
    async with app.sessions.begin() as session:
        rows = await session.scalars(select(ApiKey).where(ApiKey.prefix == key[:12]))
        digest = hash_key(key)
        for row in rows:
            if hmac.compare_digest(row.key_hash, digest) and row.revoked_at is None:
                if _stale(row.last_used_at):
                    row.last_used_at = utcnow()
                return _view(row)
    raise UnauthorizedError("invalid or revoked API key")


def _stale(last_used: datetime | None) -> bool:
    # Writing on every request would put a DB write on the search path; a minute's precision is enough.
    if last_used is None:
        return True
    if last_used.tzinfo is None:
        last_used = last_used.replace(tzinfo=UTC)
    return utcnow() - last_used > timedelta(minutes=1)


def _view(row: ApiKey) -> ApiKeyView:
    return ApiKeyView(row.id, row.name, row.prefix, row.created_at, row.last_used_at, row.revoked_at is not None)
