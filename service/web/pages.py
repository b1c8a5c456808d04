"""Page routes: sign-in, the agent console, the department inbox, the supervisor dashboard and
the department assessment.

Pages are static HTML (service/web/templates) plus the bundled assets under /static; the scripts
talk to the JSON API with the HttpOnly session cookie. A page answers a visitor without a valid
session with a redirect to /login, and a signed-in user whose role may not use it with a redirect
to that role's own page. Every page forbids loading anything from another origin (CSP).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Cookie, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from router.errors import Unauthorized
from router.workorders.workflow import Role
from service.api.deps import DbSession
from service.api.security import SESSION_COOKIE, remote_addr, resolve_actor
from service.auth.security import Actor
from service.web import reference

__all__ = ["HOME_BY_ROLE", "STATIC_DIR", "router"]

WEB_DIR = Path(__file__).resolve().parent
STATIC_DIR = WEB_DIR / "static"
TEMPLATE_DIR = WEB_DIR / "templates"

HOME_BY_ROLE: dict[str, str] = {
    Role.AGENT: "/console",
    Role.DEPARTMENT: "/inbox",
    Role.SUPERVISOR: "/dashboard",
    Role.ADMIN: "/dashboard",
}
PAGE_ROLES: dict[str, frozenset[str]] = {
    "console": frozenset({Role.AGENT, Role.SUPERVISOR, Role.ADMIN}),
    "inbox": frozenset({Role.AGENT, Role.DEPARTMENT, Role.SUPERVISOR, Role.ADMIN}),
    "dashboard": frozenset({Role.SUPERVISOR, Role.ADMIN}),
    "assessment": frozenset({Role.SUPERVISOR, Role.ADMIN}),
}
# Nothing from another origin: no CDN, no web font, no beacon. `data:` only for the inline icon.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

router = APIRouter()
router.include_router(reference.router)
router.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

SessionCookie = Annotated[str | None, Cookie(alias=SESSION_COOKIE, include_in_schema=False)]


@cache
def _template(name: str) -> str:
    return (TEMPLATE_DIR / f"{name}.html").read_text(encoding="utf-8")


def _html(name: str) -> HTMLResponse:
    return HTMLResponse(_template(name), headers=PAGE_HEADERS)


def _session_actor(request: Request, db_session: DbSession, token: str | None) -> Actor | None:
    """The signed-in user of the session cookie; None when absent, expired or revoked."""
    if not token:
        return None
    try:
        actor = resolve_actor(
            db_session=db_session,
            bearer=None,
            api_key=None,
            session_token=token,
            address=remote_addr(request),
        )
    except Unauthorized:
        return None
    return actor if actor is not None and actor.kind == "user" else None


def _to_login(request: Request) -> RedirectResponse:
    target = request.url.path
    return RedirectResponse(f"/login?next={quote(target, safe='/')}", status_code=303)


def _page(request: Request, db_session: DbSession, token: str | None, name: str) -> Response:
    actor = _session_actor(request, db_session, token)
    if actor is None:
        return _to_login(request)
    if actor.role not in PAGE_ROLES[name]:
        return RedirectResponse(HOME_BY_ROLE.get(actor.role, "/login"), status_code=303)
    return _html(name)


@router.get("/", include_in_schema=False)
def home(request: Request, db_session: DbSession, session: SessionCookie = None) -> Response:
    actor = _session_actor(request, db_session, session)
    if actor is None:
        return _to_login(request)
    return RedirectResponse(HOME_BY_ROLE.get(actor.role, "/login"), status_code=303)


@router.get("/login", include_in_schema=False)
def login_page() -> Response:
    return _html("login")


@router.get("/console", include_in_schema=False)
def console_page(
    request: Request, db_session: DbSession, session: SessionCookie = None
) -> Response:
    return _page(request, db_session, session, "console")


@router.get("/inbox", include_in_schema=False)
def inbox_page(request: Request, db_session: DbSession, session: SessionCookie = None) -> Response:
    return _page(request, db_session, session, "inbox")


@router.get("/dashboard", include_in_schema=False)
def dashboard_page(
    request: Request, db_session: DbSession, session: SessionCookie = None
) -> Response:
    return _page(request, db_session, session, "dashboard")


@router.get("/assessment", include_in_schema=False)
def assessment_page(
    request: Request, db_session: DbSession, session: SessionCookie = None
) -> Response:
    return _page(request, db_session, session, "assessment")
