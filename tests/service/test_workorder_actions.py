from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from service import runtime

Login = Callable[[str], dict[str, str]]

STREET_LIGHT = (
    "您好，我家小区门口的路灯坏了半个多月了，晚上一片漆黑，老人小孩出门很不安全，请尽快派人维修。"
)
MISSING = "20200101-0000000"


def create(
    client: TestClient, login: Login, monkeypatch: pytest.MonkeyPatch, *, review: bool = False
) -> dict[str, Any]:
    """A new appeal: auto-dispatched, or (review=True) waiting in the review queue."""
    monkeypatch.setenv("HOTLINE_AUTO_DISPATCH_THRESHOLD", "1.01" if review else "0")
    runtime.get_settings.cache_clear()
    payload = {"channel": "web", "text": STREET_LIGHT, "caller_phone": "13812345678"}
    response = client.post("/api/v1/appeals", json=payload, headers=login("agent"))
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    assert body["state"] == ("review" if review else "dispatched")
    return body


def dept(code: str) -> str:
    return f"dept_{code.lower()}"


def other_department(code: str) -> str:
    from router.catalogue.models import Department

    with runtime.get_database().session() as db_session:
        return next(
            c
            for c in db_session.scalars(select(Department.code).order_by(Department.code))
            if c != code
        )


def leaf_category_other_than(code: str) -> str:
    from router.catalogue.models import Category

    with runtime.get_database().session() as db_session:
        return next(
            c
            for c in db_session.scalars(
                select(Category.code)
                .where(Category.level == 3, Category.lead_department_code.is_not(None))
                .order_by(Category.code)
            )
            if c != code
        )


def read(client: TestClient, login: Login, number: str) -> dict[str, Any]:
    response = client.get(f"/api/v1/work-orders/{number}", headers=login("supervisor"))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def post(
    client: TestClient, login: Login, user: str, number: str, action: str, body: object = None
) -> Any:
    return client.post(f"/api/v1/work-orders/{number}/{action}", json=body, headers=login(user))


def test_dispatch_accept_reply_close_is_logged_and_audited(
    client: TestClient, login: Login, monkeypatch: pytest.MonkeyPatch
) -> None:
    order = create(client, login, monkeypatch, review=True)
    number = order["number"]
    dispatched = post(client, login, "agent", number, "dispatch", {})
    assert dispatched.status_code == 200, dispatched.text
    owner = dispatched.json()["department_code"]
    assert dispatched.json()["data"]["label_source"] == "agent_confirm"
    assert dispatched.json()["deadline"] and dispatched.json()["accept_deadline"]

    assert post(client, login, dept(owner), number, "accept").json()["state"] == "accepted"
    replied = post(client, login, dept(owner), number, "reply", {"result": "已修复路灯"})
    assert replied.json()["state"] == "replied"
    assert post(client, login, "agent", number, "close").json()["state"] == "closed"

    events = read(client, login, number)["events"]
    assert [(e["action"], e["to_state"]) for e in events] == [
        ("receive", "received"),
        ("send_to_review", "review"),
        ("dispatch", "dispatched"),
        ("accept", "accepted"),
        ("reply", "replied"),
        ("close", "closed"),
    ]
    assert events[4]["data"]["result"] == "已修复路灯"

    from service.auth import audit

    with runtime.get_database().session() as db_session:
        entries, total = audit.search(db_session=db_session, action="work_order.", target_id=number)
        assert total == 4
        assert {e.action for e in entries} == {
            "work_order.dispatch",
            "work_order.accept",
            "work_order.reply",
            "work_order.close",
        }


def test_illegal_transition_is_a_409_naming_the_current_state(
    client: TestClient, login: Login, monkeypatch: pytest.MonkeyPatch
) -> None:
    number = create(client, login, monkeypatch)["number"]
    response = post(client, login, "agent", number, "close")
    assert response.status_code == 409
    assert response.json()["error"] == "Conflict"
    assert response.json()["current_state"] == "dispatched"
    assert read(client, login, number)["state"] == "dispatched"


