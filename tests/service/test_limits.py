"""Intake limits: request size, Chinese charsets, rate per caller, text length."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from collections.abc import Callable, Iterator
from xml.etree.ElementTree import fromstring

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from sqlalchemy import select
from starlette.types import Message, Receive, Scope, Send

from router.catalogue.models import Category
from router.workorders.models import Appeal
from service import runtime
from service.api.errors import install_error_handlers
from service.channels.limits import IntakeLimitsMiddleware

Login = Callable[[str], dict[str, str]]
TEXT = "小区门口的路灯坏了半个多月，晚上一片漆黑，请尽快维修。"


# --- the middleware alone, on a bare application ---------------------------------------------


@pytest.fixture
def echo(monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """An application whose intake paths echo what the endpoint received."""
    monkeypatch.setenv("HOTLINE_INTAKE_MAX_BODY_BYTES", "2048")
    runtime.get_settings.cache_clear()
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(IntakeLimitsMiddleware)

    async def received(request: Request) -> dict[str, object]:
        body = await request.body()
        return {"content_type": request.headers.get("content-type"), "text": body.decode("utf-8")}

    app.add_api_route("/api/v1/appeals", received, methods=["POST"])
    app.add_api_route("/open311/v2/requests.json", received, methods=["POST"])
    app.add_api_route("/api/v1/auth/token", received, methods=["POST"])
    yield TestClient(app)
    runtime.get_settings.cache_clear()


def test_a_declared_oversized_body_is_refused_before_it_is_read(echo: TestClient) -> None:
    response = echo.post("/api/v1/appeals", content=b"x" * 2049)
    assert response.status_code == 413
    assert response.json() == {
        "error": "PayloadTooLarge",
        "detail": "请求内容超过 2048 字节的上限",
        "code": "PAYLOAD_TOO_LARGE",
        "message": "请求内容过大",
    }
    assert echo.post("/api/v1/appeals", content=b"x" * 2048).status_code == 200


def test_a_streamed_body_without_length_is_cut_at_the_limit(echo: TestClient) -> None:
    # Driven at the ASGI level: a test client would buffer the whole body before sending it.
    reads = 0
    sent: list[Message] = []

    async def endless_body() -> Message:
        nonlocal reads
        reads += 1
        return {"type": "http.request", "body": b"y" * 1024, "more_body": True}

    async def send(message: Message) -> None:
        sent.append(message)

    async def application(scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError("the application must not see an oversized body")

    scope: Scope = {"type": "http", "method": "POST", "path": "/api/v1/appeals", "headers": []}
    asyncio.run(IntakeLimitsMiddleware(application)(scope, endless_body, send))
    assert reads == 3, "reading stopped at the first chunk past the 2048-byte limit"
    assert sent[0]["status"] == 413
    assert json.loads(sent[1]["body"])["error"] == "PayloadTooLarge"


def test_open311_paths_get_open311_errors(echo: TestClient) -> None:
    response = echo.post("/open311/v2/requests.json", content=b"x" * 4096)
    assert response.status_code == 413
    assert response.json()[0]["code"] == 413


def test_other_paths_are_left_alone(echo: TestClient) -> None:
    assert echo.post("/api/v1/auth/token", content=b"x" * 4096).status_code == 200


@pytest.mark.parametrize("charset", ["gbk", "GB2312", "gb18030", "cp936"])
def test_json_in_a_declared_chinese_charset_reaches_the_endpoint_as_utf8(
    echo: TestClient, charset: str
) -> None:
    body = json.dumps({"text": TEXT}, ensure_ascii=False).encode(charset)
    response = echo.post(
        "/api/v1/appeals",
        content=body,
        headers={"Content-Type": f"application/json; charset={charset}"},
    )
    assert response.status_code == 200
    assert json.loads(response.json()["text"]) == {"text": TEXT}
    assert response.json()["content_type"] == "application/json; charset=utf-8"


def test_undecodable_or_unsupported_charsets_are_refused(echo: TestClient) -> None:
    bad = echo.post(
        "/api/v1/appeals",
        content=b'{"text": "\xff\xff"}',
        headers={"Content-Type": "application/json; charset=gbk"},
    )
    assert bad.status_code == 400
    assert bad.json()["error"] == "InvalidEncoding"
    big5 = echo.post(
        "/api/v1/appeals",
        content="{}".encode("big5"),
        headers={"Content-Type": "application/json; charset=big5"},
    )
    assert big5.status_code == 415


# --- through the real application and database -----------------------------------------------


def test_gbk_json_appeal_is_stored_as_the_same_text(client: TestClient, login: Login) -> None:
    body = json.dumps(
        {"channel": "web", "text": TEXT, "idempotency_key": "gbk-1"}, ensure_ascii=False
    )
    response = client.post(
        "/api/v1/appeals",
        content=body.encode("gbk"),
        headers={**login("agent"), "Content-Type": "application/json; charset=GBK"},
    )
    assert response.status_code == 201, response.text
    with runtime.get_database().session() as db_session:
        stored = db_session.scalars(
            select(Appeal.text).where(Appeal.idempotency_key == "gbk-1")
        ).one()
    assert stored == TEXT
    undeclared = client.post(
        "/api/v1/appeals",
        content=body.encode("gbk"),
        headers={**login("agent"), "Content-Type": "application/json"},
    )
    assert undeclared.status_code == 400, "undecodable JSON is a 400, not a 500"


def test_open311_caller_is_rate_limited_with_retry_after(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOTLINE_INTAKE_RATE_LIMIT", "2")
    runtime.get_settings.cache_clear()
    with runtime.get_database().session() as db_session:
        code = db_session.scalars(select(Category.code).where(Category.level == 3)).first()
    form = {
        "service_code": code,
        "description": TEXT,
        "address_string": "人民路1号",
        "phone": "13800000001",
    }
    statuses = [client.post("/open311/v2/requests.json", data=form).status_code for _ in range(3)]
    assert statuses == [201, 201, 429]
    limited = client.post("/open311/v2/requests.json", data=form)
    assert limited.status_code == 429
    # the sliding estimate spreads a window's hits evenly: up to one and a half windows
    assert 1 <= int(limited.headers["Retry-After"]) <= 90
    assert limited.json()[0]["code"] == 429
    other = client.post("/open311/v2/requests.json", data={**form, "phone": "13800000002"})
    assert other.status_code == 201, "another caller is not affected"
    with runtime.get_database().session() as db_session:
        assert len(db_session.scalars(select(Appeal).where(Appeal.channel == "open311")).all()) == 3


def _open311_form(phone: str) -> dict[str, str]:
    with runtime.get_database().session() as db_session:
        code = db_session.scalars(select(Category.code).where(Category.level == 3)).first()
    assert code is not None
    return {
        "service_code": code,
        "description": TEXT,
        "address_string": "人民路1号",
        "phone": phone,
    }


def test_open311_client_varying_the_phone_is_limited_by_its_address(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOTLINE_INTAKE_RATE_LIMIT", "2")
    monkeypatch.setenv("HOTLINE_INTAKE_CLIENT_RATE_LIMIT", "3")
    runtime.get_settings.cache_clear()
    statuses = [
        client.post("/open311/v2/requests.json", data=_open311_form(f"1380000{i:04d}")).status_code
        for i in range(5)
    ]
    assert statuses == [201, 201, 201, 429, 429]
    elsewhere = TestClient(client.app, client=("198.51.100.7", 50000))
    answer = elsewhere.post("/open311/v2/requests.json", data=_open311_form("13800009999"))
    assert answer.status_code == 201, "another address is not affected"


def test_open311_api_key_is_limited_from_any_address(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOTLINE_OPEN311_API_KEYS", "partner-key-1,partner-key-2")
    monkeypatch.setenv("HOTLINE_INTAKE_CLIENT_RATE_LIMIT", "2")
    runtime.get_settings.cache_clear()
    statuses = []
    for i in range(3):
        from_address = TestClient(client.app, client=(f"198.51.100.{i + 1}", 50000))
        form = _open311_form(f"1390000{i:04d}") | {"api_key": "partner-key-1"}
        statuses.append(from_address.post("/open311/v2/requests.json", data=form).status_code)
    assert statuses == [201, 201, 429]
    other = TestClient(client.app, client=("198.51.100.9", 50000))
    form = _open311_form("13900008888") | {"api_key": "partner-key-2"}
    assert other.post("/open311/v2/requests.json", data=form).status_code == 201


def test_intake_limits_hold_across_api_processes(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two applications (two `serve` workers) on one database share one count per caller."""
    from service.api.app import create_app

    monkeypatch.setenv("HOTLINE_INTAKE_RATE_LIMIT", "2")
    monkeypatch.setenv("HOTLINE_WECHAT_TOKEN", "tok")
    runtime.get_settings.cache_clear()
    second = TestClient(create_app())
    form = _open311_form("13700000001")
    answers = [
        app.post("/open311/v2/requests.json", data=form).status_code
        for app in (client, second, client, second)
    ]
    assert answers == [201, 201, 429, 429]
    assert "工单号" in _wechat_post(client, TEXT, "901")
    assert "工单号" in _wechat_post(second, TEXT, "902")
    assert "过于频繁" in _wechat_post(client, TEXT, "903")
    assert "过于频繁" in _wechat_post(second, TEXT, "904")


