"""Sign-in through the OIDC issuer: the authorization code flow with PKCE, state and nonce.

The gateway stays a resource server: the token the issuer hands back is checked by the same `OidcVerifier`
as a bearer token on the API, then kept in the session cookie like an API key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx

from semantik.core.access import Principal
from semantik.core.errors import BackendUnavailableError, UnauthorizedError
from semantik.core.settings import Settings
from semantik.gateway.oidc import OidcVerifier

FLOW_COOKIE = "semantik_oidc_flow"
FLOW_SECONDS = 600
TOKEN_TIMEOUT_SECONDS = 10.0
MAX_TOKEN_RESPONSE_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Flow:
    """What the browser carries from the sign-in redirect to the callback, in an HttpOnly cookie."""

    state: str
    verifier: str
    nonce: str

    @classmethod
    def new(cls) -> Flow:
        return cls(secrets.token_urlsafe(24), secrets.token_urlsafe(48), secrets.token_urlsafe(24))

    def cookie(self) -> str:
        return f"{self.state}.{self.verifier}.{self.nonce}"

    @classmethod
    def from_cookie(cls, value: str | None) -> Flow | None:
        parts = (value or "").split(".")
        return cls(*parts) if len(parts) == 3 and all(parts) else None

    def challenge(self) -> str:
        digest = hashlib.sha256(self.verifier.encode()).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def authorization_redirect(settings: Settings, flow: Flow, redirect_uri: str) -> str:
    assert settings.oidc_authorization_url is not None and settings.oidc_client_id is not None
    query = urlencode(
        {
            "response_type": "code",
            "client_id": settings.oidc_client_id,
            "redirect_uri": redirect_uri,
            "scope": "openid profile email",
            "state": flow.state,
            "nonce": flow.nonce,
            "code_challenge": flow.challenge(),
            "code_challenge_method": "S256",
        }
    )
    separator = "&" if "?" in settings.oidc_authorization_url else "?"
    return f"{settings.oidc_authorization_url}{separator}{query}"


def check_state(flow: Flow | None, state: str | None) -> Flow:
    if flow is None or state is None or not hmac.compare_digest(flow.state.encode(), state.encode()):
        raise UnauthorizedError("the sign-in did not start here or took too long: sign in again", field="state")
    return flow


async def exchange_code(settings: Settings, flow: Flow, code: str, redirect_uri: str) -> dict[str, Any]:
    assert settings.oidc_token_url is not None and settings.oidc_client_id is not None
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "client_id": settings.oidc_client_id,
        "code_verifier": flow.verifier,
    }
    if settings.oidc_client_secret is not None:
        form["client_secret"] = settings.oidc_client_secret.get_secret_value()
    try:
        async with httpx.AsyncClient(timeout=TOKEN_TIMEOUT_SECONDS) as client:
            response = await client.post(settings.oidc_token_url, data=form, headers={"Accept": "application/json"})
    except httpx.HTTPError as error:
        raise BackendUnavailableError(f"the OIDC issuer's token endpoint did not answer: {error}") from error
    if len(response.content) > MAX_TOKEN_RESPONSE_BYTES:
        raise UnauthorizedError("the OIDC issuer's token response is too large", field="code")
    if response.status_code != 200:
        raise UnauthorizedError(f"the OIDC issuer refused the sign-in (HTTP {response.status_code})", field="code")
    try:
        body = response.json()
    except ValueError as error:
        raise UnauthorizedError("the OIDC issuer's token response is not JSON", field="code") from error
    if not isinstance(body, dict):
        raise UnauthorizedError("the OIDC issuer's token response is not a JSON object", field="code")
    return body


async def signed_in_token(verifier: OidcVerifier, flow: Flow, tokens: dict[str, Any]) -> tuple[str, Principal, int]:
    """The token to keep, whom it names and when it expires: the access token when it is a JWT for this
    gateway's audience, else the ID token (whose nonce must be this flow's)."""
    refusals = []
    for kind in ("access_token", "id_token"):
        token = tokens.get(kind)
        if not isinstance(token, str):
            continue
        try:
            claims = await verifier.verify(token)
        except UnauthorizedError as error:
            refusals.append(f"{kind}: {error.message}")
            continue
        if kind == "id_token" and not hmac.compare_digest(str(claims.get("nonce", "")).encode(), flow.nonce.encode()):
            refusals.append("id_token: its nonce is not this sign-in's")
            continue
        return token, await verifier.principal(token), int(claims["exp"])
    raise UnauthorizedError("no token from the OIDC issuer is valid here: " + "; ".join(refusals or ["none sent"]))
