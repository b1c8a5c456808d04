"""Duplicate suggestions and merge / unmerge over HTTP (并单), on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service import runtime

Login = Callable[[str], dict[str, str]]

LIGHT = "万国城小区门口的路灯坏了半个多月，晚上一片漆黑，老人小孩出门很不安全，请尽快派人维修。"
LIGHT_AGAIN = "万国城小区门口路灯坏了好久了，晚上一片漆黑，老人小孩出门不安全，希望尽快维修。"
FUMES_SAME_PLACE = "万国城小区楼下的餐馆油烟直排，家里窗户都不敢开，孩子咳嗽，请环保部门处理。"
LIGHT_ELSEWHERE = (
    "世纪城小区门口的路灯坏了半个多月，晚上一片漆黑，老人小孩出门很不安全，请尽快派人维修。"
)


def submit(client: TestClient, login: Login, text: str, phone: str) -> dict[str, Any]:
    payload = {"channel": "web", "text": text, "caller_phone": phone}
    response = client.post("/api/v1/appeals", json=payload, headers=login("agent"))
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture
def to_review(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOTLINE_AUTO_DISPATCH_THRESHOLD", "1.01")
    runtime.get_settings.cache_clear()


def duplicates(client: TestClient, login: Login, number: str, user: str = "agent") -> Any:
    return client.get(f"/api/v1/work-orders/{number}/duplicates", headers=login(user))


def test_a_rephrased_report_is_suggested_and_other_problems_are_not(
    client: TestClient, login: Login, to_review: None
) -> None:
    first = submit(client, login, LIGHT, "13800000001")
    fumes = submit(client, login, FUMES_SAME_PLACE, "13800000002")
    elsewhere = submit(client, login, LIGHT_ELSEWHERE, "13800000003")
    again = submit(client, login, LIGHT_AGAIN, "13800000004")

    response = duplicates(client, login, again["number"])
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert items[0]["number"] == first["number"]
    assert items[0]["action"] == "suggest"
    assert items[0]["place_relation"] == "same_site"
    assert set(items[0]) >= {"score", "category_relation", "text", "received_at"}
    order = client.get(f"/api/v1/work-orders/{again['number']}", headers=login("agent")).json()
    assert order["duplicate_suggestion"]["number"] == first["number"]

    # Same place, different problem; same problem, different place: never suggested.
    for other in (fumes, elsewhere):
        suggested = [i for i in duplicates(client, login, other["number"]).json()["items"]]
        assert all(i["action"] == "none" for i in suggested), suggested
    assert all(
        i["number"] not in (fumes["number"], elsewhere["number"]) or i["action"] == "none"
        for i in items
    )


def test_merge_and_unmerge_round_trip_keeps_every_caller(
    client: TestClient, login: Login, to_review: None
) -> None:
    first = submit(client, login, LIGHT, "13800000011")
    again = submit(client, login, LIGHT_AGAIN, "13800000012")
    number, master = again["number"], first["number"]

    response = client.post(
        f"/api/v1/work-orders/{number}/merge", json={"into": master}, headers=login("agent")
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "number": number,
        "state": "merged",
        "master_number": master,
        "members": [number],
    }
    master_read = client.get(f"/api/v1/work-orders/{master}", headers=login("supervisor")).json()
    assert master_read["merged_numbers"] == [number]
    assert master_read["events"][-1]["action"] == "merge_member"
    merged_read = client.get(f"/api/v1/work-orders/{number}", headers=login("agent")).json()
    assert (merged_read["state"], merged_read["master_number"]) == ("merged", master)

    # Merging it again is a conflict; a department may neither merge nor see suggestions.
    again_response = client.post(
        f"/api/v1/work-orders/{number}/merge", json={"into": master}, headers=login("agent")
    )
    assert again_response.status_code == 409
    assert again_response.json()["error"] == "Conflict"
    assert duplicates(client, login, number, "dept_housing").status_code == 403
    forbidden = client.post(f"/api/v1/work-orders/{master}/unmerge", headers=login("dept_housing"))
    assert forbidden.status_code == 403
    missing = client.post(
        "/api/v1/work-orders/20200101-0000000/merge", json={"into": master}, headers=login("agent")
    )
    assert missing.status_code == 404

    response = client.post(f"/api/v1/work-orders/{number}/unmerge", headers=login("supervisor"))
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "review"
    assert response.json()["master_number"] is None
    master_read = client.get(f"/api/v1/work-orders/{master}", headers=login("agent")).json()
    assert master_read["merged_numbers"] == []
    assert [e["action"] for e in master_read["events"]][-2:] == ["merge_member", "unmerge_member"]

    from router.workorders.models import WorkOrder

    with runtime.get_database().session() as db_session:
        phones = {
            o.number: o.appeal.caller_phone
            for o in db_session.query(WorkOrder).filter(WorkOrder.number.in_([number, master]))
        }
    assert phones == {master: "13800000011", number: "13800000012"}


def test_merging_into_itself_is_refused(client: TestClient, login: Login, to_review: None) -> None:
    first = submit(client, login, LIGHT, "13800000021")
    response = client.post(
        f"/api/v1/work-orders/{first['number']}/merge",
        json={"into": first["number"]},
        headers=login("agent"),
    )
    assert response.status_code == 409
    assert response.json()["error"] == "Conflict"
