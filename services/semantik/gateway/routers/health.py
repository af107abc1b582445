from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from sqlalchemy import text

from semantik.contracts.errors import ErrorOut, error_body
from semantik.core.context import Semantik
from semantik.gateway.deps import SemantikDep

log = logging.getLogger(__name__)

CHECK_SECONDS = 5.0
"""A dependency that does not answer in this long is unavailable: a probe must not hang."""

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


class ReadyOut(BaseModel):
    status: str
    checks: dict[str, str] = Field(description="Each dependency (database, store): ok or unavailable.")


class NotReadyOut(ErrorOut):
    checks: dict[str, str] = Field(description="Each dependency (database, store): ok or unavailable.")


@router.get(
    "/readyz",
    summary="The metadata DB and the vector store answer",
    responses={200: {"model": ReadyOut}, 503: {"model": NotReadyOut, "description": "A dependency is down"}},
)
async def readyz(semantik: SemantikDep) -> Response:
    checks = {
        "database": await _check("database", _database_answers(semantik)),
        "store": await _check("store", semantik.store.healthy()),
    }
    if all(value == "ok" for value in checks.values()):
        return JSONResponse({"status": "ready", "checks": checks})
    failing = ", ".join(name for name, value in checks.items() if value != "ok")
    body = error_body("not_ready", f"not ready: {failing}") | {"checks": checks}
    return JSONResponse(body, status_code=503)


async def _database_answers(semantik: Semantik) -> None:
    async with semantik.sessions() as session:
        await session.execute(text("SELECT 1"))


async def _check(name: str, probe: Awaitable[object]) -> str:
    # The probe is open to anyone: the exception (hosts, ports, database names) goes to the log only.
    try:
        async with asyncio.timeout(CHECK_SECONDS):
            answer = await probe
    except Exception:
        log.warning("readiness check failed dependency=%s", name, exc_info=True)
        return "unavailable"
    return "unavailable" if answer is False else "ok"


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=PlainTextResponse,
    responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {}}, "description": "Prometheus text format"}},
)
async def prometheus_metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
