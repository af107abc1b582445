"""A test OIDC issuer: an RSA key pair, its JWKS (as a file or served over HTTP) and tokens signed by it."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

ISSUER = "https://issuer.semantik.test"
AUDIENCE = "semantik"


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class Issuer:
    kid: str = "test-key-1"
    key: rsa.RSAPrivateKey = field(default_factory=_new_key)

    @property
    def jwks(self) -> dict[str, Any]:
        public = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**public, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    def write_jwks(self, path: Path) -> Path:
        path.write_text(json.dumps(self.jwks))
        return path

    def token(self, claims: Mapping[str, Any] | None = None, *, lifetime: float = 600, **overrides: Any) -> str:
        now = int(time.time())
        body: dict[str, Any] = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + lifetime}
        body.update(claims or {})
        body.update(overrides)
        return jwt.encode(body, self.key, algorithm="RS256", headers={"kid": self.kid})


@contextmanager
def serve_jwks(issuer: Issuer) -> Iterator[str]:
    """The issuer's JWKS at http://127.0.0.1:<port>/jwks, counting requests."""
    body = json.dumps(issuer.jwks).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/jwks" else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            if self.path == "/jwks":
                self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    with _serve(Handler) as url:
        yield f"{url}/jwks"


@dataclass
class LoginProvider:
    """An issuer's browser sign-in, as the UI's authorization code flow meets it: `/authorize` signs in
    `subject` at once and redirects back with a code; `/token` hands out tokens only for that code, the
    redirect URI it was issued for and the PKCE verifier whose challenge it saw."""

    issuer: Issuer
    client_id: str
    subject: str = "alice"
    claims: dict[str, Any] = field(default_factory=dict)
    url: str = ""
    codes: dict[str, dict[str, str]] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)


@contextmanager
def serve_login(provider: LoginProvider) -> Iterator[LoginProvider]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            if url.path != "/authorize" or query.get("response_type") != "code":
                self.send_error(404)
                return
            code = secrets.token_urlsafe(16)
            provider.codes[code] = query
            self.send_response(302)
            self.send_header(
                "Location", f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query['state']})}"
            )
            self.end_headers()

        def do_POST(self) -> None:
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode()).items()}
            asked = provider.codes.pop(form.get("code", ""), None)
            verifier = form.get("code_verifier", "")
            challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            problem = (
                "unknown code"
                if asked is None
                else "wrong client"
                if form.get("client_id") != provider.client_id
                else "wrong redirect_uri"
                if form.get("redirect_uri") != asked["redirect_uri"]
                else "wrong PKCE verifier"
                if challenge != asked["code_challenge"]
                else None
            )
            if problem is not None or asked is None:
                provider.refused.append(problem or "")
                self.send_response(400)
                self.end_headers()
                return
            id_token = provider.issuer.token({"nonce": asked["nonce"], **provider.claims}, sub=provider.subject)
            body = json.dumps({"access_token": "opaque-" + secrets.token_hex(8), "id_token": id_token}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    with _serve(Handler) as provider.url:
        yield provider


@contextmanager
def _serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """`handler` on a free loopback port in a thread; yields the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
