"""Which requests the audit trail records, how it names their target and outcome, and its log line."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.routing import APIRoute

from semantik.core.errors import ConflictError, ForbiddenError, NotFoundError, OutOfScopeError, UnauthorizedError
from semantik.core.services.audit import TARGET_CHARS, AuditRecord, Outcome, fitted, log_line
from semantik.core.settings import Settings
from semantik.gateway.app import create_app
from semantik.gateway.audit import ACTIONS, Audited, audited, error_message, outcome_of, target_of


def api_routes(tmp_path: Path) -> list[tuple[str, str]]:
    app = create_app(Settings(data_dir=tmp_path))
    return [
        (method, route.path) for route in app.routes if isinstance(route, APIRoute) for method in sorted(route.methods)
    ]


def test_every_audited_action_names_a_real_route(tmp_path: Path) -> None:
    # A renamed route would silently drop out of the trail; this is where that shows.
    routes = set(api_routes(tmp_path))
    assert set(ACTIONS) <= routes
    assert {what.action for what in ACTIONS.values()} == {
        "collection.create",
        "collection.delete",
        "collection.index",
        "operation.cancel",
        "key.create",
        "key.revoke",
        "session.sign_in",
        "session.sign_out",
    }


def test_reads_and_searches_are_not_recorded(tmp_path: Path) -> None:
    routes = api_routes(tmp_path)
    signing_in = ("GET", "/sign-in/oidc/callback")
    assert all(
        audited(method, path) is None
        for method, path in routes
        if method in ("GET", "HEAD") and (method, path) != signing_in
    )
    assert audited("POST", "/api/v1/collections/{name}/search") is None
    assert audited("POST", "/api/v1/search") is None
    assert not any(path.startswith("/internal/") for _, path in ACTIONS)


def test_methods_match_whatever_their_case() -> None:
    assert audited("delete", "/api/v1/collections/{name}") == Audited("collection.delete", path_param="name")


@pytest.mark.parametrize(
    ("status", "error", "outcome"),
    [
        (201, None, Outcome.SUCCEEDED),
        (204, None, Outcome.SUCCEEDED),
        (401, UnauthorizedError("no key"), Outcome.DENIED),
        (401, None, Outcome.DENIED),
        (403, ForbiddenError("read only"), Outcome.DENIED),
        (404, OutOfScopeError("collection 'x' does not exist"), Outcome.DENIED),
        (404, NotFoundError("collection 'x' does not exist"), Outcome.FAILED),
        (404, None, Outcome.FAILED),
        (409, ConflictError("exists"), Outcome.FAILED),
        (413, None, Outcome.FAILED),
        (422, None, Outcome.FAILED),
        (500, None, Outcome.FAILED),
        (503, None, Outcome.FAILED),
    ],
)
def test_outcome_tells_a_denial_from_a_failure(status: int, error: Exception | None, outcome: Outcome) -> None:
    assert outcome_of(status, error) is outcome


def test_target_comes_from_what_the_route_noted_then_the_path_then_the_body() -> None:
    delete = ACTIONS[("DELETE", "/api/v1/collections/{name}")]
    create = ACTIONS[("POST", "/api/v1/collections")]
    key = ACTIONS[("POST", "/api/v1/keys")]
    assert target_of(delete, {"name": "handbook"}, None, None) == "handbook"
    assert target_of(create, {}, b'{"name": "handbook", "source_path": "/docs"}', None) == "handbook"
    assert target_of(key, {}, None, "7") == "7"
    assert target_of(key, {}, None, None) is None


@pytest.mark.parametrize("body", [None, b"", b"not json", b"[1, 2]", b'{"name": 5}', b'{"other": "x"}'])
def test_a_body_without_a_name_leaves_the_target_unknown(body: bytes | None) -> None:
    assert target_of(ACTIONS[("POST", "/api/v1/collections")], {}, body, None) is None


def test_the_detail_of_an_error_is_its_message() -> None:
    body = json.dumps({"error": {"code": "forbidden", "message": "needs write", "field": None}}).encode()
    assert error_message(body) == "needs write"
    assert error_message(b"Internal Server Error") == "Internal Server Error"
    assert error_message(b"") is None
    assert error_message(b"x" * 5000) == "x" * 1000


def test_the_log_line_is_one_json_object_with_the_fields_of_the_row() -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    event = AuditRecord("key:3 ci", "collection.delete", "handbook", Outcome.DENIED, 403, "needs write", at)
    line = log_line(event)
    assert "\n" not in line
    assert json.loads(line) == {
        "principal": "key:3 ci",
        "action": "collection.delete",
        "target": "handbook",
        "outcome": "denied",
        "status": 403,
        "detail": "needs write",
        "at": "2026-01-02T03:04:05+00:00",
    }


def test_long_values_are_cut_to_the_columns() -> None:
    event = fitted(AuditRecord("anonymous", "collection.delete", "x" * 5000, Outcome.FAILED, 404, "y" * 10_000))
    assert event.target == "x" * TARGET_CHARS
    assert event.detail is not None and len(event.detail) < 10_000


def test_nul_never_reaches_the_database() -> None:
    event = fitted(AuditRecord("oidc:a\x00b", "key.revoke", "7\x00", Outcome.FAILED, 422, "bad\x00"))
    assert (event.principal, event.target, event.detail) == ("oidc:a\ufffdb", "7\ufffd", "bad\ufffd")
