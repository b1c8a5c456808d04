"""Open311 GeoReport v2 endpoints under `/open311/v2/` (JSON and XML).

    GET  /open311/v2/services.{json|xml}                the leaf categories of the taxonomy
    GET  /open311/v2/services/{service_code}.{json|xml} one service's definition (no attributes)
    POST /open311/v2/requests.{json|xml}                a service request (form-encoded)
    GET  /open311/v2/requests.{json|xml}                requests submitted through Open311
    GET  /open311/v2/requests/{id}.{json|xml}           one of them (id = work-order number)

Parameters are read by hand (not by FastAPI's validation) so that every error has the Open311
shape. With `HOTLINE_OPEN311_API_KEYS` set (comma-separated), POST needs one of those keys in
`api_key`; without it, `api_key` is ignored. An `Idempotency-Key` header makes a retried POST
return the first result. Each caller (its `phone`) may POST at most `HOTLINE_INTAKE_RATE_LIMIT`
requests per `HOTLINE_INTAKE_RATE_WINDOW_SECONDS`, and each client (its IP address, and its API
key) at most `HOTLINE_INTAKE_CLIENT_RATE_LIMIT`, whatever phones it names (429 with
`Retry-After`; counted in the database, so across every API process).
"""

from __future__ import annotations

import hmac
import math
import re
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from classifier.ood import intake_refusal
from router.catalogue.models import Category
from router.workorders import service as workorders
from router.workorders.workflow import Role
from service import intake
from service.api.appeals import REFUSED_TEXT
from service.api.responses import LocalTimeJSONResponse
from service.api.security import remote_addr
from service.channels.limits import MAX_TEXT_LENGTH, charset_of, client_keys, take_intake_hits
from service.channels.open311 import (
    Open311Error,
    RequestFilter,
    get_request,
    get_service,
    list_requests,
    list_services,
    parse_datetime,
    render_xml,
)
from service.config import Settings, get_settings
from service.observability import metrics
from service.runtime import get_database

router = APIRouter(prefix="/open311/v2", tags=["open311"])

FORMATS = ("json", "xml")
PHONE = re.compile(r"^[0-9+\-() ]{3,32}$")
NOTICE = "您的诉求已受理，工单号：{number}。可凭工单号查询办理进度。"
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": 'Bad request: `[{"code": 400, "description": "..."}]`'},
    404: {"description": "Unknown service, request or format"},
}


def _format(value: str) -> str:
    if value not in FORMATS:
        raise Open311Error(404, f"不支持的格式 {value!r}（json 或 xml）")
    return value


def _answer(fmt: str, root_tag: str, value: Any, status_code: int = 200) -> Response:
    if fmt == "xml":
        return Response(render_xml(root_tag, value), status_code, media_type="text/xml")
    return LocalTimeJSONResponse(value, status_code)


def _no_nul(value: str, name: str) -> str:
    # PostgreSQL text cannot hold NUL: refuse it here rather than fail in the database.
    if "\x00" in value:
        raise Open311Error(400, f"{name} 含有非法字符")
    return value


def _split(value: str | None, name: str) -> list[str]:
    parts = [part.strip() for part in (value or "").split(",") if part.strip()][:1000]
    return [_no_nul(part, name)[:64] for part in parts]


@router.get("/services.{fmt}", responses=ERRORS, summary="Open311 service list")
def services(fmt: str) -> Response:
    """Every leaf category of the taxonomy as an Open311 service."""
    fmt = _format(fmt)
    with get_database().session() as db_session:
        return _answer(fmt, "services", list_services(db_session=db_session))


@router.get("/services/{code}.{fmt}", responses=ERRORS, summary="Open311 service definition")
def service_definition(code: str, fmt: str) -> Response:
    """One service with its (empty) list of attributes: every service has metadata false."""
    fmt = _format(fmt)
    with get_database().session() as db_session:
        service = get_service(db_session=db_session, code=_no_nul(code, "service_code"))
    if service is None:
        raise Open311Error(404, f"服务 {code} 不存在")
    return _answer(fmt, "service_definition", {**service, "attributes": []})


