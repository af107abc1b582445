"""OIDC bearer tokens: signature, `exp`, `iss` and `aud` checked by PyJWT; a claim mapped to grants."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import jwt

from semantik.core.access import Grant, Principal, PrincipalKind, Role
from semantik.core.errors import BackendUnavailableError, UnauthorizedError
from semantik.core.settings import OidcGrant, Settings

JWKS_TIMEOUT_SECONDS = 5.0
MAX_TOKEN_BYTES = 16 * 1024


class OidcVerifier:
    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        algorithms: list[str],
        claim: str,
        grants: Mapping[str, OidcGrant],
        keys: jwt.PyJWKSet | None = None,
        jwks_client: jwt.PyJWKClient | None = None,
    ) -> None:
        self._issuer = issuer
        self._audience = audience
        self._algorithms = algorithms
        self._claim = claim
        self._grants = {name: Grant(Role(grant.role), tuple(grant.collections)) for name, grant in grants.items()}
        self._keys = keys
        self._jwks_client = jwks_client

    @classmethod
    def from_settings(cls, settings: Settings) -> OidcVerifier | None:
        if settings.oidc_issuer is None:
            return None
        assert settings.oidc_audience is not None  # Settings insists on it when an issuer is set
        keys = jwks_client = None
        if settings.oidc_jwks_file is not None:
            keys = jwt.PyJWKSet.from_json(settings.oidc_jwks_file.read_text())
        else:
            assert settings.oidc_jwks_url is not None
            jwks_client = jwt.PyJWKClient(settings.oidc_jwks_url, timeout=JWKS_TIMEOUT_SECONDS, cache_keys=True)
        return cls(
            issuer=settings.oidc_issuer,
            audience=settings.oidc_audience,
            algorithms=settings.oidc_algorithms,
            claim=settings.oidc_claim,
            grants=settings.oidc_grants,
            keys=keys,
            jwks_client=jwks_client,
        )

    async def principal(self, token: str) -> Principal:
        claims = await self.verify(token)
        values = claims.get(self._claim, [])
        if isinstance(values, str):
            values = [values]
        grants = tuple(self._grants[value] for value in values if isinstance(value, str) and value in self._grants)
        subject = claims.get("email") or claims.get("sub") or "unknown"
        return Principal(PrincipalKind.OIDC, f"oidc:{str(subject)[:150]}", grants)

    async def verify(self, token: str) -> dict[str, Any]:
        if len(token) > MAX_TOKEN_BYTES:
            raise UnauthorizedError("invalid token: too long")
        try:
            key = await self._signing_key(token)
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=self._algorithms,
                audience=self._audience,
                issuer=self._issuer,
                options={"require": ["exp", "iss", "aud"]},
                leeway=30,
            )
        except jwt.PyJWKClientConnectionError as error:
            raise BackendUnavailableError(f"the OIDC issuer's keys could not be fetched: {error}") from error
        except jwt.PyJWTError as error:
            raise UnauthorizedError(f"invalid token: {error}") from error
        return claims

    async def _signing_key(self, token: str) -> jwt.PyJWK:
        if self._jwks_client is not None:
            # PyJWKClient fetches with urllib, which blocks: keep it off the event loop.
            return await asyncio.to_thread(self._jwks_client.get_signing_key_from_jwt, token)
        assert self._keys is not None
        kid = jwt.get_unverified_header(token).get("kid")
        for key in self._keys.keys:
            if kid is None or key.key_id == kid:
                return key
        raise jwt.InvalidKeyError(f"no key {kid!r} in the configured JWKS")
