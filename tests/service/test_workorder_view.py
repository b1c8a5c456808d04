"""One work order as each reader sees it: the lead department gets the citizen's words, name,
phone and address (audited); the public Open311 view gets them masked; any other department,
an assisting one included, gets the 404 of a missing number. The actions offered are the
workflow's for the reader's role and the order's state."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from service import runtime
from service.api.workorders import excerpt

Login = Callable[[str], dict[str, str]]

PHONE = "13812345678"
NAME = "王小明"
ADDRESS = "A3区联丰路米兰春天小区7栋"
TEXT = (
    "您好，我家小区门口的路灯坏了半个多月了，晚上一片漆黑，老人小孩出门很不安全，"
    "上周六晚上我母亲在门口摔了一跤，请尽快派人维修。我的备用电话13987654321，白天都能打通。"
    "另外小区东门的路灯也时亮时灭，物业说不归他们管，希望有关部门一并处理，谢谢！"
)
MISSING = "20200101-0000000"


@pytest.fixture
def order(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """An appeal submitted through Open311 (a public channel) and dispatched at once."""
    from router.catalogue.models import Category

    monkeypatch.setenv("HOTLINE_AUTO_DISPATCH_THRESHOLD", "0")
    runtime.get_settings.cache_clear()
    with runtime.get_database().session() as db_session:
        leaf = db_session.scalars(
            select(Category.code).where(Category.level == 3).order_by(Category.code).limit(1)
        ).one()
    form = {
        "service_code": leaf,
        "description": TEXT,
        "address_string": ADDRESS,
        "phone": PHONE,
        "first_name": "小明",
        "last_name": "王",
    }
    response = client.post("/open311/v2/requests.json", data=form)
    assert response.status_code == 201, response.text
    number = response.json()[0]["service_request_id"]
    supervisor = supervisor_read(client, number)
    assert supervisor["state"] == "dispatched", supervisor
    return supervisor


def supervisor_read(client: TestClient, number: str) -> dict[str, Any]:
    token = client.post(
        "/api/v1/auth/token",
        data={"username": "supervisor", "password": _password()},
    ).json()["access_token"]
    response = client.get(
        f"/api/v1/work-orders/{number}", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _password() -> str:
    import os

    return os.environ["HOTLINE_DEMO_PASSWORD"]


def user_of(code: str) -> str:
    return f"dept_{code.lower()}"


def departments_other_than(code: str, count: int) -> list[str]:
    from router.catalogue.models import Department

    with runtime.get_database().session() as db_session:
        codes = db_session.scalars(select(Department.code).order_by(Department.code))
        return [c for c in codes if c != code][:count]


def assist(number: str, codes: list[str]) -> None:
    """Make `codes` the order's assisting departments (协办), as a category listing them would."""
    from router.workorders.models import WorkOrder

    with runtime.get_database().session() as db_session:
        found = db_session.scalars(select(WorkOrder).where(WorkOrder.number == number)).one()
        found.assisting_department_codes = codes


def view_audits(number: str) -> list[tuple[str, dict[str, Any]]]:
    from service.auth import audit

    with runtime.get_database().session() as db_session:
        entries, _ = audit.search(
            db_session=db_session, action="personal_data.view", target_id=number
        )
        return [(e.actor, dict(e.detail)) for e in entries]


