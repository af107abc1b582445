"""The audit trail over REST, for admins over every collection: who changed what, and how it ended."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from semantik.core.services import audit
from semantik.gateway.deps import AdminDep, SemantikDep
from semantik.gateway.schemas import AuditEventOut, AuditList

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])

MAX_OFFSET = 1_000_000_000  # past any real trail, and inside every database's integer range
# No NUL: PostgreSQL's text refuses it, and no stored value holds one.
Filter = Annotated[
    str | None, Query(max_length=200, pattern="^[^\\x00]*$", description="Only events whose field equals this.")
]


@router.get("", response_model=AuditList, summary="State-changing requests, newest first")
async def list_audit_events(
    semantik: SemantikDep,
    _: AdminDep,
    action: Filter = None,
    principal: Filter = None,
    target: Filter = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> AuditList:
    events = await audit.list_events(
        semantik, limit=limit, offset=offset, action=action, principal=principal, target=target
    )
    items = [AuditEventOut.model_validate(event, from_attributes=True) for event in events]
    return AuditList(items=items, limit=limit, offset=offset)
