"""Refuse cross-site requests that would act with a signed-in browser's session cookie.

The session cookie (`hotline_session`, SameSite=Lax) is sent by the browser whoever made the page
that sends the request, so every unsafe request (not GET, HEAD, OPTIONS) that carries the cookie
and no other credential (`Authorization`, `X-API-Key`: clients that set those are not browsers
acting for someone) must come from the service's own pages: its `Origin` header, or failing that
its `Referer`, must name this host (the request's `Host`) or one of `HOTLINE_ALLOWED_ORIGINS`.
The sign-in form (`POST /api/v1/auth/login`, which sets the cookie) is checked with or without
a cookie, so another site cannot sign a browser in to an account of the attacker's choosing
(login CSRF). A request with neither header is refused too: browsers send `Origin` on every
POST, including same-origin `fetch`. Refusals are 403 `{"error": "CrossSiteRequest", ...}`.

Only the host (and port) is compared, not the scheme: behind a TLS-terminating proxy the service
sees `http` while the browser's origin says `https`; an attacker cannot choose the host part of
a victim browser's `Origin`.
"""

from __future__ import annotations

from http.cookies import CookieError, SimpleCookie
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from service.api.security import SESSION_COOKIE
from service.channels.limits import send_error
from service.config import get_settings

__all__ = ["CSRF_CHECKED_PATHS", "SAFE_METHODS", "CsrfMiddleware", "same_origin"]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_CHECKED_PATHS = frozenset({"/api/v1/auth/login"})
"""Checked even without a session cookie: they set one."""

DETAIL = "跨站请求被拒绝：请从本系统页面操作"


def _netloc(url: str) -> str | None:
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return parts.netloc.lower()


def same_origin(origin: str | None, referer: str | None, host: str | None) -> bool:
    """Whether the request's `Origin` (else `Referer`) names `host` or an allowed origin."""
    source = origin if origin not in (None, "") else referer
    if not source or source == "null":
        return False
    netloc = _netloc(source)
    if netloc is None:
        return False
    allowed = {h.lower() for h in (host,) if h}
    for configured in get_settings().allowed_origins.split(","):
        configured_netloc = _netloc(configured.strip())
        if configured_netloc:
            allowed.add(configured_netloc)
    return netloc in allowed


def _has_session_cookie(cookie_header: str) -> bool:
    cookies: SimpleCookie = SimpleCookie()
    try:
        cookies.load(cookie_header)
    except CookieError:
        return SESSION_COOKIE in cookie_header
    return SESSION_COOKIE in cookies


class CsrfMiddleware:
    """Pure ASGI: looks at the method, path and headers only, never at the body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method", "GET") in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        headers: dict[str, str] = {}
        cookies: list[str] = []  # HTTP/2 clients may send the cookies in several headers
        for key, value in scope.get("headers", []):
            name = key.decode("latin-1").lower()
            if name == "cookie":
                cookies.append(value.decode("latin-1"))
            headers.setdefault(name, value.decode("latin-1"))
        path = scope.get("path", "")
        cookie_only = (
            _has_session_cookie("; ".join(cookies))
            and "authorization" not in headers
            and "x-api-key" not in headers
        )
        if (cookie_only or path in CSRF_CHECKED_PATHS) and not same_origin(
            headers.get("origin"), headers.get("referer"), headers.get("host")
        ):
            await send_error(send, 403, "CrossSiteRequest", DETAIL, path=path)
            return
        await self.app(scope, receive, send)
