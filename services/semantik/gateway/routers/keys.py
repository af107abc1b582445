"""API keys over REST, for admins over every collection: create (the key shown once), list, revoke."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from semantik.core.services import keys
from semantik.core.services.keys import ApiKeyView
from semantik.gateway import audit
from semantik.gateway.deps import AdminDep, SemantikDep
from semantik.gateway.schemas import KeyCreated, KeyIn, KeyList, KeyOut

router = APIRouter(prefix="/api/v1/keys", tags=["keys"])


def key_out(view: ApiKeyView) -> KeyOut:
    return KeyOut(
        id=view.id,
        name=view.name,
        prefix=view.prefix,
        role=view.role,
        collections=list(view.scopes),
        created_at=view.created_at,
        expires_at=view.expires_at,
        last_used_at=view.last_used_at,
        revoked=view.revoked,
    )


@router.post("", status_code=status.HTTP_201_CREATED, response_model=KeyCreated, summary="Create a key")
async def create_key(semantik: SemantikDep, _: AdminDep, body: KeyIn, request: Request) -> KeyCreated:
    key, view = await keys.create_key(
        semantik, body.name, role=body.role, scopes=tuple(body.collections), expires_at=body.expires_at
    )
    audit.note(request, str(view.id), f"{view.name}: {view.role.value} on {', '.join(view.scopes)}")
    return KeyCreated(key=key, **key_out(view).model_dump())


@router.get("", response_model=KeyList)
async def list_keys(semantik: SemantikDep, _: AdminDep) -> KeyList:
    return KeyList(items=[key_out(view) for view in await keys.list_keys(semantik)])


@router.delete("/{key_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Revoke a key; it stops working at once")
async def revoke_key(semantik: SemantikDep, _: AdminDep, key_id: int) -> Response:
    await keys.revoke_key(semantik, key_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