def test_return_goes_to_review_with_next_best_and_second_return_escalates(
    client: TestClient, login: Login, monkeypatch: pytest.MonkeyPatch
) -> None:
    order = create(client, login, monkeypatch)
    number, owner = order["number"], order["suggestion"]["department_code"]
    response = post(client, login, dept(owner), number, "return", {"reason": "不属于本单位职责"})
    assert response.status_code == 200, response.text
    after = read(client, login, number)
    assert (after["state"], after["escalated"]) == ("review", False)
    next_best = after["suggestion"]["next_best"]
    assert next_best["department_code"] != owner
    expected = next(a for a in order["suggestion"]["alternatives"] if a["department_code"] != owner)
    assert next_best == expected
    queue = client.get("/api/v1/review-queue", headers=login("agent")).json()
    assert number in {item["number"] for item in queue["items"]}

    assert post(client, login, "agent", number, "dispatch", {}).status_code == 200
    again = post(client, login, dept(owner), number, "return", {"reason": "仍不属于本单位"})
    assert again.status_code == 200, again.text
    final = read(client, login, number)
    assert (final["state"], final["escalated"]) == ("review", True)
    assert final["events"][-1]["action"] == "escalate"
    assert final["events"][-1]["reason"] == "多次退单"


def test_next_best_skips_every_department_that_returned_the_order(
    client: TestClient, login: Login, monkeypatch: pytest.MonkeyPatch
) -> None:
    order = create(client, login, monkeypatch)
    number, first = order["number"], order["suggestion"]["department_code"]
    alternatives = order["suggestion"]["alternatives"]
    assert (
        post(client, login, dept(first), number, "return", {"reason": "非本单位"}).status_code
        == 200
    )
    proposed = read(client, login, number)["suggestion"]["next_best"]
    assert proposed["department_code"] not in (None, first)

    # The agent follows the proposal; the second department returns it too.
    second = proposed["department_code"]
    body = {"category_code": proposed["category_code"], "department_code": second}
    assert post(client, login, "agent", number, "dispatch", body).status_code == 200
    assert (
        post(client, login, dept(second), number, "return", {"reason": "也非本单位"}).status_code
        == 200
    )
    queue = client.get("/api/v1/review-queue", headers=login("agent")).json()
    item = next(i for i in queue["items"] if i["number"] == number)
    again = item["suggestion"]["next_best"]
    expected = next((a for a in alternatives if a["department_code"] not in (first, second)), None)
    assert again == expected
    assert again is None or again["department_code"] not in (first, second)


def test_extension_approval_moves_the_deadline_and_the_cap_is_a_409(
    client: TestClient, login: Login, monkeypatch: pytest.MonkeyPatch
) -> None:
    order = create(client, login, monkeypatch)
    number, user = order["number"], dept(order["suggestion"]["department_code"])
    post(client, login, user, number, "accept")
    deadline = datetime.fromisoformat(read(client, login, number)["deadline"])
    wanted = (deadline + timedelta(days=3)).isoformat()
    too_early = post(
        client, login, user, number, "extension", {"reason": "需协调", "new_deadline": wanted}
    )
    assert too_early.status_code == 200, too_early.text
    approved = post(client, login, "supervisor", number, "extension/approve")
    assert approved.status_code == 200, approved.text
    after = read(client, login, number)
    assert after["state"] == "accepted"
    assert datetime.fromisoformat(after["deadline"]) == deadline + timedelta(days=3)

    later = (deadline + timedelta(days=5)).isoformat()
    capped = post(
        client, login, user, number, "extension", {"reason": "再延", "new_deadline": later}
    )
    assert capped.status_code == 409
    assert capped.json()["limit"] == 1


