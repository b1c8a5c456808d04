"""Every datetime the API writes is ISO 8601 in HOTLINE_TIMEZONE (Asia/Shanghai, +08:00)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from service import runtime
from service.api.responses import localize

Login = Callable[[str], dict[str, str]]

TEXT = "小区门口的路灯坏了半个多月，晚上一片漆黑，老人小孩出门很不安全，请尽快派人维修。"
# Any string that starts like a date-time, so a badly written one is caught too.
LOOKS_LIKE_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _session_answers(client: TestClient, login: Login, monkeypatch: pytest.MonkeyPatch) -> list:
    """The JSON answers of a scripted day: intake, review, dispatch, accept, reply, and every
    parameterless GET route of /api/v1 read by a supervisor."""
    monkeypatch.setenv("HOTLINE_AUTO_DISPATCH_THRESHOLD", "1.01")
    runtime.get_settings.cache_clear()
    agent, supervisor = login("agent"), login("supervisor")
    answers = []
    created = client.post("/api/v1/appeals", json={"channel": "web", "text": TEXT}, headers=agent)
    answers.append(created.json())
    number = created.json()["number"]
    answers.append(client.get("/api/v1/review-queue", headers=agent).json())
    dispatched = client.post(f"/api/v1/work-orders/{number}/dispatch", json={}, headers=agent)
    answers.append(dispatched.json())
    department = login("dept_" + dispatched.json()["department_code"].lower())
    answers.append(client.get("/api/v1/work-orders", headers=department).json())
    answers.append(client.post(f"/api/v1/work-orders/{number}/accept", headers=department).json())
    reply = {"result": "已修复"}
    answers.append(
        client.post(f"/api/v1/work-orders/{number}/reply", json=reply, headers=department).json()
    )
    answers.append(client.get(f"/api/v1/work-orders/{number}", headers=supervisor).json())
    for route in client.app.routes:  # type: ignore[attr-defined]
        if (
            isinstance(route, APIRoute)
            and "GET" in route.methods
            and route.path.startswith("/api/v1/")
            and "{" not in route.path
        ):
            response = client.get(route.path, headers=supervisor)
            if response.headers.get("content-type", "").startswith("application/json"):
                answers.append(response.json())
    return answers


def test_every_datetime_of_a_working_session_is_in_shanghai_time(
    client: TestClient, login: Login, monkeypatch: pytest.MonkeyPatch
) -> None:
    found = [
        s
        for s in _strings(_session_answers(client, login, monkeypatch))
        if LOOKS_LIKE_DATETIME.match(s)
    ]
    assert len(found) >= 10  # created, deadlines, events...
    wrong = [s for s in found if not s.endswith("+08:00") or "T" not in s]
    assert wrong == []
    for text in found:
        datetime.fromisoformat(text)


def test_the_time_zone_is_a_setting(
    client: TestClient, login: Login, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOTLINE_TIMEZONE", "Asia/Tokyo")
    runtime.get_settings.cache_clear()
    agent = login("agent")
    created = client.post("/api/v1/appeals", json={"channel": "web", "text": TEXT}, headers=agent)
    answer = client.get(f"/api/v1/work-orders/{created.json()['number']}", headers=agent).json()
    found = [s for s in _strings(answer) if LOOKS_LIKE_DATETIME.match(s)]
    assert found and all(s.endswith("+09:00") for s in found)


def test_naive_and_utc_datetimes_become_local_and_other_strings_stay() -> None:
    zone = ZoneInfo("Asia/Shanghai")
    content = {
        "naive": "2026-12-04T03:00:00",
        "utc": ["2026-12-04T03:00:00.123456Z", "2026-12-04T03:00:00+00:00"],
        "date": "2026-12-04",
        "text": "2026-12-04T03:00:00 路灯坏了",
        "number": 3,
    }
    assert localize(content, zone) == {
        "naive": "2026-12-04T11:00:00+08:00",
        "utc": ["2026-12-04T11:00:00.123456+08:00", "2026-12-04T11:00:00+08:00"],
        "date": "2026-12-04",
        "text": "2026-12-04T03:00:00 路灯坏了",
        "number": 3,
    }
    assert localize("2026-12-04T03:00:00Z", UTC) == "2026-12-04T03:00:00+00:00"