@router.get("/requests.{fmt}", responses=ERRORS, summary="Open311 service requests")
def requests(
    fmt: str,
    service_request_id: str | None = None,
    service_code: str | None = None,
    start_date: str | None = None,
    end_date: str | None = None,
    status: str | None = None,
) -> Response:
    """Requests submitted through Open311, newest first (last 90 days unless dates are given).

    `service_request_id`, `service_code` and `status` (`open`, `closed`) take comma-separated
    lists; `start_date` and `end_date` are ISO 8601. Given ids, the other filters are ignored.
    """
    fmt = _format(fmt)
    statuses = _split(status, "status")
    if any(value not in ("open", "closed") for value in statuses):
        raise Open311Error(400, "status 只能是 open 或 closed")
    where = RequestFilter(
        ids=_split(service_request_id, "service_request_id"),
        service_codes=_split(service_code, "service_code"),
        start=parse_datetime("start_date", start_date) if start_date else None,
        end=parse_datetime("end_date", end_date) if end_date else None,
        statuses=statuses,
    )
    with get_database().session() as db_session:
        return _answer(fmt, "service_requests", list_requests(db_session=db_session, where=where))


@router.get("/requests/{number}.{fmt}", responses=ERRORS, summary="One Open311 service request")
def request_by_id(number: str, fmt: str) -> Response:
    fmt = _format(fmt)
    with get_database().session() as db_session:
        found = get_request(db_session=db_session, number=_no_nul(number, "service_request_id"))
    if found is None:
        raise Open311Error(404, f"服务请求 {number} 不存在")
    return _answer(fmt, "service_requests", [found])


@router.post(
    "/requests.{fmt}",
    status_code=201,
    responses={
        200: {"description": "Replay of an Idempotency-Key: the first result"},
        403: {"description": "Missing or unknown api_key"},
        422: {"description": "The description has no Chinese character (not an appeal)"},
        429: {"description": "Too many requests from this caller (see Retry-After)"},
        **ERRORS,
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "required": ["service_code"],
                        "properties": {
                            name: {"type": "string"}
                            for name in (
                                "api_key",
                                "service_code",
                                "description",
                                "lat",
                                "long",
                                "address_string",
                                "address_id",
                                "email",
                                "device_id",
                                "account_id",
                                "first_name",
                                "last_name",
                                "phone",
                                "media_url",
                            )
                        },
                    }
                }
            },
        }
    },
    summary="Create an Open311 service request",
)
async def create_request(request: Request, fmt: str) -> Response:
    """Store a service request as an appeal (channel `open311`), then classify and route it."""
    fmt = _format(fmt)
    form = await _read_form(request)
    settings = get_settings()
    created, answer = await run_in_threadpool(
        _create,
        form=form,
        settings=settings,
        address=remote_addr(request),
        idempotency_key=request.headers.get("idempotency-key"),
    )
    return _answer(fmt, "service_requests", answer, 201 if created else 200)


async def _read_form(request: Request) -> dict[str, str]:
    content_type = request.headers.get("content-type", "")
    media_type = content_type.split(";")[0].strip().lower()
    if media_type == "multipart/form-data":
        try:
            async with request.form(max_files=0, max_fields=100) as form:
                fields = {k: v for k, v in form.items() if isinstance(v, str)}
        except Exception as exc:  # python-multipart's errors have no common base
            raise Open311Error(400, f"表单无法解析：{exc}") from None
        return {name: _no_nul(value, name) for name, value in fields.items()}
    if media_type not in ("", "application/x-www-form-urlencoded"):
        raise Open311Error(415, "请以 application/x-www-form-urlencoded 提交")
    body = await request.body()
    charset = charset_of(content_type)
    codecs = [charset] if charset else ["utf-8", "gb18030"]
    for codec in codecs:
        try:
            text = body.decode(codec)
            pairs = parse_qsl(
                text, keep_blank_values=True, encoding=codec, errors="strict", max_num_fields=100
            )
        except (UnicodeDecodeError, LookupError):
            continue
        except ValueError as exc:
            raise Open311Error(400, f"表单无法解析：{exc}") from None
        return {name: _no_nul(value, name) for name, value in pairs}
    raise Open311Error(400, "表单内容既不是 UTF-8 也不是 GB18030/GBK 编码")


def _text(form: dict[str, str], name: str, limit: int) -> str | None:
    value = (form.get(name) or "").strip()
    if len(value) > limit:
        raise Open311Error(400, f"{name} 超过 {limit} 个字符")
    return value or None