def _wechat_post(client: TestClient, content: str, msg_id: str) -> str:
    token, ts, nonce = "tok", str(int(time.time())), uuid.uuid4().hex[:10]
    sig = hashlib.sha1("".join(sorted([token, ts, nonce])).encode()).hexdigest()
    xml = (
        "<xml><ToUserName>gh_1</ToUserName><FromUserName>o_same_user</FromUserName>"
        f"<CreateTime>{ts}</CreateTime><MsgType>text</MsgType>"
        f"<Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId></xml>"
    )
    response = client.post(
        "/wechat", params={"signature": sig, "timestamp": ts, "nonce": nonce}, content=xml.encode()
    )
    assert response.status_code == 200, response.text
    return fromstring(response.content).findtext("Content") or ""


def test_wechat_user_is_rate_limited_politely_and_long_text_refused(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOTLINE_WECHAT_TOKEN", "tok")
    monkeypatch.setenv("HOTLINE_INTAKE_RATE_LIMIT", "1")
    runtime.get_settings.cache_clear()
    first = _wechat_post(client, TEXT, "801")
    assert "工单号" in first
    assert "过于频繁" in _wechat_post(client, TEXT, "802")
    assert _wechat_post(client, TEXT, "801") == first, "a retry is not a new submission"
    assert "过长" in _wechat_post(client, "长" * 5001, "803")
    with runtime.get_database().session() as db_session:
        assert len(db_session.scalars(select(Appeal).where(Appeal.channel == "wechat")).all()) == 1


def test_nul_characters_are_refused_by_every_channel(client: TestClient, login: Login) -> None:
    # PostgreSQL text cannot hold NUL: each channel must say 4xx before the database fails.
    agent = login("agent")
    appeal = client.post(
        "/api/v1/appeals", json={"channel": "web", "text": "路灯\x00"}, headers=agent
    )
    assert appeal.status_code == 422
    transcript = json.dumps({"call_id": "N-1", "text": "路灯\x00坏了"}).encode()
    phone = client.post(
        "/api/v1/phone/transcripts",
        content=transcript,
        headers={**agent, "Content-Type": "application/json"},
    )
    assert phone.status_code == 400
    with runtime.get_database().session() as db_session:
        code = db_session.scalars(select(Category.code).where(Category.level == 3)).first()
    form = {"service_code": code, "description": "路灯\x00", "address_string": "人民路1号"}
    assert client.post("/open311/v2/requests.json", data=form).status_code == 400
    assert (
        client.get("/open311/v2/requests.json", params={"service_code": "0\x00"}).status_code == 400
    )
    with runtime.get_database().session() as db_session:
        assert db_session.scalars(select(Appeal)).first() is None