def test_denied_extension_keeps_the_deadline(
    client: TestClient, login: Login, monkeypatch: pytest.MonkeyPatch
) -> None:
    order = create(client, login, monkeypatch)
    number, user = order["number"], dept(order["suggestion"]["department_code"])
    post(client, login, user, number, "accept")
    deadline = read(client, login, number)["deadline"]
    bad = [
        {"reason": "x", "new_deadline": deadline},  # not later
        {"reason": "x", "new_deadline": "2030-01-01T10:00:00"},  # no offset
        {"reason": "", "new_deadline": "2099-01-01T10:00:00+08:00"},
        {"reason": "x", "new_deadline": "2099-01-01T10:00:00+08:00", "extra": 1},
    ]
    assert [post(client, login, user, number, "extension", b).status_code for b in bad] == [
        400,
        422,
        422,
        422,
    ]
    wanted = {"reason": "需协调", "new_deadline": "2099-01-01T10:00:00+08:00"}
    assert post(client, login, user, number, "extension", wanted).status_code == 200
    assert post(client, login, "supervisor", number, "extension/deny", {}).status_code == 422
    denied = post(client, login, "supervisor", number, "extension/deny", {"reason": "无必要"})
    assert denied.status_code == 200, denied.text
    after = read(client, login, number)
    assert (after["state"], after["deadline"]) == ("accepted", deadline)


def test_agent_override_records_the_training_label(
    client: TestClient, login: Login, monkeypatch: pytest.MonkeyPatch
) -> None:
    order = create(client, login, monkeypatch, review=True)
    number, suggestion = order["number"], order["suggestion"]
    category = leaf_category_other_than(suggestion["category_code"])
    bad = [
        {"category_code": category[:2]},  # not a leaf
        {"category_code": "NOPE"},
        {"department_code": "NOPE"},
        {"category_code": category, "unknown": 1},
    ]
    statuses = [post(client, login, "agent", number, "dispatch", b).status_code for b in bad]
    assert statuses == [400, 400, 400, 422]
    response = post(
        client, login, "agent", number, "dispatch", {"category_code": category, "reason": "改类"}
    )
    assert response.status_code == 200, response.text
    data = read(client, login, number)["events"][-1]["data"]
    assert data["label_source"] == "agent_override"
    assert data["category_code"] == category
    assert data["suggested_category_code"] == suggestion["category_code"]
    assert data["suggested_department_code"] == suggestion["department_code"]
    assert data["department_code"] == response.json()["department_code"]


def test_reassign_moves_the_order_to_another_department(
    client: TestClient, login: Login, monkeypatch: pytest.MonkeyPatch
) -> None:
    order = create(client, login, monkeypatch)
    number, owner = order["number"], order["suggestion"]["department_code"]
    target = other_department(owner)
    response = post(
        client, login, "agent", number, "reassign", {"department_code": target, "reason": "改派"}
    )
    assert response.status_code == 200, response.text
    assert (response.json()["state"], response.json()["department_code"]) == (
        "dispatched",
        target,
    )
    assert post(client, login, dept(owner), number, "accept").status_code == 404
    assert post(client, login, dept(target), number, "accept").status_code == 200


DEPARTMENT_ACTIONS: list[tuple[str, dict[str, Any] | None]] = [
    ("accept", None),
    ("return", {"reason": "不属于本单位"}),
    ("extension", {"reason": "需协调", "new_deadline": "2099-01-01T10:00:00+08:00"}),
    ("reply", {"result": "已处理"}),
]


@pytest.mark.parametrize(
    ("action", "body"), DEPARTMENT_ACTIONS, ids=[a for a, _ in DEPARTMENT_ACTIONS]
)
def test_another_department_gets_the_same_404_as_a_missing_order(
    client: TestClient,
    login: Login,
    monkeypatch: pytest.MonkeyPatch,
    action: str,
    body: dict[str, Any] | None,
) -> None:
    order = create(client, login, monkeypatch)
    number, owner = order["number"], order["suggestion"]["department_code"]
    stranger = dept(other_department(owner))
    other = post(client, login, stranger, number, action, body)
    missing = post(client, login, stranger, MISSING, action, body)
    assert other.status_code == missing.status_code == 404
    assert other.json() == {
        **missing.json(),
        "detail": missing.json()["detail"].replace(MISSING, number),
    }
    assert read(client, login, number)["state"] == "dispatched"


