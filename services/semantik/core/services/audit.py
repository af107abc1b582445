"""The audit trail: every state-changing request, who made it, on what, and how it ended.

Each event goes to two sinks: one JSON line on the `semantik.audit` logger, then one row in
`audit_events` (what admins page through at `GET /api/v1/audit`).

Failing open, on purpose: an event is recorded once its response is known, so the mutation has already
happened and cannot be taken back, and refusing the next mutations because the audit table is unwritable
would turn a storage fault into an outage of every write. The log line is written first and does not
touch the database, so a failed insert loses no event: it is logged at ERROR beside the line, and
`record` says so, for the gateway to count (`semantik_audit_events_unstored_total`) and the operator to
alert on. A deployment that must not mutate without a stored record would need the record
written in the mutation's own transaction, which this trail does not claim.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select

from semantik.core.context import Semantik
from semantik.core.db.models import AuditEvent, utcnow
from semantik.core.logs import AUDIT_LOGGER

log = logging.getLogger(__name__)
trail = logging.getLogger(AUDIT_LOGGER)

# Column widths of `audit_events`: PostgreSQL refuses a longer value, so it is cut to fit here.
PRINCIPAL_CHARS = 200
TARGET_CHARS = 200
DETAIL_CHARS = 2000
WRITE_SECONDS = 5.0
"""How long an insert may take before it counts as failed; the request's task waits on it."""


class Outcome(enum.StrEnum):
    SUCCEEDED = "succeeded"
    DENIED = "denied"  # refused by authentication or authorisation
    FAILED = "failed"


ANONYMOUS = "anonymous"
"""The principal of a request refused before its credentials named anyone."""


@dataclass(frozen=True, slots=True)
class AuditRecord:
    principal: str
    action: str
    target: str | None
    outcome: Outcome
    status: int
    detail: str | None = None
    at: datetime = field(default_factory=utcnow)


@dataclass(frozen=True, slots=True)
class AuditView:
    id: int
    at: datetime
    principal: str
    action: str
    target: str | None
    outcome: Outcome
    status: int
    detail: str | None


def fitted(event: AuditRecord) -> AuditRecord:
    """The event as the columns take it: cut to their widths (a path parameter or an error message can be
    long) and without NUL, which PostgreSQL's text refuses and a hostile path can carry."""
    return AuditRecord(
        principal=_clean(event.principal, PRINCIPAL_CHARS),
        action=event.action,
        target=_clean(event.target, TARGET_CHARS) if event.target is not None else None,
        outcome=event.outcome,
        status=event.status,
        detail=_clean(event.detail, DETAIL_CHARS) if event.detail is not None else None,
        at=event.at,
    )


def _clean(text: str, chars: int) -> str:
    return text[:chars].replace("\x00", "\ufffd")


def log_line(event: AuditRecord) -> str:
    """The event as one JSON object: the fields of its row, `at` in ISO 8601."""
    data = asdict(event)
    data["at"] = event.at.isoformat()
    return json.dumps(data, sort_keys=True)


async def record(app: Semantik, event: AuditRecord) -> bool:
    """Log the event, then store it: False when only the log line holds it. Never raises: see the module's
    note on failing open."""
    event = fitted(event)
    trail.info(log_line(event))
    try:
        async with asyncio.timeout(WRITE_SECONDS):
            async with app.sessions.begin() as session:
                session.add(
                    AuditEvent(
                        at=event.at,
                        principal=event.principal,
                        action=event.action,
                        target=event.target,
                        outcome=event.outcome.value,
                        status=event.status,
                        detail=event.detail,
                    )
                )
    except Exception:
        log.exception("AUDIT EVENT NOT STORED (it is in the semantik.audit log only): %s", log_line(event))
        return False
    return True


async def list_events(
    app: Semantik,
    *,
    limit: int,
    offset: int,
    action: str | None = None,
    principal: str | None = None,
    target: str | None = None,
) -> Sequence[AuditView]:
    """Newest first; each filter, when given, must match exactly."""
    query = select(AuditEvent).order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(limit).offset(offset)
    if action is not None:
        query = query.where(AuditEvent.action == action)
    if principal is not None:
        query = query.where(AuditEvent.principal == principal)
    if target is not None:
        query = query.where(AuditEvent.target == target)
    async with app.sessions() as session:
        return [_view(row) for row in await session.scalars(query)]


def _view(row: AuditEvent) -> AuditView:
    # SQLite hands back naive datetimes; every one Semantik writes is UTC.
    at = row.at if row.at.tzinfo is not None else row.at.replace(tzinfo=UTC)
    return AuditView(
        id=row.id,
        at=at,
        principal=row.principal,
        action=row.action,
        target=row.target,
        outcome=Outcome(row.outcome),
        status=row.status,
        detail=row.detail,
    )
