"""NUL characters anywhere in a request are a 400, refused in one place before any route, and a
database that cannot be reached is a 503 with Retry-After (issue 16, items 3)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

Login = Callable[[str], dict[str, str]]
NUL_DETAIL = "请求中含有不允许的空字符（NUL）"


def assert_refused(response: object) -> None:
    status = getattr(response, "status_code", None)
    assert status == 400, getattr(response, "text", response)
    assert response.json() == {  # type: ignore[attr-defined]
        "error": "BadRequest",
        "detail": NUL_DETAIL,
        "code": "BAD_REQUEST",
        "message": "请求格式错误",
    }


def test_a_nul_in_the_login_form_is_a_400_before_any_lookup(client: TestClient) -> None:
    response = client.post(
        "/api/v1/auth/token",
        content=b"username=ad%00min&password=x",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_refused(response)


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/work-orders/x%00",
        "/api/v1/work-orders?department_code=%00",
        "/api/v1/users?department_code=a%00",
        "/api/v1/models/jobs/%00",
    ],
)
def test_a_nul_in_the_path_or_the_query_is_a_400(
    client: TestClient, login: Login, url: str
) -> None:
    assert_refused(client.get(url, headers=login("supervisor")))


def test_a_nul_in_a_json_body_is_a_400(client: TestClient, login: Login) -> None:
    response = client.post(
        "/api/v1/work-orders/20260101-0000001/escalate",
        content=b'{"reason": "a\\u0000b"}',
        headers={**login("supervisor"), "Content-Type": "application/json"},
    )
    assert_refused(response)


def test_a_nul_split_across_body_chunks_is_still_seen(client: TestClient, login: Login) -> None:
    def chunks():  # type: ignore[no-untyped-def]
        yield b'{"reason": "a\\u00'
        yield b'00b"}'

    response = client.post(
        "/api/v1/work-orders/20260101-0000001/escalate",
        content=chunks(),
        headers={**login("supervisor"), "Content-Type": "application/json"},
    )
    assert_refused(response)


def test_percent_zero_zero_as_text_in_json_is_not_a_nul(
    client: TestClient, login: Login, monkeypatch: pytest.MonkeyPatch
) -> None:
    response = client.post(
        "/api/v1/appeals",
        json={
            "channel": "web",
            "text": "小区门口的路灯坏了，折扣标成%00的广告牌也倒了，请派人修理。",
        },
        headers=login("agent"),
    )
    assert response.status_code == 201, response.text


def test_an_unreachable_database_is_a_503_with_retry_after(
    settings_env: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service import runtime
    from service.api.app import create_app

    # Nothing listens on port 9 of loopback: every query fails to connect.
    monkeypatch.setenv(
        "HOTLINE_DATABASE_URL",
        "postgresql+psycopg://hotline:x@127.0.0.1:9/hotline?connect_timeout=2",
    )
    runtime.reset()
    with TestClient(create_app(), raise_server_exceptions=False) as client:
        response = client.post(
            "/api/v1/auth/token", data={"username": "agent", "password": "whatever"}
        )
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "5"
    assert response.json()["error"] == "ServiceUnavailable"


def test_an_oversize_body_is_a_413_before_the_route_reads_it(client: TestClient) -> None:
    # The gateway report checks a signature over the body: before, it read 300 MB to say 401.
    response = client.post(
        "/api/v1/callbacks/gateway/report",
        content=b"{" + b" " * 2_000_000 + b"}",
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413, response.text
    assert response.json()["error"] == "PayloadTooLarge"


def test_an_oversize_body_without_a_length_is_a_413(client: TestClient) -> None:
    def chunks():  # type: ignore[no-untyped-def]  # sent chunked, with no Content-Length
        for _ in range(40):
            yield b" " * 65_536

    response = client.post(
        "/api/v1/callbacks/gateway/report",
        content=chunks(),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413, response.text
    assert response.json()["error"] == "PayloadTooLarge"


def test_a_sign_in_form_has_a_small_limit(client: TestClient) -> None:
    response = client.post(
        "/api/v1/auth/token", data={"username": "agent", "password": "x" * 10_000}
    )
    assert response.status_code == 413, response.text
