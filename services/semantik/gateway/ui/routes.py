"""The web UI's pages: thin handlers over the services the REST API uses, rendered by Jinja2 with autoescape.

Every page authenticates from the session cookie (see `session`); every form that changes state carries a
CSRF token and must come from this site. Errors render as pages with the API's status codes; an expired or
revoked credential sends the browser back to sign-in.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from jinja2 import StrictUndefined
from pydantic import ValidationError
from sse_starlette import EventSourceResponse

from semantik.core.access import LOCAL, Principal, Role, authorize
from semantik.core.context import Semantik
from semantik.core.errors import NotFoundError, SemantikError, UnauthorizedError
from semantik.core.search.fusion import Fusion
from semantik.core.services import collections
from semantik.core.services.chunks import get_chunk
from semantik.core.services.indexing import latest_index_operation, open_index_operation
from semantik.core.services.keys import KEY_PREFIX
from semantik.core.services.search import MAX_COLLECTIONS, Mode
from semantik.gateway.cluster import ClusterCollections, ClusterDep, rest_store, start_index_job
from semantik.gateway.deps import (
    OperationsDep,
    SemantikDep,
    authenticate,
    authorized_operation,
    get_oidc,
)
from semantik.gateway.progress import event_stream
from semantik.gateway.routers.search import run_search
from semantik.gateway.schemas import MultiSearchIn, SearchFilterIn, SearchOut
from semantik.gateway.ui import oidc_login, views
from semantik.gateway.ui.assets import STATIC, VersionedStaticFiles, static_url
from semantik.gateway.ui.session import (
    CSRF_FIELD,
    LOGIN_CSRF_COOKIE,
    MAX_COOKIE_VALUE,
    SESSION_COOKIE,
    SESSION_SECONDS,
    check_csrf,
    check_same_origin,
    clear_cookie,
    csrf_token,
    new_login_token,
    secure_cookies,
    session_credential,
    set_cookie,
)

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
# A value a template names but a handler forgot is an error, not an empty string on the page.
templates.env.undefined = StrictUndefined
static_files = VersionedStaticFiles(directory=STATIC)
templates.env.globals["static_url"] = static_url
RESULTS = 30  # hits fetched per search; at most PER_DOCUMENT of them from one file
PER_DOCUMENT = 3
SIGN_IN_REASONS = {
    "expired": "Your session ended: the key expired or was revoked, or the token ran out. Sign in again.",
    "signed-out": "You are signed out.",
}


class SignInRequired(Exception):  # noqa: N818 - a redirect, not an error
    def __init__(self, reason: str | None) -> None:
        self.reason = reason


class PageRoute(APIRoute):
    """Errors of a page render as a page (the REST API's handlers answer JSON); a missing or dead session
    redirects to sign-in."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInRequired as needed:
                return sign_in_redirect(request, needed.reason)
            except SemantikError as error:
                request.state.error = error
                return error_page(request, error.status, error.message, error.field)
            except RequestValidationError as error:
                first = error.errors()[0]
                field = ".".join(str(part) for part in first.get("loc", ())[1:]) or None
                return error_page(request, 422, f"{field}: {first.get('msg')}", field)

        return page


router = APIRouter(route_class=PageRoute, include_in_schema=False)


def base_of(request: Request) -> str:
    root: str = request.scope.get("root_path", "")
    return root.rstrip("/")


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    context.setdefault("principal", getattr(request.state, "page_principal", None))
    context.setdefault("csrf", getattr(request.state, "page_csrf", ""))
    response = templates.TemplateResponse(request, template, {"base": base_of(request), **context}, status_code=status)
    # Pages hold a collection's contents: never kept by a shared cache or the browser's history store.
    response.headers["Cache-Control"] = "no-store"
    return response


def error_page(request: Request, status: int, message: str, field: str | None) -> HTMLResponse:
    return render(request, "error.html", status, status_code=status, message=message, field=field)


def sign_in_redirect(request: Request, reason: str | None) -> RedirectResponse:
    target = f"{base_of(request)}/sign-in" + (f"?{urlencode({'reason': reason})}" if reason else "")
    response = RedirectResponse(target, status_code=303)
    if reason == "expired":
        clear_cookie(response, SESSION_COOKIE, secure=_secure(request), path=_cookie_path(request, SESSION_COOKIE))
    return response


COOKIE_PATHS = {SESSION_COOKIE: "/", LOGIN_CSRF_COOKIE: "/sign-in", oidc_login.FLOW_COOKIE: "/sign-in/oidc"}
"""Where each cookie is sent, below the gateway's base: one place, so setting and clearing agree."""


def _cookie_path(request: Request, cookie: str) -> str:
    """Cookies live under the path the gateway is served at (an Ingress may mount it below /)."""
    return base_of(request) + COOKIE_PATHS[cookie]


def _secure(request: Request) -> bool:
    semantik: Semantik = request.app.state.semantik
    return secure_cookies(request, semantik.settings.ui_cookie_secure)


async def page_principal(request: Request, semantik: SemantikDep) -> Principal:
    if not semantik.settings.auth_required:
        principal = LOCAL
        # No credential to key the token by: a secret of this process (auth off means one local gateway).
        request.state.page_csrf = csrf_token(request.app.state.ui_secret)
    else:
        credential = session_credential(request)
        if credential is None:
            raise SignInRequired(None)
        try:
            principal = await authenticate(semantik, get_oidc(request), credential)
        except UnauthorizedError as error:
            raise SignInRequired("expired") from error
        request.state.page_csrf = csrf_token(credential)
    request.state.principal = principal  # the audit trail names who made the request
    request.state.page_principal = principal
    return principal


PagePrincipal = Annotated[Principal, Depends(page_principal)]


async def checked_form(request: Request, principal: PagePrincipal) -> dict[str, Any]:
    """The form of a signed-in page's POST, once it came from this site with the session's CSRF token."""
    check_same_origin(request)
    form = await request.form()
    check_csrf(request.state.page_csrf, form.get(CSRF_FIELD))
    return dict(form)


CheckedForm = Annotated[dict[str, Any], Depends(checked_form)]


@dataclass(frozen=True, slots=True)
class CollectionChoice:
    name: str
    checked: bool


async def visible_collections(
    semantik: Semantik, cluster: ClusterCollections | None, principal: Principal
) -> list[str]:
    if cluster is not None:
        names = [resource["metadata"]["name"] for resource in await cluster.list_collections()]
    else:
        names = await collections.collection_names(semantik)
    return sorted(name for name in names if principal.sees(name))


@router.get("/", response_class=HTMLResponse)
async def search_page(
    request: Request,
    semantik: SemantikDep,
    cluster: ClusterDep,
    principal: PagePrincipal,
    q: Annotated[str, Query(max_length=4000)] = "",
    c: Annotated[list[str] | None, Query(max_length=MAX_COLLECTIONS)] = None,
    mode: Annotated[str, Query(max_length=20, description="empty: the default mode")] = "",
    fusion: Annotated[Fusion, Query()] = Fusion.DBSF,
    path: Annotated[str, Query(max_length=4096)] = "",
    ext: Annotated[str, Query(max_length=500)] = "",
) -> HTMLResponse:
    names = await visible_collections(semantik, cluster, principal)
    # None picked: every collection the principal may read (as many as one search takes).
    chosen = [name for name in c if name] if c else names[:MAX_COLLECTIONS]
    extensions = [part.strip().lstrip(".").lower() for part in ext.replace(",", " ").split() if part.strip()]
    result: SearchOut | None = None
    groups: list[views.DocumentGroup] = []
    problem: tuple[str, str | None] | None = None
    if q.strip() and chosen:
        try:
            for name in chosen:
                authorize(principal, name, Role.READ, field="c")
            body = MultiSearchIn(
                query=q,
                collections=chosen,
                k=RESULTS,
                mode=mode or None,
                fusion=fusion,
                max_per_document=PER_DOCUMENT,
                filter=SearchFilterIn(path_prefix=path or None, extensions=extensions),
            )
            started = time.perf_counter()
            result = await run_search(semantik, cluster, chosen, body, single=False)
            request.state.search_seconds = time.perf_counter() - started
            groups = views.group_by_document(result.hits, semantik.settings.ui_source_urls)
        except ValidationError as error:
            first = error.errors()[0]
            field = ".".join(str(part) for part in first.get("loc", ())) or None
            problem = (f"{field}: {first.get('msg')}", field)
        except SemantikError as error:
            if error.status >= 500:
                raise
            problem = (error.message, error.field)
    elif q.strip():
        problem = ("pick at least one collection", "c")
    status = 200 if problem is None else 422
    return render(
        request,
        "search.html",
        status,
        q=q,
        choices=[CollectionChoice(name, name in chosen) for name in names],
        mode=mode,
        fusion=fusion.value,
        modes=[m.value for m in Mode],
        fusions=[f.value for f in Fusion],
        path=path,
        ext=ext,
        result=result,
        groups=groups,
        problem=problem,
        segments=views.segments,
    )


@router.get("/collections/{name}", response_class=HTMLResponse)
async def collection_page(
    request: Request, semantik: SemantikDep, cluster: ClusterDep, principal: PagePrincipal, name: str
) -> HTMLResponse:
    authorize(principal, name, Role.READ)
    store = cluster.store(name) if cluster else name
    phase: str | None
    if cluster is not None:
        resource = await cluster.get_collection(name)
        phase = (resource.get("status") or {}).get("phase") or "Pending"
        try:
            view = await collections.get_collection(semantik, store)
        except NotFoundError:
            view = None
        if view is not None and not cluster.holds(name, view.owner):
            view = None  # the resource is shown; another namespace's index is not
    else:
        view = await collections.get_collection(semantik, name)
        phase = None
    operation = await latest_index_operation(semantik, store) if view is not None else None
    if operation is not None:
        operation = await authorized_operation(semantik, principal, operation.id, Role.READ)
    active = operation is not None and operation.finished_at is None
    if phase is None and view is not None:
        phase = views.phase(
            active=active,
            reindex=view.reindex is not None,
            documents=view.documents,
            indexed=view.indexed_documents,
            failed=view.failed_documents,
        )
    role = principal.role_on(name)
    return render(
        request,
        "collection.html",
        name=name,
        view=view,
        phase=phase,
        operation=operation,
        active=active,
        can_index=role is not None and role.covers(Role.WRITE),
        failed=await collections.list_failed_documents(semantik, store, limit=20) if view is not None else [],
    )


@router.post("/collections/{name}/index")
async def index_from_page(
    request: Request,
    semantik: SemantikDep,
    operations: OperationsDep,
    cluster: ClusterDep,
    principal: PagePrincipal,
    form: CheckedForm,
    name: str,
) -> RedirectResponse:
    authorize(principal, name, Role.WRITE)
    full = form.get("full") == "on"
    if cluster is not None:
        await start_index_job(cluster, name, None, full=full)
    else:
        operation = await open_index_operation(semantik, name, None, full=full, roots=semantik.settings.source_roots)
        await operations.start(operation.id, operation.queue)
    return RedirectResponse(f"{base_of(request)}/collections/{name}#progress", status_code=303)


@router.get("/collections/{name}/chunk", response_class=HTMLResponse)
async def chunk_page(
    request: Request,
    semantik: SemantikDep,
    cluster: ClusterDep,
    principal: PagePrincipal,
    name: str,
    path: Annotated[str, Query(min_length=1, max_length=4096)],
    index: Annotated[int, Query(ge=0, le=10_000_000)],
    q: Annotated[str, Query(max_length=4000)] = "",
) -> HTMLResponse:
    authorize(principal, name, Role.READ)
    chunk = await get_chunk(semantik, await rest_store(semantik, cluster, name), path, index, q)
    base_url = views.source_url_for(name, semantik.settings.ui_source_urls)
    return render(
        request,
        "chunk.html",
        name=name,
        chunk=chunk,
        q=q,
        parts=views.segments(chunk.text, chunk.highlights),
        source_link=views.source_link(base_url, chunk.path),
    )


@router.get("/progress/{operation_id}")
async def progress_events(
    semantik: SemantikDep,
    principal: PagePrincipal,
    operation_id: str,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> EventSourceResponse:
    """The API's progress events for the collection page's EventSource, which cannot send a bearer header:
    the same stream, authorised from the session cookie."""
    return await event_stream(semantik, principal, operation_id, last_event_id)


@router.get("/sign-in", response_class=HTMLResponse)
async def sign_in_page(
    request: Request, semantik: SemantikDep, reason: Annotated[str | None, Query(max_length=20)] = None
) -> HTMLResponse:
    return _sign_in_form(request, semantik, 200, SIGN_IN_REASONS.get(reason or ""), None)


def _sign_in_form(
    request: Request, semantik: Semantik, status: int, notice: str | None, problem: str | None
) -> HTMLResponse:
    token = new_login_token()
    response = render(
        request,
        "sign_in.html",
        status,
        notice=notice,
        problem=problem,
        csrf=token,
        oidc=semantik.settings.oidc_client_id is not None,
        auth_required=semantik.settings.auth_required,
    )
    set_cookie(
        response,
        LOGIN_CSRF_COOKIE,
        token,
        secure=_secure(request),
        max_age=3600,
        path=_cookie_path(request, LOGIN_CSRF_COOKIE),
    )
    return response


@router.post("/sign-in", response_class=HTMLResponse)
async def sign_in(request: Request, semantik: SemantikDep) -> Response:
    check_same_origin(request)
    form = await request.form()
    check_csrf(request.cookies.get(LOGIN_CSRF_COOKIE), form.get(CSRF_FIELD))
    key = form.get("api_key")
    if not isinstance(key, str) or not key.strip():
        return _sign_in_form(request, semantik, 422, None, "Enter an API key.")
    key = key.strip()
    if not key.startswith(KEY_PREFIX) or len(key) > MAX_COOKIE_VALUE:
        return _sign_in_form(request, semantik, 401, None, "That is not an API key of this gateway.")
    try:
        request.state.principal = await authenticate(semantik, None, key)  # the audit trail names who
    except UnauthorizedError as error:
        return _sign_in_form(request, semantik, 401, None, f"Sign-in refused: {error.message}")
    return _signed_in(request, key, SESSION_SECONDS)


def _signed_in(request: Request, credential: str, lifetime: int) -> Response:
    # A page that moves on by itself, not a redirect: after the issuer's cross-site redirect a redirect here
    # would still count as cross-site, and the browser would hold back the new SameSite=Strict cookie.
    response = render(request, "signed_in.html", principal=None, csrf="")
    set_cookie(
        response,
        SESSION_COOKIE,
        credential,
        secure=_secure(request),
        max_age=max(lifetime, 1),
        path=_cookie_path(request, SESSION_COOKIE),
    )
    clear_cookie(response, LOGIN_CSRF_COOKIE, secure=_secure(request), path=_cookie_path(request, LOGIN_CSRF_COOKIE))
    return response


@router.post("/sign-out")
async def sign_out(request: Request, _: CheckedForm) -> RedirectResponse:
    response = RedirectResponse(f"{base_of(request)}/sign-in?reason=signed-out", status_code=303)
    clear_cookie(response, SESSION_COOKIE, secure=_secure(request), path=_cookie_path(request, SESSION_COOKIE))
    return response


def _redirect_uri(request: Request, semantik: Semantik) -> str:
    configured = semantik.settings.oidc_redirect_url
    return configured or f"{request.url.scheme}://{request.url.netloc}{base_of(request)}/sign-in/oidc/callback"


@router.get("/sign-in/oidc")
async def oidc_start(request: Request, semantik: SemantikDep) -> RedirectResponse:
    if semantik.settings.oidc_client_id is None:
        raise NotFoundError("sign-in through OIDC is not configured here", field="oidc")
    flow = oidc_login.Flow.new()
    target = oidc_login.authorization_redirect(semantik.settings, flow, _redirect_uri(request, semantik))
    response = RedirectResponse(target, status_code=303)
    # Lax, not Strict: the issuer's redirect back is a cross-site navigation and must carry this cookie.
    response.set_cookie(
        oidc_login.FLOW_COOKIE,
        flow.cookie(),
        max_age=oidc_login.FLOW_SECONDS,
        path=_cookie_path(request, oidc_login.FLOW_COOKIE),
        secure=_secure(request),
        httponly=True,
        samesite="lax",
    )
    return response


@router.get("/sign-in/oidc/callback")
async def oidc_callback(
    request: Request,
    semantik: SemantikDep,
    code: Annotated[str | None, Query(max_length=4096)] = None,
    state: Annotated[str | None, Query(max_length=200)] = None,
    error: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    verifier = get_oidc(request)
    if semantik.settings.oidc_client_id is None or verifier is None:
        raise NotFoundError("sign-in through OIDC is not configured here", field="oidc")
    flow = oidc_login.check_state(oidc_login.Flow.from_cookie(request.cookies.get(oidc_login.FLOW_COOKIE)), state)
    if error is not None or code is None:
        raise UnauthorizedError(f"the OIDC issuer did not sign you in: {error or 'no code'}", field="code")
    tokens = await oidc_login.exchange_code(semantik.settings, flow, code, _redirect_uri(request, semantik))
    token, request.state.principal, expires = await oidc_login.signed_in_token(verifier, flow, tokens)
    if len(token) > MAX_COOKIE_VALUE:
        raise UnauthorizedError("the issuer's token is too large to keep in a cookie", field="code")
    response = _signed_in(request, token, min(SESSION_SECONDS, expires - int(time.time())))
    response.delete_cookie(oidc_login.FLOW_COOKIE, path=_cookie_path(request, oidc_login.FLOW_COOKIE))
    return response
