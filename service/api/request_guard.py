"""Refuse oversize bodies and NUL characters in any request, in one place, before a route sees
them.

**Size.** Every route but the intake channels (which have `HOTLINE_INTAKE_MAX_BODY_BYTES` and
their own middleware) takes a body of at most `HOTLINE_MAX_BODY_BYTES` (1 MiB), and the sign-in
routes at most `AUTH_MAX_BODY_BYTES`: a larger `Content-Length` is refused with 413 before a byte
is read, and a streamed body as soon as it passes the limit, so no route (and no signature check
or authentication that reads the body first) ever holds more than the limit and one chunk.

**NUL.**
PostgreSQL text cannot hold NUL (0x00): a NUL that reaches a query is a database error, so a
500, on every route that stores or looks up what it was given (a username, a work-order number,
a filter, a nonce). This middleware answers 400 `{"error": "BadRequest", ...}` instead when
the path or the query string carries one (raw or as `%00`), or the body does: a raw NUL byte in
any body, `%00` in a form body, `\\u0000` in a JSON body. The intake channels' bodies
(`service.channels.limits.INTAKE_PATHS`) are left to the channels, which refuse a NUL in their
own documented error format (a 422 for `POST /appeals`, Open311's error list, WeChat's
message error). The body is checked as it streams through, chunk by chunk, so nothing is
buffered here (size limits stay with their owners); a NUL found there is raised as an HTTP 400
from the route's body read, which the API's error handler renders like the others.
"""

from __future__ import annotations

import re

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.errors import HTTP_ERROR_NAMES
from service.channels.limits import INTAKE_PATHS, send_error, too_large_detail
from service.config import get_settings

__all__ = ["AUTH_MAX_BODY_BYTES", "RequestGuardMiddleware"]

DETAIL = "请求中含有不允许的空字符（NUL）"
AUTH_MAX_BODY_BYTES = 8_192
"""A sign-in form or token request is a few hundred bytes."""
_SMALL_BODY_PATHS = ("/api/v1/auth/",)
_QUERY_NUL = re.compile(rb"%00|\x00")
_PATTERNS: dict[str, re.Pattern[bytes]] = {
    "form": re.compile(rb"%00|\x00"),
    "json": re.compile(rb"\\u0000|\x00", re.IGNORECASE),
    "other": re.compile(rb"\x00"),
}
_OVERLAP = 5  # the longest pattern minus one: a match split across two chunks is still seen


class _NulInBody(HTTPException):
    """An HTTP error, so that FastAPI's body parsing passes it on as it is."""

    def __init__(self) -> None:
        super().__init__(status_code=400, detail=DETAIL)


class _TooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=too_large_detail(limit))


def _limit_for(path: str) -> int:
    if path.startswith(_SMALL_BODY_PATHS):
        return AUTH_MAX_BODY_BYTES
    return get_settings().max_body_bytes


def _declared_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", []):
        if key.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _body_kind(scope: Scope) -> str:
    for key, value in scope.get("headers", []):
        if key.lower() == b"content-type":
            media = value.split(b";", 1)[0].strip().lower()
            if media == b"application/x-www-form-urlencoded":
                return "form"
            if media == b"application/json" or media.endswith(b"+json"):
                return "json"
    return "other"


class RequestGuardMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if "\x00" in path or _QUERY_NUL.search(scope.get("query_string", b"")):
            await send_error(send, 400, HTTP_ERROR_NAMES[400], DETAIL)
            return
        if path.startswith(INTAKE_PATHS):
            await self.app(scope, receive, send)
            return
        limit = _limit_for(path)
        declared = _declared_length(scope)
        if declared is not None and declared > limit:
            await send_error(send, 413, HTTP_ERROR_NAMES[413], too_large_detail(limit))
            return
        pattern = _PATTERNS[_body_kind(scope)]
        tail = b""
        size = 0
        started = False

        async def checked_receive() -> Message:
            nonlocal tail, size
            message = await receive()
            if message["type"] == "http.request":
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise _TooLarge(limit)
                if pattern.search(tail + chunk):
                    raise _NulInBody()
                tail = (tail + chunk)[-_OVERLAP:]
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, checked_receive, tracked_send)
        except (_NulInBody, _TooLarge) as exc:
            if started:
                raise
            await send_error(send, exc.status_code, HTTP_ERROR_NAMES[exc.status_code], exc.detail)
