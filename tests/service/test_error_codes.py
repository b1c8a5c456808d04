"""Every error the API answers with carries a stable code and a Chinese message."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service import runtime
from service.error_codes import ERROR_CODES

Login = Callable[[str], dict[str, str]]

CHINESE = re.compile(r"[\u4e00-\u9fff]")
CODE = re.compile(r"^[A-Z][A-Z0-9_]+$")
# Names the API gives errors that are not exception classes (service/api/errors.py, the
# request guard and the intake limits).
API_NAMES = {
    "ValidationError",
    "ServiceUnavailable",
    "InvalidEncoding",
    "HTTPError",
    "InternalError",
    "CrossSiteRequest",  # service/api/csrf.py
}


def _subclasses(cls: type) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub} | _subclasses(sub)
    return found


def test_every_error_class_and_name_has_a_stable_code_and_a_chinese_message() -> None:
    # Importing the app and the CLI loads every module that defines an error class.
    import service.api.app
    import service.cli.app  # noqa: F401
    from classifier.errors import ClassifierError
    from router.errors import AppError
    from service.api.errors import HTTP_ERROR_NAMES

    classes = {AppError, ClassifierError} | _subclasses(AppError) | _subclasses(ClassifierError)
    names = {c.__name__ for c in classes if not c.__module__.startswith("tests")}
    names |= set(HTTP_ERROR_NAMES.values()) | API_NAMES
    assert names - ERROR_CODES.keys() == set()
    for name in names:
        row = ERROR_CODES[name]
        assert CODE.match(row.code), (name, row.code)
        assert CHINESE.search(row.message), (name, row.message)
    codes = [row.code for row in ERROR_CODES.values()]
    assert len(codes) == len(set(codes))


def _check(response: Any, status: int, name: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == name and "detail" in body
    assert (body["code"], body["message"]) == tuple(ERROR_CODES[name])


def test_answers_of_each_status_carry_code_and_message(
    client: TestClient, login: Login, monkeypatch: pytest.MonkeyPatch
) -> None:
    _check(client.get("/api/v1/review-queue"), 401, "Unauthorized")
    monkeypatch.setenv("HOTLINE_AUTO_DISPATCH_THRESHOLD", "0")
    runtime.get_settings.cache_clear()
    appeal = {"channel": "web", "text": "小区门口的路灯坏了半个多月，晚上一片漆黑，请尽快维修。"}
    order = client.post("/api/v1/appeals", json=appeal, headers=login("agent")).json()
    department = "dept_" + order["suggestion"]["department_code"].lower()
    _check(client.get("/api/v1/review-queue", headers=login(department)), 403, "Forbidden")
    closing = client.post(f"/api/v1/work-orders/{order['number']}/close", headers=login("agent"))
    _check(closing, 409, "Conflict")
    _check(
        client.get("/api/v1/work-orders/20200101-0000000", headers=login("agent")), 404, "NotFound"
    )
    _check(client.delete("/api/v1/appeals", headers=login("agent")), 405, "MethodNotAllowed")
    _check(
        client.post("/api/v1/appeals", json={"channel": "web"}, headers=login("agent")),
        422,
        "ValidationError",
    )
    monkeypatch.setenv("HOTLINE_MAX_BODY_BYTES", "1024")
    runtime.get_settings.cache_clear()
    big = client.post(
        "/api/v1/work-orders/20200101-0000000/return",
        content=b'{"reason": "' + b"x" * 4096 + b'"}',
        headers={**login("agent"), "Content-Type": "application/json"},
    )
    _check(big, 413, "PayloadTooLarge")


def test_a_bug_answers_the_json_error_not_plain_text() -> None:
    from fastapi import FastAPI

    from service.api.errors import install_error_handlers

    app = FastAPI()
    install_error_handlers(app)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("a bug")

    response = TestClient(app, raise_server_exceptions=False).get("/boom")
    assert response.status_code == 500
    body = response.json()
    assert (body["error"], body["code"]) == ("InternalError", "INTERNAL_ERROR")
    assert CHINESE.search(body["message"]) and "a bug" not in response.text