def test_lead_department_sees_the_whole_appeal_others_do_not(
    client: TestClient, login: Login, order: dict[str, Any]
) -> None:
    number, lead = order["number"], order["department_code"]
    assisting, stranger = departments_other_than(lead, 2)
    assist(number, [assisting])

    # The lead department: everything it needs to handle the appeal and call the citizen back.
    before = len(view_audits(number))
    response = client.get(f"/api/v1/work-orders/{number}", headers=login(user_of(lead)))
    assert response.status_code == 200, response.text
    mine = response.json()
    assert mine["appeal"] | {"title": ""} == {
        "title": "",
        "text": TEXT,
        "caller_name": NAME,
        "caller_phone": PHONE,
        "address": ADDRESS,
        "personal_data_masked": False,
    }
    assert mine["allowed_actions"] == ["accept", "return"]
    audits = view_audits(number)
    assert len(audits) == before + 1
    assert audits[0] == (
        user_of(lead),
        {"fields": ["text", "caller_name", "caller_phone", "address"]},
    )

    # Any other department, one that only assists (协办) included: exactly the answer for a
    # number that does not exist (assisting departments learn of it from the delivery message).
    for other in (assisting, stranger):
        seen = client.get(f"/api/v1/work-orders/{number}", headers=login(user_of(other)))
        missing = client.get(f"/api/v1/work-orders/{MISSING}", headers=login(user_of(other)))
        assert seen.status_code == missing.status_code == 404
        assert seen.text.replace(number, "N") == missing.text.replace(MISSING, "N")
        listed = client.get("/api/v1/work-orders", headers=login(user_of(other))).json()
        assert number not in {item["number"] for item in listed["items"]}
    assert len(view_audits(number)) == before + 1  # refusals show and audit nothing

    # The public Open311 view: the text with its numbers masked, no name, no caller phone.
    public = client.get(f"/open311/v2/requests/{number}.json")
    assert public.status_code == 200, public.text
    [request] = public.json()
    assert "139****4321" in request["description"]
    for secret in (PHONE, "13987654321", NAME, "小明"):
        assert secret not in public.text


def test_the_actions_offered_are_the_workflows_for_the_role_and_state(
    client: TestClient, login: Login, order: dict[str, Any]
) -> None:
    number, lead = order["number"], order["department_code"]

    def offered(user: str) -> list[str]:
        response = client.get(f"/api/v1/work-orders/{number}", headers=login(user))
        assert response.status_code == 200, response.text
        actions: list[str] = response.json()["allowed_actions"]
        return actions

    assert offered("supervisor") == ["redispatch", "merge", "escalate"]
    assert offered("agent") == ["redispatch", "merge"]
    assert offered("admin") == []
    accepted = client.post(f"/api/v1/work-orders/{number}/accept", headers=login(user_of(lead)))
    assert accepted.status_code == 200, accepted.text
    assert offered(user_of(lead)) == ["return", "request_extension", "reply"]
    # An accepted order: a supervisor may still reassign (改派) or escalate (督办) it.
    assert offered("supervisor") == ["redispatch", "escalate"]
    assert offered("agent") == []
    # The agent and the supervisor handle the appeal too: they see it whole (audited).
    body = client.get(f"/api/v1/work-orders/{number}", headers=login("agent")).json()
    assert body["appeal"]["caller_phone"] == PHONE
    assert "agent" in {actor for actor, _ in view_audits(number)}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_list_excerpts_end_at_a_clause_and_keep_masked_numbers_whole(
    client: TestClient, login: Login, order: dict[str, Any]
) -> None:
    listed = client.get("/api/v1/work-orders", headers=login(user_of(order["department_code"])))
    [item] = [i for i in listed.json()["items"] if i["number"] == order["number"]]
    assert item["excerpt"].endswith("，…") or item["excerpt"].endswith("。…")
    assert len(TEXT) > 120 >= len(item["excerpt"]) - 1
    masked = TEXT.replace("13987654321", "139****4321")
    assert masked.startswith(item["excerpt"][:-1])
    assert "139****4321" in item["excerpt"]


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("路灯坏了", 10, "路灯坏了"),
        ("路灯坏了，晚上一片漆黑，请尽快维修", 12, "路灯坏了，晚上一片漆黑，…"),
        ("请联系我电话138****5678谢谢", 16, "请联系我电话…"),
        ("abcdefghij", 6, "abcdef…"),  # no boundary at all in reach: cut at the limit
        ("  多个\n空白  会合并  ", 20, "多个 空白 会合并"),
    ],
)
def test_excerpt(text: str, limit: int, expected: str) -> None:
    assert excerpt(text, limit) == expected
