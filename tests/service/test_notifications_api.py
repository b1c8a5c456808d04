"""The notifications inbox: departments see their own only, supervisors see all."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy import select

from router.catalogue.models import Department
from router.notifications.service import notify
from router.workorders import service as workorders
from service import runtime

Login = Callable[[str], dict[str, str]]


def seed() -> tuple[str, str, dict[str, int]]:
    """Two departments and one notification each, plus one for the supervisors."""
    with runtime.get_database().session() as db_session:
        first, second = db_session.scalars(
            select(Department.code).order_by(Department.code).limit(2)
        ).all()
        order, _ = workorders.receive_appeal(
            db_session=db_session, appeal=workorders.AppealInput(channel="web", text="路灯坏了")
        )
        ids = {
            key: notify(
                db_session=db_session,
                work_order=order,
                recipient_kind=kind,
                recipient_code=code,
                kind="overdue",
                message=f"工单 {order.number} 已超过签收时限 ({key})",
            ).id
            for key, kind, code in (
                ("first", "department", first),
                ("second", "department", second),
                ("supervisors", "supervisors", None),
            )
        }
    return first, second, ids


def dept(code: str) -> str:
    return f"dept_{code.lower()}"


def test_a_department_sees_and_marks_only_its_own(client: TestClient, login: Login) -> None:
    first, _second, ids = seed()
    listed = client.get("/api/v1/notifications", headers=login(dept(first)))
    assert listed.status_code == 200, listed.text
    (item,) = listed.json()["items"]
    assert item["id"] == ids["first"]
    assert item["kind"] == "overdue" and item["read_at"] is None
    assert item["work_order_number"] and "(first)" in item["message"]

    for other in (ids["second"], ids["supervisors"], 999999):
        hidden = client.post(f"/api/v1/notifications/{other}/read", headers=login(dept(first)))
        assert hidden.status_code == 404 and hidden.json()["error"] == "NotFound"

    marked = client.post(f"/api/v1/notifications/{ids['first']}/read", headers=login(dept(first)))
    assert marked.status_code == 200 and marked.json()["read_at"]
    again = client.post(f"/api/v1/notifications/{ids['first']}/read", headers=login(dept(first)))
    assert again.json()["read_at"] == marked.json()["read_at"]
    unread = client.get("/api/v1/notifications?unread=true", headers=login(dept(first)))
    assert unread.json()["items"] == []


def test_supervisors_see_everything_and_mark_only_their_own(
    client: TestClient, login: Login
) -> None:
    _first, _second, ids = seed()
    listed = client.get("/api/v1/notifications", headers=login("supervisor"))
    assert [i["id"] for i in listed.json()["items"]] == sorted(ids.values(), reverse=True)
    refused = client.post(
        f"/api/v1/notifications/{ids['second']}/read", headers=login("supervisor")
    )
    assert refused.status_code == 403 and refused.json()["error"] == "Forbidden"
    marked = client.post(
        f"/api/v1/notifications/{ids['supervisors']}/read", headers=login("supervisor")
    )
    assert marked.status_code == 200
    unread = client.get("/api/v1/notifications?unread=true", headers=login("supervisor"))
    assert {i["id"] for i in unread.json()["items"]} == {ids["first"], ids["second"]}


def test_agents_and_strangers_are_refused(client: TestClient, login: Login) -> None:
    seed()
    assert client.get("/api/v1/notifications", headers=login("agent")).status_code == 403
    anonymous = client.get("/api/v1/notifications")
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "Unauthorized"
