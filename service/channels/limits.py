"""Limits of the intake channels: text length, request size, rate per caller, body encodings.

`IntakeLimitsMiddleware` (pure ASGI) guards the intake paths (`INTAKE_PATHS`):

* a body larger than `HOTLINE_INTAKE_MAX_BODY_BYTES` is refused with 413 before it is read: at
  once when `Content-Length` says so, otherwise as soon as the streamed body passes the limit
  (at most limit + one chunk is ever held in memory);
* a JSON or form body whose `Content-Type` names a Chinese charset (GBK, GB2312, GB18030, CP936)
  is transcoded to UTF-8 before the application sees it, so every endpoint reads Unicode text;
  bytes that are not valid in the declared charset are a 400, another charset a 415.

Errors have the usual `{"error", "detail"}` body, except under `/open311/`, where they have the
GeoReport v2 shape `[{"code", "description"}]`.

`take_intake_hits` applies the intake rate limits, counted in the database
(`service.throttle`), so they hold across every `hotline serve` process and host:
`HOTLINE_INTAKE_RATE_LIMIT` submissions per `HOTLINE_INTAKE_RATE_WINDOW_SECONDS` for each caller
(`wechat:<openid>`, `phone:<number>`), and `HOTLINE_INTAKE_CLIENT_RATE_LIMIT` per window for
each client (`ip:<address>`, `api_key:<hash>`), so that varying the caller field a client sends
does not lift its limit.
"""

from __future__ import annotations

import codecs
import hashlib
import json
from collections.abc import Sequence
from urllib.parse import parse_qsl, urlencode

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.config import Settings, get_settings
from service.db import Database
from service.error_codes import error_body
from service.throttle import service as throttle
from service.throttle.service import Limit

__all__ = [
    "INTAKE_PATHS",
    "MAX_TEXT_LENGTH",
    "BodyEncodingError",
    "IntakeLimitsMiddleware",
    "caller_limit",
    "client_keys",
    "client_limit",
    "decode_text",
    "send_error",
    "take_intake_hits",
    "too_large_detail",
]

MAX_TEXT_LENGTH = 5000
"""Longest appeal text accepted by any channel (characters)."""

INTAKE_PATHS = (
    "/api/v1/appeals",
    "/api/v1/classify",
    "/api/v1/phone/",
    "/wechat",
    "/open311/",
)

CHINESE_CHARSETS = frozenset({"gbk", "gb2312", "gb18030", "cp936"})
_UTF8 = frozenset({"utf_8", "utf-8", "ascii", "us-ascii"})
_TRANSCODED_TYPES = ("application/json", "application/x-www-form-urlencoded")


class BodyEncodingError(ValueError):
    """The body is not valid in its declared (or any supported) charset."""


def canonical_charset(name: str) -> str:
    """The codec name of `name` ("GBK" → "gbk", "CP936" → "gbk"); unknown names lower-cased."""
    try:
        return codecs.lookup(name.strip().strip('"')).name
    except LookupError:
        return name.strip().strip('"').lower()


def charset_of(content_type: str | None) -> str | None:
    if not content_type:
        return None
    for parameter in content_type.split(";")[1:]:
        key, _, value = parameter.partition("=")
        if key.strip().lower() == "charset" and value.strip():
            return canonical_charset(value)
    return None


def decode_text(body: bytes, charset: str | None) -> str:
    """Decode with the declared charset; undeclared: UTF-8, else GB18030 (a superset of GBK)."""
    if charset is not None:
        codec = "gb18030" if charset in CHINESE_CHARSETS else charset
        if charset in _UTF8:
            codec = "utf-8-sig"
        try:
            return body.decode(codec)
        except (UnicodeDecodeError, LookupError):
            raise BodyEncodingError(f"请求内容不是有效的 {charset} 编码") from None
    for codec in ("utf-8-sig", "gb18030"):
        try:
            return body.decode(codec)
        except UnicodeDecodeError:
            continue
    raise BodyEncodingError("请求内容既不是 UTF-8 也不是 GB18030/GBK 编码")


