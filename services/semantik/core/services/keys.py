"""API keys: random tokens shown once, stored as SHA-256 hashes, looked up by a short prefix.

Each key holds one grant (a role over the collections its scopes match) and may expire.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from semantik.core.access import ALL, Grant, Principal, PrincipalKind, Role, validate_scopes
from semantik.core.context import Semantik
from semantik.core.db.models import ApiKey, utcnow
from semantik.core.errors import InvalidInputError, NotFoundError, UnauthorizedError

KEY_PREFIX = "sk_"


@dataclass(frozen=True, slots=True)
class ApiKeyView:
    id: int
    name: str
    prefix: str
    role: Role
    scopes: tuple[str, ...]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked: bool

    @property
    def principal(self) -> Principal:
        return Principal(PrincipalKind.KEY, f"key:{self.id} {self.name}", (Grant(self.role, self.scopes),))


def hash_key(key: str) -> str:
    # Keys carry 256 bits of randomness, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(key.encode()).hexdigest()


async def create_key(
    app: Semantik,
    name: str,
    *,
    role: Role = Role.ADMIN,
    scopes: tuple[str, ...] = (ALL,),
    expires_at: datetime | None = None,
) -> tuple[str, ApiKeyView]:
    """A new key and its view; the key itself is returned once and only its hash is kept."""
    if not name.strip() or len(name) > 100:
        raise InvalidInputError("key name must be 1-100 characters", field="name")
    scopes = validate_scopes(scopes)
    if expires_at is not None:
        expires_at = _aware(expires_at)
        if expires_at <= utcnow():
            raise InvalidInputError("expires_at must be in the future", field="expires_at")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(
        name=name,
        prefix=key[:12],
        key_hash=hash_key(key),
        role=Role(role).value,
        scopes=list(scopes),
        expires_at=expires_at,
    )
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
                if row.expires_at is not None and _aware(row.expires_at) <= utcnow():
                    raise UnauthorizedError("this API key has expired")
                if _stale(row.last_used_at):
                    row.last_used_at = utcnow()
                return _view(row)
    raise UnauthorizedError("invalid or revoked API key")


def _stale(last_used: datetime | None) -> bool:
    # Writing on every request would put a DB write on the search path; a minute's precision is enough.
    if last_used is None:
        return True
    return utcnow() - _aware(last_used) > timedelta(minutes=1)


def _aware(when: datetime) -> datetime:
    # SQLite hands back naive datetimes; every one Semantik writes is UTC.
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _view(row: ApiKey) -> ApiKeyView:
    return ApiKeyView(
        id=row.id,
        name=row.name,
        prefix=row.prefix,
        role=Role(row.role),
        scopes=tuple(row.scopes),
        created_at=_aware(row.created_at),
        expires_at=_aware(row.expires_at) if row.expires_at is not None else None,
        last_used_at=_aware(row.last_used_at) if row.last_used_at is not None else None,
        revoked=row.revoked_at is not None,
    )
