from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from service import runtime

Login = Callable[[str], dict[str, str]]

LIGHT = "小区门口的路灯坏了半个多月，晚上一片漆黑，请尽快派人维修。"
# Chinese enough to pass the out-of-distribution gate (Chinese characters over half the letters)
FORMULA = (
    '=HYPERLINK("http://evil.example") 我家楼下的垃圾已经三天没人清运了，臭气熏天，'
    "请尽快处理，身份证430102199001011234"
)


def today() -> str:
    return datetime.now(UTC).astimezone(ZoneInfo("Asia/Shanghai")).date().isoformat()


@pytest.fixture
def appeals(client: TestClient, login: Login, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setenv("HOTLINE_AUTO_DISPATCH_THRESHOLD", "0")
    runtime.get_settings.cache_clear()
    numbers = []
    for channel, text in (("web", LIGHT), ("phone", FORMULA)):
        body = {"channel": channel, "text": text, "caller_phone": "13812345678"}
        response = client.post("/api/v1/appeals", json=body, headers=login("agent"))
        assert response.status_code == 201, response.text
        numbers.append(response.json()["number"])
    return numbers


def export(client: TestClient, login: Login, user: str) -> list[dict[str, str]]:
    response = client.get("/api/v1/statistics/export.csv", headers=login(user))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    assert response.content.startswith(b"\xef\xbb\xbf")  # the BOM Excel needs
    return list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))


def test_statistics_count_todays_appeals(
    client: TestClient, login: Login, appeals: list[str]
) -> None:
    response = client.get("/api/v1/statistics", headers=login("supervisor"))

    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["date_to"] == today()
    assert body["totals"]["appeals"] == 2
    assert body["totals"]["dispatched"] == 2
    assert body["rates"]["auto_dispatch_rate"] == 1.0
    assert body["rates"]["satisfaction_rate"] is None
    assert sorted((d["date"], d["channel"], d["count"]) for d in body["daily"]) == [
        (today(), "phone", 1),
        (today(), "web", 1),
    ]
    assert sum(d["count"] for d in body["by_department"]) == 2
    assert sum(c["count"] for c in body["by_category"]) == 2

    earlier = (datetime.now(UTC) - timedelta(days=60)).date().isoformat()
    old = client.get(
        "/api/v1/statistics",
        params={"date_from": earlier, "date_to": earlier},
        headers=login("admin"),
    )
    assert old.status_code == 200
    assert old.json()["totals"]["appeals"] == 0


def test_export_masks_personal_data_except_for_admins_and_is_audited(
    client: TestClient, login: Login, appeals: list[str]
) -> None:
    from service.auth import audit

    rows = export(client, login, "supervisor")

    assert [row["工单编号"] for row in rows] == appeals
    assert {row["来电号码"] for row in rows} == {"138****5678"}
    assert "430102199001011234" not in rows[1]["诉求内容"]
    # A cell that a spreadsheet would run as a formula is neutralised.
    assert rows[1]["诉求内容"].startswith("'=HYPERLINK")
    assert rows[0]["承办单位编码"] and rows[0]["派单时间"].endswith("+08:00")

    unmasked = export(client, login, "admin")
    assert {row["来电号码"] for row in unmasked} == {"13812345678"}
    assert "430102199001011234" in unmasked[1]["诉求内容"]

    with runtime.get_database().session() as db_session:
        entries, total = audit.search(db_session=db_session, action="statistics.export")
        assert total == 2
        assert [(e.actor, e.detail["masked"]) for e in entries] == [
            ("admin", False),
            ("supervisor", True),
        ]


@pytest.mark.parametrize("user", ["agent", "dept_housing"])
def test_statistics_are_for_supervisors_and_admins(
    client: TestClient, login: Login, user: str
) -> None:
    for path in ("/api/v1/statistics", "/api/v1/statistics/export.csv"):
        assert client.get(path, headers=login(user)).status_code == 403
        assert client.get(path).status_code == 401


def test_bad_periods_are_400_and_bad_dates_422(client: TestClient, login: Login) -> None:
    headers = login("supervisor")
    reversed_period = {"date_from": "2025-11-21", "date_to": "2025-11-20"}
    for path in ("/api/v1/statistics", "/api/v1/statistics/export.csv"):
        response = client.get(path, params=reversed_period, headers=headers)
        assert response.status_code == 400
        assert response.json()["error"] == "InvalidInput"
    too_long = client.get("/api/v1/statistics", params={"date_from": "2020-01-01"}, headers=headers)
    assert too_long.status_code == 400
    far = client.get("/api/v1/statistics", params={"date_to": "9999-12-31"}, headers=headers)
    assert far.status_code == 400
    garbage = client.get("/api/v1/statistics", params={"date_from": "yesterday"}, headers=headers)
    assert garbage.status_code == 422