def _transcode(body: bytes, media_type: str, charset: str) -> bytes:
    """The body re-encoded as UTF-8 (form bodies: their percent-escapes too)."""
    text = decode_text(body, charset)
    if media_type == "application/json":
        return text.encode("utf-8")
    try:
        pairs = parse_qsl(
            text, keep_blank_values=True, encoding="gb18030", errors="strict", max_num_fields=200
        )
    except (UnicodeDecodeError, ValueError):
        raise BodyEncodingError(f"表单内容不是有效的 {charset} 编码") from None
    return urlencode(pairs).encode("ascii")


def caller_limit(settings: Settings) -> Limit:
    """Submissions of one citizen (phone number, WeChat openid)."""
    return Limit("intake.caller", settings.intake_rate_limit, settings.intake_rate_window_seconds)


def client_limit(settings: Settings) -> Limit:
    """Submissions of one client (IP address, Open311 API key), whatever callers it names."""
    return Limit(
        "intake.client", settings.intake_client_rate_limit, settings.intake_rate_window_seconds
    )


def client_keys(address: str | None, api_key: str | None = None) -> list[str]:
    """The client keys of a request: its address and, when given, its API key (hashed)."""
    keys = [f"ip:{address or 'unknown'}"]
    if api_key:
        keys.append(f"api_key:{hashlib.sha256(api_key.encode()).hexdigest()[:32]}")
    return keys


def take_intake_hits(
    database: Database,
    settings: Settings,
    *,
    callers: Sequence[str] = (),
    clients: Sequence[str] = (),
) -> float | None:
    """Count one submission for each client and caller key; None if every limit allows it, else
    the seconds to wait. Clients are counted first: a client over its limit uses up nothing of
    its callers'."""
    hits = [(client_limit(settings), key) for key in clients]
    hits += [(caller_limit(settings), key) for key in callers]
    for limit, key in hits:
        with database.session() as db_session:
            retry_after = throttle.hit(db_session=db_session, limit=limit, key=key)
        if retry_after is not None:
            return retry_after
    return None


def _error_body(path: str, status: int, name: str, detail: str) -> bytes:
    if path.startswith("/open311/"):
        return json.dumps([{"code": status, "description": detail}], ensure_ascii=False).encode()
    return json.dumps(error_body(name, detail), ensure_ascii=False).encode()


def too_large_detail(limit: int) -> str:
    return f"请求内容超过 {limit} 字节的上限"


async def send_error(send: Send, status: int, name: str, detail: str, *, path: str = "") -> None:
    """Answer with the API's JSON error (Open311's error list on an Open311 `path`) and close
    the connection: the request body may be left unread."""
    body = _error_body(path, status, name, detail)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class IntakeLimitsMiddleware:
    """Request size cap and charset transcoding for the intake paths (see the module doc)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(INTAKE_PATHS):
            await self.app(scope, receive, send)
            return
        limit = get_settings().intake_max_body_bytes
        headers = {key.lower(): value for key, value in scope.get("headers", [])}
        too_large = too_large_detail(limit)
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                await send_error(send, 400, "BadRequest", "Content-Length 无效", path=path)
                return
            if length > limit:
                await send_error(send, 413, "PayloadTooLarge", too_large, path=path)
                return

        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await send_error(send, 413, "PayloadTooLarge", too_large, path=path)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)

        content_type = headers.get(b"content-type", b"").decode("latin-1")
        media_type = content_type.split(";")[0].strip().lower()
        charset = charset_of(content_type)
        if body and charset is not None and media_type in _TRANSCODED_TYPES:
            if charset in CHINESE_CHARSETS:
                try:
                    body = _transcode(body, media_type, charset)
                except BodyEncodingError as exc:
                    await send_error(send, 400, "InvalidEncoding", str(exc), path=path)
                    return
                scope = dict(scope)
                scope["headers"] = [
                    (key, value)
                    for key, value in scope.get("headers", [])
                    if key.lower() not in (b"content-type", b"content-length")
                ] + [
                    (b"content-type", f"{media_type}; charset=utf-8".encode()),
                    (b"content-length", str(len(body)).encode()),
                ]
            elif charset not in _UTF8:
                detail = f"不支持的字符集 {charset}（请使用 UTF-8 或 GB18030/GBK）"
                await send_error(send, 415, "UnsupportedMediaType", detail, path=path)
                return

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
