"""The page session: the credential in an HttpOnly, SameSite=Strict cookie, and the CSRF tokens of forms.

The cookie holds the API key or OIDC token itself, so every page request is authenticated exactly as a REST
call is (an expired or revoked key stops working at once) and no session table is needed. A form's CSRF token
is an HMAC keyed by that credential: a page of another site can neither read the cookie nor the token, and
every gateway replica computes the same token without a shared secret. Before sign-in there is no credential,
so the sign-in form uses a random token in a cookie of its own (double submit).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from fastapi import Request, Response

from semantik.core.errors import ForbiddenError

SESSION_COOKIE = "semantik_session"
LOGIN_CSRF_COOKIE = "semantik_login_csrf"
CSRF_FIELD = "csrf"
# Browsers drop cookies over 4096 bytes; a credential that would not fit is refused at sign-in instead.
MAX_COOKIE_VALUE = 3800
SESSION_SECONDS = 12 * 3600


def session_credential(request: Request) -> str | None:
    value = request.cookies.get(SESSION_COOKIE)
    return value if value and len(value) <= MAX_COOKIE_VALUE else None


def csrf_token(credential: str) -> str:
    return hmac.new(credential.encode(), b"semantik-ui-csrf-v1", hashlib.sha256).hexdigest()


def new_login_token() -> str:
    return secrets.token_urlsafe(32)


def secure_cookies(request: Request, configured: bool | None) -> bool:
    """Secure cookies over HTTPS (an Ingress with TLS forwards the scheme); a plain-HTTP gateway on loopback
    would never get a Secure cookie back, so the default follows the request."""
    return configured if configured is not None else request.url.scheme == "https"


def set_cookie(response: Response, name: str, value: str, *, secure: bool, max_age: int, path: str = "/") -> None:
    response.set_cookie(name, value, max_age=max_age, path=path, secure=secure, httponly=True, samesite="strict")


def clear_cookie(response: Response, name: str, *, secure: bool, path: str = "/") -> None:
    response.delete_cookie(name, path=path, secure=secure, httponly=True, samesite="strict")


def check_same_origin(request: Request) -> None:
    """A state-changing form must come from a page of this site: browsers send `Sec-Fetch-Site` (and
    `Origin` on a POST); a request naming another site is refused even before its token is checked. Only
    the host is compared: behind an Ingress that ends TLS the gateway sees http while the page was https."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        raise ForbiddenError("cross-site form submissions are refused", field=CSRF_FIELD)
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host"):
        raise ForbiddenError("cross-site form submissions are refused", field=CSRF_FIELD)


def check_csrf(expected: str | None, submitted: object) -> None:
    if not expected or not isinstance(submitted, str) or not hmac.compare_digest(expected.encode(), submitted.encode()):
        raise ForbiddenError(
            "the form's CSRF token is missing or wrong: reload the page and try again", field=CSRF_FIELD
        )
