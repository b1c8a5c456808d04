from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from service import runtime

Login = Callable[[str], dict[str, str]]

TEXT = "小区门口的路灯坏了半个多月，晚上一片漆黑，请尽快派人维修。"


def dispatched_order(client: TestClient, login: Login, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("HOTLINE_AUTO_DISPATCH_THRESHOLD", "0")
    runtime.get_settings.cache_clear()
    response = client.post(
        "/api/v1/appeals", json={"channel": "web", "text": TEXT}, headers=login("agent")
    )
    assert response.status_code == 201, response.text
    assert response.json()["state"] == "dispatched"
    number: str = response.json()["number"]
    return number


def failed_delivery(number: str) -> int:
    """A webhook delivery of the order that ran out of retries: a dead letter."""
    from router.workorders.models import WorkOrder
    from service.delivery import service as delivery

    with runtime.get_database().session() as db_session:
        order = db_session.scalar(select(WorkOrder).where(WorkOrder.number == number))
        assert order is not None and order.department_code
        (row,) = delivery.record_dispatch(
            db_session=db_session,
            work_order=order,
            department_code=order.department_code,
            channels=["webhook"],
        )
        delivery.fail_delivery(
            db_session=db_session, delivery_id=row.id, reason="webhook 503 来电 13812345678"
        )
        return row.id


def intake_letter() -> int:
    from service.delivery import service as delivery

    with runtime.get_database().session() as db_session:
        letter = delivery.dead_letter(
            db_session=db_session,
            kind="intake",
            reference="phone:call-1",
            reason="not JSON",
            payload={"body": "我的电话是13812345678"},
        )
        return letter.id


def letters(client: TestClient, login: Login, **params: Any) -> list[dict[str, Any]]:
    response = client.get("/api/v1/dead-letters", params=params, headers=login("supervisor"))
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def test_supervisor_retries_a_failed_delivery_and_it_is_audited(
    client: TestClient, login: Login, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service.auth import audit
    from service.delivery.models import Delivery

    delivery_id = failed_delivery(dispatched_order(client, login, monkeypatch))
    (letter,) = letters(client, login)
    assert letter["kind"] == "delivery" and letter["retryable"] is True
    assert letter["payload"]["delivery_id"] == delivery_id
    assert "13812345678" not in str(letter) and "138****5678" in letter["reason"]

    retried = client.post(f"/api/v1/dead-letters/{letter['id']}/retry", headers=login("supervisor"))

    assert retried.status_code == 200, retried.text
    assert retried.json()["delivery_status"] == "pending"
    assert retried.json()["dead_letter"]["resolved_by"] == "supervisor"
    assert letters(client, login) == []
    assert [item["id"] for item in letters(client, login, include_resolved=True)] == [letter["id"]]
    with runtime.get_database().session() as db_session:
        row = db_session.get(Delivery, delivery_id)
        assert row is not None and row.status == "pending"
        entries, total = audit.search(db_session=db_session, action="dead_letter.retry")
        assert total == 1 and entries[0].actor == "supervisor"
        assert entries[0].target_id == str(letter["id"])

    again = client.post(f"/api/v1/dead-letters/{letter['id']}/retry", headers=login("supervisor"))
    assert again.status_code == 409
    assert again.json()["error"] == "Conflict"


def test_intake_letters_are_resolved_not_retried(client: TestClient, login: Login) -> None:
    from service.auth import audit

    letter_id = intake_letter()
    (listed,) = letters(client, login, kind="intake")
    assert listed["retryable"] is False
    assert listed["payload"] == {"body": "我的电话是138****5678"}

    retried = client.post(f"/api/v1/dead-letters/{letter_id}/retry", headers=login("admin"))
    assert retried.status_code == 409

    for _ in range(2):  # resolving twice keeps the first resolution and one audit entry
        resolved = client.post(f"/api/v1/dead-letters/{letter_id}/resolve", headers=login("admin"))
        assert resolved.status_code == 200, resolved.text
        assert resolved.json()["resolved_by"] == "admin"
    assert letters(client, login) == []
    with runtime.get_database().session() as db_session:
        _, total = audit.search(db_session=db_session, action="dead_letter.resolve")
        assert total == 1


def test_only_supervisors_and_admins_see_dead_letters(client: TestClient, login: Login) -> None:
    letter_id = intake_letter()
    for user in ("agent", "dept_housing"):
        assert client.get("/api/v1/dead-letters", headers=login(user)).status_code == 403
        for action in ("retry", "resolve"):
            url = f"/api/v1/dead-letters/{letter_id}/{action}"
            assert client.post(url, headers=login(user)).status_code == 403
    assert client.get("/api/v1/dead-letters").status_code == 401
    missing = client.post("/api/v1/dead-letters/999999/resolve", headers=login("supervisor"))
    assert missing.status_code == 404
    assert missing.json()["error"] == "NotFound"
    assert len(letters(client, login)) == 1
