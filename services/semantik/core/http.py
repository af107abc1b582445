"""Every error leaves the gateway and the embedder as {"error": {"code", "message", "field"}} (contracts.errors):
the one handler of both HTTP services, here so neither imports the other."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException

from semantik.contracts.errors import ErrorOut, error_body
from semantik.core.errors import SemantikError, UnauthorizedError

log = logging.getLogger(__name__)


API_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ErrorOut, "description": "The request's mistake (401 no key, 404, 409, 413, 422, ...)"},
    503: {"model": ErrorOut, "description": "A backend is down for a moment: retry after Retry-After seconds"},
}
"""Documented on every API route, so clients (and the fuzz test) know the shape of each error."""


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(SemantikError)
    async def domain_error(request: Request, exc: SemantikError) -> JSONResponse:
        request.state.error = exc  # the audit trail tells a denial from a failure by the error's type
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, UnauthorizedError) else None
        return JSONResponse(error_body(exc.code, exc.message, exc.field), status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        # The location starts with where the value came from (body, query, path): the field follows.
        loc = [str(part) for part in first.get("loc", ())]
        field = ".".join(loc[1:]) if len(loc) > 1 else (loc[0] if loc else None)
        message = first.get("msg", "invalid request")
        if field:
            message = f"{field}: {message}"
        return JSONResponse(error_body("invalid_input", message, field), status_code=422)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(OperationalError)
    @app.exception_handler(DBAPIError)
    @app.exception_handler(ConnectionError)
    async def backend_down(_: Request, exc: Exception) -> JSONResponse:
        # The metadata database restarting is a fault that heals: 503 tells clients to retry.
        if isinstance(exc, DBAPIError) and not (exc.connection_invalidated or _is_connection_problem(exc)):
            log.exception("database error")
            return JSONResponse(error_body("internal_error", "internal error; see the gateway's log"), status_code=500)
        log.warning("backend unavailable error=%r", exc)
        return JSONResponse(
            error_body("backend_unavailable", "the metadata database is unavailable; retry shortly"),
            status_code=503,
            headers={"Retry-After": "2"},
        )

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return JSONResponse(error_body("internal_error", "internal error; see the gateway's log"), status_code=500)


def _is_connection_problem(exc: DBAPIError) -> bool:
    cause: BaseException | None = exc.orig
    while cause is not None:
        if isinstance(cause, (ConnectionError, OSError, TimeoutError)) or "connect" in type(cause).__name__.lower():
            return True
        cause = cause.__cause__
    return isinstance(exc, OperationalError)