def _coordinate(form: dict[str, str], name: str, bound: float) -> float | None:
    raw = (form.get(name) or "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise Open311Error(400, f"{name} 不是数字") from None
    if not math.isfinite(value) or abs(value) > bound:
        raise Open311Error(400, f"{name} 超出范围")
    return value


def _check_api_key(form: dict[str, str], settings: Settings) -> str | None:
    """The client's valid API key; None when no keys are configured (any `api_key` ignored)."""
    keys = [k.strip() for k in settings.open311_api_keys.get_secret_value().split(",") if k.strip()]
    if not keys:
        return None
    given = form.get("api_key") or ""
    if not any(hmac.compare_digest(given.encode(), key.encode()) for key in keys):
        raise Open311Error(403, "api_key 缺失或无效")
    return given


def _caller_name(first: str | None, last: str | None) -> str | None:
    if not first and not last:
        return None
    if any("\u4e00" <= char <= "\u9fff" for char in (first or "") + (last or "")):
        return f"{last or ''}{first or ''}"  # Chinese order: family name first, no space
    return " ".join(part for part in (first, last) if part)[:64]  # the column's size


def _create(
    *,
    form: dict[str, str],
    settings: Settings,
    address: str | None,
    idempotency_key: str | None,
) -> tuple[bool, list[dict[str, Any]]]:
    api_key = _check_api_key(form, settings)
    code = _text(form, "service_code", 16)
    if code is None:
        raise Open311Error(400, "service_code 必填")
    database = get_database()
    with database.session() as db_session:
        category = db_session.get(Category, code)
        if category is None or category.level != 3 or not category.active:
            raise Open311Error(400, f"服务 {code} 不存在")
        service_name = category.name
    latitude = _coordinate(form, "lat", 90)
    longitude = _coordinate(form, "long", 180)
    if (latitude is None) != (longitude is None):
        raise Open311Error(400, "lat 与 long 须同时提供")
    address_string = _text(form, "address_string", 300)
    address_id = _text(form, "address_id", 100)
    if latitude is None and address_string is None and address_id is None:
        raise Open311Error(400, "须提供位置：lat 和 long、address_string 或 address_id 之一")
    description = _text(form, "description", MAX_TEXT_LENGTH)
    refusal = intake_refusal(description) if description is not None else None
    if refusal is not None:  # English, emoji, digits only (an empty one uses the service name)
        metrics.record_refused("open311")
        raise Open311Error(422, REFUSED_TEXT[refusal])
    phone = _text(form, "phone", 32)
    if phone is not None and not PHONE.match(phone):
        raise Open311Error(400, "phone 不是有效的电话号码")
    name = _caller_name(_text(form, "first_name", 32), _text(form, "last_name", 32))
    media_url = _text(form, "media_url", 500)
    key = (idempotency_key or "").strip()
    if len(key) > 100:
        raise Open311Error(400, "Idempotency-Key 超过 100 个字符")
    key = f"open311:{key}" if key else ""

    if key:
        with database.session() as db_session:
            known = workorders.find_by_idempotency_key(db_session=db_session, key=key)
            if known is not None:
                return False, [_created(known.number)]
    retry_after = take_intake_hits(
        database,
        settings,
        clients=client_keys(address, api_key),
        callers=[f"phone:{phone}"] if phone else [],
    )
    if retry_after is not None:
        raise Open311Error(
            429,
            "提交过于频繁，请稍后再试",
            headers={"Retry-After": str(math.ceil(retry_after))},
        )
    result = intake.submit(
        database=database,
        settings=settings,
        appeal=workorders.AppealInput(
            channel="open311",
            text=description or service_name,
            title=service_name,
            caller_phone=phone,
            caller_name=name,
            address=address_string or (f"address_id:{address_id}" if address_id else None),
            latitude=latitude,
            longitude=longitude,
            attachments=[{"name": "media_url", "url": media_url}] if media_url else [],
            idempotency_key=key or None,
        ),
        actor="open311",
        role=Role.SYSTEM,
    )
    return result.created, [_created(result.number)]


def _created(number: str) -> dict[str, Any]:
    return {
        "service_request_id": number,
        "service_notice": NOTICE.format(number=number),
        "account_id": None,
    }
