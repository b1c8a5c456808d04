"""Hotspots over HTTP after a real scan task run (热点预警), on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from fastapi.testclient import TestClient

from router.orm import utcnow
from router.workorders import service as workorders
from service import runtime

Login = Callable[[str], dict[str, str]]


def add_orders(count: int, *, hours_ago: float, street: str = "A1-03") -> list[str]:
    numbers = []
    now = utcnow()
    with runtime.get_database().session() as db_session:
        for i in range(count):
            order, _ = workorders.receive_appeal(
                db_session=db_session,
                appeal=workorders.AppealInput(
                    channel="phone",
                    text=f"工地脚手架晃动，很危险 {i}",
                    caller_phone=f"1390000{hours_ago:.0f}{i:03d}",
                ),
                now=now - timedelta(hours=hours_ago, minutes=i),
            )
            order.street_code = street
            order.district_code = "A1"
            order.category_code = "010501"
            numbers.append(order.number)
    return numbers


def test_the_scan_task_finds_a_surge_and_the_api_shows_it(client: TestClient, login: Login) -> None:
    from service.worker.hotspots import scan_hotspots

    add_orders(1, hours_ago=24 * 6)
    surge = add_orders(7, hours_ago=3)
    add_orders(2, hours_ago=3, street="A1-01")

    result = scan_hotspots()  # the task body, run in this process
    assert len(result["created"]) == 1

    response = client.get("/api/v1/hotspots", headers=login("supervisor"))
    assert response.status_code == 200, response.text
    (item,) = response.json()["items"]
    assert item["place_code"] == "A1-03"
    assert item["place_name"] == "A1区马坡岭街道"
    assert item["category_code"] == "010501"
    assert item["category_path"]
    assert item["count"] == 7
    assert item["distinct_callers"] == 7
    assert item["baseline"] < 1
    assert sorted(item["appeal_numbers"]) == sorted(surge)
    assert sum(point["count"] for point in item["trend"]) == 8
    assert set(item) >= {"id", "score", "first_seen", "last_seen"}

    one = client.get(f"/api/v1/hotspots/{item['id']}", headers=login("agent"))
    assert one.status_code == 200
    assert one.json()["appeal_numbers"] == item["appeal_numbers"]

    # Run again: the same hotspot, not a second one.
    assert scan_hotspots()["updated"] == [item["id"]]
    assert len(client.get("/api/v1/hotspots", headers=login("admin")).json()["items"]) == 1


def test_hotspots_are_not_for_departments_and_a_missing_one_is_404(
    client: TestClient, login: Login
) -> None:
    assert client.get("/api/v1/hotspots", headers=login("dept_housing")).status_code == 403
    missing = client.get("/api/v1/hotspots/999999", headers=login("supervisor"))
    assert missing.status_code == 404
    assert missing.json()["error"] == "NotFound"
    assert client.get("/api/v1/hotspots").status_code == 401