def test_wrong_role_is_a_403(
    client: TestClient, login: Login, monkeypatch: pytest.MonkeyPatch
) -> None:
    order = create(client, login, monkeypatch)
    number, user = order["number"], dept(order["suggestion"]["department_code"])
    calls = [
        ("agent", "accept", None),
        ("admin", "dispatch", {}),
        (user, "dispatch", {}),
        (user, "close", None),
        ("agent", "escalate", {"reason": "x"}),
        ("agent", "extension/approve", None),
        (user, "reassign", {"department_code": "X", "reason": "x"}),
    ]
    assert [post(client, login, who, number, what, b).status_code for who, what, b in calls] == [
        403
    ] * len(calls)
    assert client.get("/api/v1/review-queue", headers=login(user)).status_code == 403
    # A legal action that the state machine reserves for supervisors is a 403 too.
    post(client, login, user, number, "accept")
    moved = {"department_code": other_department(user[5:].upper()), "reason": "x"}
    assert post(client, login, "agent", number, "reassign", moved).status_code == 403
    escalated = post(client, login, "supervisor", number, "escalate", {"reason": "久拖不办"})
    assert escalated.json()["escalated"] is True


def test_list_filters_scope_and_masking(
    client: TestClient, login: Login, monkeypatch: pytest.MonkeyPatch
) -> None:
    dispatched = create(client, login, monkeypatch)
    review = create(client, login, monkeypatch, review=True)
    owner = dispatched["suggestion"]["department_code"]

    def listing(user: str, **params: object) -> dict[str, Any]:
        response = client.get("/api/v1/work-orders", params=params, headers=login(user))
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    everything = listing("supervisor")
    assert everything["total"] == 2
    item = next(i for i in everything["items"] if i["number"] == dispatched["number"])
    assert item["caller_phone"] == "138****5678"
    assert item["deadline_status"] in ("normal", "warning")
    assert item["excerpt"] and item["deadline"]
    assert [i["number"] for i in listing("agent", state="review")["items"]] == [review["number"]]
    assert listing("agent", department_code=owner)["total"] >= 1
    assert listing(dept(owner))["total"] == sum(
        1 for i in everything["items"] if i["department_code"] == owner
    )
    assert listing(dept(other_department(owner)))["total"] == 0
    assert listing("agent", overdue=True)["total"] == 0

    from router.orm import utcnow
    from router.workorders.models import WorkOrder

    with runtime.get_database().session() as db_session:
        row = db_session.scalars(
            select(WorkOrder).where(WorkOrder.number == dispatched["number"])
        ).one()
        row.deadline_at = utcnow() - timedelta(hours=1)
    overdue = listing("agent", overdue=True)
    assert [i["number"] for i in overdue["items"]] == [dispatched["number"]]
    assert overdue["items"][0]["deadline_status"] == "overdue"
    assert listing("agent", overdue=False)["total"] == 1
    bad = client.get("/api/v1/work-orders", params={"state": "nope"}, headers=login("agent"))
    assert bad.status_code == 422


def test_a_reassigned_order_is_not_also_assisted_by_its_new_lead(
    client: TestClient, login: Login, monkeypatch: pytest.MonkeyPatch
) -> None:
    from router.workorders.models import WorkOrder

    order = create(client, login, monkeypatch)
    number, owner = order["number"], order["suggestion"]["department_code"]
    target = other_department(owner)
    with runtime.get_database().session() as db_session:
        row = db_session.scalars(select(WorkOrder).where(WorkOrder.number == number)).one()
        row.assisting_department_codes = [target, "other_assistant"]
        db_session.commit()
    response = post(
        client, login, "agent", number, "reassign", {"department_code": target, "reason": "改派"}
    )
    assert response.status_code == 200, response.text
    with runtime.get_database().session() as db_session:
        row = db_session.scalars(select(WorkOrder).where(WorkOrder.number == number)).one()
        assert (row.department_code, row.assisting_department_codes) == (
            target,
            ["other_assistant"],
        )
