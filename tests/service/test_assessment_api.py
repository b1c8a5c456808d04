"""The assessment API: scorecard, drill-down and the .xlsx export (read back with openpyxl),
for supervisors and admins only, with 4xx for bad periods."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook

from service import runtime
from service.api.assessment import EXPORT_COLUMNS

Login = Callable[[str], dict[str, str]]

TEXTS = (
    "小区门口的路灯坏了半个多月，晚上一片漆黑，请尽快派人维修。",
    "我家楼下的垃圾已经三天没人清运了，臭气熏天，请尽快处理。",
    "小区附近工地夜间施工噪音太大，严重影响居民休息。",
)


@pytest.fixture
def numbers(client: TestClient, login: Login, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Three appeals, dispatched automatically on receipt (threshold 0)."""
    monkeypatch.setenv("HOTLINE_AUTO_DISPATCH_THRESHOLD", "0")
    runtime.get_settings.cache_clear()
    found = []
    for index, text in enumerate(TEXTS):
        body = {"channel": "web", "text": text, "caller_phone": f"1381234567{index}"}
        response = client.post("/api/v1/appeals", json=body, headers=login("agent"))
        assert response.status_code == 201, response.text
        found.append(response.json()["number"])
    return found


def test_scorecard_drill_down_and_export_agree(
    client: TestClient, login: Login, numbers: list[str]
) -> None:
    headers = login("supervisor")
    response = client.get("/api/v1/assessment/scorecard", headers=headers)
    assert response.status_code == 200, response.text
    card: dict[str, Any] = response.json()
    assert card["unit"] == "department"
    assert card["total"]["received"] == 3
    assert card["total"]["dispatches"] == 3
    assert sum(row["dispatches"] for row in card["rows"]) == 3
    assert card["policy"]["weights"]["satisfaction_rate"] == 30
    assert all(row["rank"] == 1 for row in card["rows"])  # nothing late yet: equal scores

    listed: list[str] = []
    for row in card["rows"]:
        drill = client.get(
            "/api/v1/assessment/drill-down",
            params={"figure": "dispatches", "code": row["code"]},
            headers=headers,
        )
        assert drill.status_code == 200, drill.text
        assert drill.json()["count"] == row["dispatches"]
        listed += [order["number"] for order in drill.json()["orders"]]
    assert sorted(listed) == sorted(numbers)

    export = client.get("/api/v1/assessment/export.xlsx", headers=headers)
    assert export.status_code == 200, export.text
    assert export.headers["content-type"].startswith("application/vnd.openxmlformats")
    assert "attachment" in export.headers["content-disposition"]
    book = load_workbook(io.BytesIO(export.content))
    sheet = book["考核排名"]
    rows = list(sheet.iter_rows(values_only=True))
    assert list(rows[0]) == [heading for _, heading, _ in EXPORT_COLUMNS]
    assert rows[0][:5] == ("排名", "单位名称", "单位编码", "受理量", "派单量")
    by_code = {row["code"]: row for row in card["rows"]}
    assert len(rows) == len(card["rows"]) + 2  # headings, units, 合计
    for line in rows[1:-1]:
        values = dict(zip([key for key, _, _ in EXPORT_COLUMNS], line, strict=True))
        expected = by_code[str(values["code"])]
        assert values["name"] == expected["name"]
        assert values["dispatches"] == expected["dispatches"]
        assert values["score"] == expected["score"]
        assert values["accept_on_time_rate"] == expected["accept_on_time_rate"]
    assert rows[-1][1] == "合计" and rows[-1][4] == 3
    assert "指标说明" in book.sheetnames

    from service.auth import audit

    with runtime.get_database().session() as db_session:
        entries, total = audit.search(db_session=db_session, action="assessment.export")
        assert total == 1
        assert entries[0].actor == "supervisor"
        assert entries[0].detail["unit"] == "department"


def test_district_and_street_scorecards_answer(client: TestClient, login: Login) -> None:
    for unit in ("district", "street"):
        response = client.get(
            "/api/v1/assessment/scorecard",
            params={"unit": unit, "month": "2025-11"},
            headers=login("admin"),
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["date_from"], body["date_to"]) == ("2025-11-01", "2025-11-30")
        assert body["previous"] == {"date_from": "2025-10-01", "date_to": "2025-10-31"}
        assert body["rows"] == [] and body["total"]["received"] == 0


@pytest.mark.parametrize("user", ["agent", "dept_housing"])
def test_assessment_is_for_supervisors_and_admins(
    client: TestClient, login: Login, user: str
) -> None:
    for path in (
        "/api/v1/assessment/scorecard",
        "/api/v1/assessment/drill-down?figure=returns",
        "/api/v1/assessment/export.xlsx",
    ):
        assert client.get(path, headers=login(user)).status_code == 403
        assert client.get(path).status_code == 401


@pytest.mark.parametrize(
    ("params", "status", "error"),
    [
        ({"month": "2025-13"}, 400, "InvalidInput"),
        ({"month": "1999-12"}, 400, "InvalidInput"),
        ({"month": "2025-11", "date_from": "2025-11-01"}, 400, "InvalidInput"),
        ({"date_from": "2025-11-21", "date_to": "2025-11-20"}, 400, "InvalidInput"),
        ({"month": "November"}, 422, None),
        ({"unit": "city"}, 422, None),
    ],
)
def test_bad_periods_are_4xx(
    client: TestClient, login: Login, params: dict[str, str], status: int, error: str | None
) -> None:
    for path in ("/api/v1/assessment/scorecard", "/api/v1/assessment/export.xlsx"):
        response = client.get(path, params=params, headers=login("supervisor"))
        assert response.status_code == status, response.text
        if error:
            assert response.json()["error"] == error
    drill = client.get(
        "/api/v1/assessment/drill-down", params={"figure": "speed"}, headers=login("supervisor")
    )
    assert drill.status_code == 422
