from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from semantik.gateway.deps import SemantikDep
from semantik.gateway.errors import error_body

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="The metadata DB and the vector store answer")
async def readyz(semantik: SemantikDep) -> Response:
    checks: dict[str, str] = {}
    try:
        async with semantik.sessions() as session:
            await session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {exc}"
    try:
        await semantik.store.healthy()
        checks["store"] = "ok"
    except Exception as exc:
        checks["store"] = f"error: {exc}"
    if all(value == "ok" for value in checks.values()):
        return JSONResponse({"status": "ready", "checks": checks})
    failing = ", ".join(name for name, value in checks.items() if value != "ok")
    body = error_body("not_ready", f"not ready: {failing}") | {"checks": checks}
    return JSONResponse(body, status_code=503)


@router.get("/metrics", summary="Prometheus metrics")
async def prometheus_metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
