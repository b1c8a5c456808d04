"""Knowledge base API: suggestions from the seeded real replies, proposals, review, and a
consultation answered at intake (直接办结), on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from service import runtime

Login = Callable[[str], dict[str, str]]

STREET_LIGHT = (
    "您好，我家小区门口的路灯坏了半个多月了，晚上一片漆黑，老人小孩出门很不安全，请尽快派人维修。"
)
REPLY = "经核查，该路段路灯线路老化，我局已于本周更换线路并恢复照明，后续将加强日常巡查。"
CONSULTATION = "请问孩子在A市上小学办理入学登记需要准备哪些材料？户口不在本区能不能报名？"


def suggest(client: TestClient, login: Login, text: str, **extra: Any) -> dict[str, Any]:
    response = client.post(
        "/api/v1/knowledge/suggestions", json={"text": text, **extra}, headers=login("agent")
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def closed_order(
    client: TestClient, login: Login, monkeypatch: pytest.MonkeyPatch
) -> tuple[str, str]:
    """A street-light order dispatched, accepted, replied to and closed; (number, department)."""
    monkeypatch.setenv("HOTLINE_AUTO_DISPATCH_THRESHOLD", "1.01")
    runtime.get_settings.cache_clear()
    created = client.post(
        "/api/v1/appeals", json={"channel": "web", "text": STREET_LIGHT}, headers=login("agent")
    )
    assert created.status_code == 201, created.text
    number = created.json()["number"]
    url = f"/api/v1/work-orders/{number}"
    owner = client.post(f"{url}/dispatch", json={}, headers=login("agent")).json()[
        "department_code"
    ]
    department = login(f"dept_{owner.lower()}")
    assert client.post(f"{url}/accept", headers=department).status_code == 200
    replied = client.post(f"{url}/reply", json={"result": REPLY}, headers=department)
    assert replied.status_code == 200, replied.text
    assert client.post(f"{url}/close", headers=login("agent")).json()["state"] == "closed"
    return number, owner


def audit_actions(target_type: str) -> list[str]:
    from service.auth.models import AuditEntry

    with runtime.get_database().session() as db_session:
        return list(
            db_session.scalars(
                select(AuditEntry.action)
                .where(AuditEntry.target_type == target_type)
                .order_by(AuditEntry.id)
            )
        )


def test_seeded_official_replies_are_suggested_with_source_and_date(
    client: TestClient, login: Login
) -> None:
    from fixtures import real
    from router.knowledge.models import KnowledgeArticle
    from service.knowledge import seed_official_replies

    with runtime.get_database().session() as db_session:
        created = seed_official_replies(
            db_session=db_session, settings=runtime.get_settings(), limit=300
        )
    assert created >= 290
    with runtime.get_database().session() as db_session:
        categories = list(db_session.scalars(select(KnowledgeArticle.category_code)))
    # The demo model categorises the messages without a gold label.
    assert sum(code is not None and len(code) == 6 for code in categories) > 250
    with runtime.get_database().session() as db_session:
        assert seed_official_replies(db_session=db_session, limit=300) == 0  # idempotent

    message = real.reply_messages()[42]
    body = suggest(client, login, message.detail)
    assert 1 <= len(body["items"]) <= 3
    best = body["items"][0]
    assert best["source"] == "official_reply"
    assert message.title in best["question"]
    assert best["answer"] == message.reply
    assert best["source_date"] is not None and best["source_date"].startswith(
        message.reply_time.split("/")[0]
    )
    assert len(best["excerpt"]) <= 120


def test_a_department_proposes_from_its_closed_order_and_agents_see_it_once_approved(
    client: TestClient, login: Login, monkeypatch: pytest.MonkeyPatch
) -> None:
    number, owner = closed_order(client, login, monkeypatch)
    typed = "小区路灯坏了晚上很黑"
    assert suggest(client, login, typed)["items"] == []

    from router.catalogue.models import Department

    with runtime.get_database().session() as db_session:
        other = next(
            code
            for code in db_session.scalars(select(Department.code).order_by(Department.code))
            if code != owner
        )
    stranger = client.post(
        "/api/v1/knowledge/proposals",
        json={"work_order_number": number},
        headers=login(f"dept_{other.lower()}"),
    )
    assert stranger.status_code == 404, stranger.text

    proposed = client.post(
        "/api/v1/knowledge/proposals",
        json={"work_order_number": number},
        headers=login(f"dept_{owner.lower()}"),
    )
    assert proposed.status_code == 201, proposed.text
    article = proposed.json()
    assert article["state"] == "proposed"
    assert article["answer"] == REPLY and article["owner_department_code"] == owner
    assert article["source"] == "work_order" and article["source_ref"] == number
    again = client.post(
        "/api/v1/knowledge/proposals",
        json={"work_order_number": number},
        headers=login(f"dept_{owner.lower()}"),
    )
    assert again.status_code == 409
    assert suggest(client, login, typed)["items"] == []  # not approved yet

    url = f"/api/v1/knowledge/articles/{article['id']}"
    assert client.post(f"{url}/approve", headers=login("agent")).status_code == 403
    approved = client.post(
        f"{url}/approve",
        json={"answer": REPLY + "如有疑问请拨打12345。"},
        headers=login("supervisor"),
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["state"] == "approved" and approved.json()["revision"] == 3
    items = suggest(client, login, typed)["items"]
    assert [i["id"] for i in items] == [article["id"]]
    assert items[0]["answer"].endswith("如有疑问请拨打12345。")

    retired = client.post(
        f"{url}/retire", json={"reason": "政策已调整"}, headers=login("supervisor")
    )
    assert retired.json()["state"] == "retired"
    assert suggest(client, login, typed)["items"] == []
    assert client.post(f"{url}/approve", headers=login("supervisor")).status_code == 409
    assert audit_actions("knowledge_article") == [
        "knowledge.propose",
        "knowledge.approve",
        "knowledge.retire",
    ]


def test_supervisor_proposes_from_every_closed_order_once(
    client: TestClient, login: Login, monkeypatch: pytest.MonkeyPatch
) -> None:
    number, _ = closed_order(client, login, monkeypatch)
    url = "/api/v1/knowledge/proposals/from-closed-orders"
    first = client.post(url, json={}, headers=login("supervisor"))
    assert first.status_code == 200, first.text
    assert [a["source_ref"] for a in first.json()["items"]] == [number]
    assert client.post(url, json={}, headers=login("supervisor")).json()["items"] == []


def test_article_validity_and_edits_are_checked(client: TestClient, login: Login) -> None:
    now = datetime.now(UTC)
    supervisor = login("supervisor")
    bad = client.post(
        "/api/v1/knowledge/articles",
        json={
            "question": "公交卡优惠",
            "answer": "老年人凭身份证办理。",
            "valid_from": now.isoformat(),
            "valid_to": (now - timedelta(days=1)).isoformat(),
        },
        headers=supervisor,
    )
    assert bad.status_code == 400 and bad.json()["error"] == "InvalidInput"
    unknown = client.post(
        "/api/v1/knowledge/articles",
        json={"question": "公交卡优惠", "answer": "凭身份证办理。", "category_code": "999999"},
        headers=supervisor,
    )
    assert unknown.status_code == 400

    expired = client.post(
        "/api/v1/knowledge/articles",
        json={
            "question": "老年人公交卡优惠怎么办理",
            "answer": "老年人凭身份证到公交公司办理优惠公交卡。",
            "approve": True,
            "valid_to": (now - timedelta(minutes=1)).isoformat(),
        },
        headers=supervisor,
    )
    assert expired.status_code == 201, expired.text
    assert suggest(client, login, "老年人公交卡优惠")["items"] == []
    article_id = expired.json()["id"]
    edited = client.patch(
        f"/api/v1/knowledge/articles/{article_id}",
        json={"valid_to": (now + timedelta(days=30)).isoformat()},
        headers=supervisor,
    )
    assert edited.status_code == 200, edited.text
    assert [i["id"] for i in suggest(client, login, "老年人公交卡优惠")["items"]] == [article_id]

    listed = client.get("/api/v1/knowledge/articles?state=approved", headers=login("agent"))
    assert listed.json()["total"] == 1
    assert (
        client.get(f"/api/v1/knowledge/articles/{article_id + 999}", headers=supervisor).status_code
        == 404
    )
    assert (
        client.get("/api/v1/knowledge/articles", headers=login("dept_housing")).status_code == 403
    )
    assert (
        client.post(
            "/api/v1/knowledge/suggestions", json={"text": "公交"}, headers=login("dept_housing")
        ).status_code
        == 403
    )


def test_a_consultation_answered_at_intake_is_closed_with_its_answer_and_gets_a_callback(
    client: TestClient, login: Login
) -> None:
    article = client.post(
        "/api/v1/knowledge/articles",
        json={
            "question": "小学入学登记材料",
            "answer": "需户口簿、房产证明和疫苗接种证。",
            "approve": True,
        },
        headers=login("supervisor"),
    ).json()
    payload = {
        "channel": "phone",
        "text": CONSULTATION,
        "appeal_type": "consultation",
        "caller_phone": "13812345678",
        "answer": article["answer"],
        "article_id": article["id"],
        "idempotency_key": "answered-1",
    }
    response = client.post("/api/v1/appeals/answered", json=payload, headers=login("agent"))
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["state"] == "closed" and body["callbacks"] >= 1
    number = body["number"]

    order = client.get(f"/api/v1/work-orders/{number}", headers=login("supervisor")).json()
    assert [(e["action"], e["to_state"]) for e in order["events"]] == [
        ("receive", "received"),
        ("answer", "closed"),
    ]
    assert order["events"][1]["data"] == {"answer": article["answer"], "article_id": article["id"]}

    from router.callbacks.models import Callback
    from router.workorders.models import WorkOrder

    with runtime.get_database().session() as db_session:
        stored = db_session.scalars(select(WorkOrder).where(WorkOrder.number == number)).one()
        assert stored.closed_at is not None and stored.department_code is None
        callbacks = db_session.scalars(
            select(Callback).where(Callback.work_order_id == stored.id)
        ).all()
        assert len(callbacks) == body["callbacks"]
    assert "work_order.answer" in audit_actions("work_order")

    replay = client.post("/api/v1/appeals/answered", json=payload, headers=login("agent"))
    assert replay.status_code == 200 and replay.json()["number"] == number


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"appeal_type": "complaint"}, 422),
        ({"answer": ""}, 422),
        ({"article_id": 999999}, 404),
    ],
)
def test_answering_at_intake_refuses_what_is_not_an_answered_consultation(
    client: TestClient, login: Login, change: dict[str, Any], status: int
) -> None:
    payload = {"channel": "phone", "text": CONSULTATION, "appeal_type": "consultation"}
    payload |= {"answer": "请携带户口簿到学校登记。"} | change
    response = client.post("/api/v1/appeals/answered", json=payload, headers=login("agent"))
    assert response.status_code == status, response.text
    assert (
        client.post(
            "/api/v1/appeals/answered", json=payload, headers=login("dept_housing")
        ).status_code
        == 403
    )


def test_an_unsatisfied_answer_at_intake_goes_to_the_review_queue(
    client: TestClient, login: Login
) -> None:
    """The order has no department to reopen to: it waits in review for an agent to dispatch."""
    payload = {
        "channel": "phone",
        "text": CONSULTATION,
        "appeal_type": "consultation",
        "caller_phone": "13812345678",
        "answer": "需户口簿和房产证明。",
    }
    response = client.post("/api/v1/appeals/answered", json=payload, headers=login("agent"))
    assert response.status_code == 201, response.text
    number = response.json()["number"]

    from router.callbacks.models import Callback
    from router.workorders.models import WorkOrder

    with runtime.get_database().session() as db_session:
        order_id = db_session.scalars(select(WorkOrder.id).where(WorkOrder.number == number)).one()
        callback_id = db_session.scalars(
            select(Callback.id).where(Callback.work_order_id == order_id)
        ).first()
    result = client.post(
        f"/api/v1/callbacks/{callback_id}/result",
        json={"result": "unsatisfied"},
        headers=login("agent"),
    )
    assert result.status_code == 200, result.text
    order = client.get(f"/api/v1/work-orders/{number}", headers=login("supervisor")).json()
    assert order["state"] == "review"
    # Escalated too, as every unsatisfied callback is by default.
    assert [e["action"] for e in order["events"]][-3:] == ["reopen", "send_to_review", "escalate"]
    queue = client.get("/api/v1/review-queue", headers=login("agent"))
    assert number in {item["number"] for item in queue.json()["items"]}
    dispatched = client.post(
        f"/api/v1/work-orders/{number}/dispatch",
        json={"department_code": "education"},
        headers=login("agent"),
    )
    assert dispatched.status_code == 200, dispatched.text
    assert dispatched.json()["state"] == "dispatched"
