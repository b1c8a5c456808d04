from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from service import runtime

Login = Callable[[str], dict[str, str]]

STREET_LIGHT = (
    "您好，我家小区门口的路灯坏了半个多月了，晚上一片漆黑，老人小孩出门很不安全，请尽快派人维修。"
)


def suggestion_keys() -> set[str]:
    return {"category_code", "category_path", "department_code", "confidence", "alternatives"}


def test_classify_returns_a_suggestion_with_alternatives(client: TestClient, login: Login) -> None:
    response = client.post("/api/v1/classify", json={"text": STREET_LIGHT}, headers=login("agent"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert suggestion_keys() <= set(body)
    assert body["category_code"] and body["department_code"]
    assert body["category_path"].count("/") == 2
    assert 0 < body["confidence"] <= 1
    assert 1 <= len(body["alternatives"]) <= 5
    assert body["alternatives"][0]["category_code"] == body["category_code"]
    assert body["terms"], "the agent sees the words that drove the suggestion"


def test_classify_needs_an_agent(client: TestClient, login: Login) -> None:
    assert client.post("/api/v1/classify", json={"text": STREET_LIGHT}).status_code == 401
    department_user = login("dept_" + first_department_code(client).lower())
    response = client.post("/api/v1/classify", json={"text": STREET_LIGHT}, headers=department_user)
    assert response.status_code == 403


@pytest.mark.parametrize(
    "payload",
    [{"text": ""}, {"text": "x" * 5001}, {}, {"text": 3}, {"text": "ok", "k": 0}],
)
def test_classify_rejects_bad_input_with_a_machine_readable_422(
    client: TestClient, login: Login, payload: dict[str, object]
) -> None:
    response = client.post("/api/v1/classify", json=payload, headers=login("agent"))
    assert response.status_code == 422
    assert response.json()["error"] == "ValidationError"


def first_department_code(client: TestClient) -> str:
    from sqlalchemy import select

    from router.catalogue.models import Department

    with runtime.get_database().session() as db_session:
        return db_session.scalars(select(Department.code).where(Department.kind == "city")).first()


def create(client: TestClient, login: Login, **extra: object) -> dict[str, object]:
    payload = {"channel": "web", "text": STREET_LIGHT, **extra}
    response = client.post("/api/v1/appeals", json=payload, headers=login("agent"))
    assert response.status_code in (200, 201), response.text
    return response.json()


def test_created_appeal_is_routed_and_readable(client: TestClient, login: Login) -> None:
    body = create(client, login, caller_phone="13800138000")
    assert body["state"] in ("dispatched", "review")
    assert body["next"] == (
        "auto_dispatched" if body["state"] == "dispatched" else "awaiting_review"
    )
    assert suggestion_keys() <= set(body["suggestion"])
    order = client.get(f"/api/v1/work-orders/{body['number']}", headers=login("supervisor"))
    assert order.status_code == 200
    read = order.json()
    assert {"number", "state", "category_code", "department_code", "deadline", "events"} <= set(
        read
    )
    assert read["category_code"] == body["suggestion"]["category_code"]
    assert read["events"][0]["action"] == "receive"
    assert read["events"][-1]["to_state"] == body["state"]


def test_confidence_threshold_decides_auto_dispatch_or_review(
    client: TestClient, login: Login, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOTLINE_AUTO_DISPATCH_THRESHOLD", "0")
    runtime.get_settings.cache_clear()
    dispatched = create(client, login)
    assert dispatched["state"] == "dispatched"
    read = client.get(f"/api/v1/work-orders/{dispatched['number']}", headers=login("agent")).json()
    assert read["deadline"] is not None

    monkeypatch.setenv("HOTLINE_AUTO_DISPATCH_THRESHOLD", "1.01")
    runtime.get_settings.cache_clear()
    assert create(client, login)["state"] == "review"


def test_same_idempotency_key_returns_the_first_result(client: TestClient, login: Login) -> None:
    first = client.post(
        "/api/v1/appeals",
        json={"channel": "web", "text": STREET_LIGHT, "idempotency_key": "form-77"},
        headers=login("agent"),
    )
    again = client.post(
        "/api/v1/appeals",
        json={"channel": "web", "text": "完全不同的内容", "idempotency_key": "form-77"},
        headers=login("agent"),
    )
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["number"] == first.json()["number"]
    assert again.json()["state"] == first.json()["state"]


def test_department_sees_only_its_own_work_orders(
    client: TestClient, login: Login, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOTLINE_AUTO_DISPATCH_THRESHOLD", "0")
    runtime.get_settings.cache_clear()
    body = create(client, login)
    owner = body["suggestion"]["department_code"]
    own = client.get(
        f"/api/v1/work-orders/{body['number']}", headers=login(f"dept_{owner.lower()}")
    )
    assert own.status_code == 200
    other_code = next(code for code in all_department_codes() if code != owner)
    other = client.get(
        f"/api/v1/work-orders/{body['number']}", headers=login(f"dept_{other_code.lower()}")
    )
    missing = client.get("/api/v1/work-orders/20200101-0000000", headers=login("agent"))
    assert other.status_code == missing.status_code == 404
    assert other.json()["error"] == missing.json()["error"] == "NotFound"


def all_department_codes() -> list[str]:
    from sqlalchemy import select

    from router.catalogue.models import Department

    with runtime.get_database().session() as db_session:
        return list(db_session.scalars(select(Department.code).order_by(Department.code)))


def test_appeal_without_a_model_is_kept_and_routed_later(
    client: TestClient, login: Login, monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    from datetime import timedelta

    from service import intake
    from service.config import get_settings

    demo_model = get_settings().model_dir
    monkeypatch.setenv("HOTLINE_MODEL_DIR", str(tmp_path))
    runtime.get_settings.cache_clear()
    body = create(client, login)
    assert (body["state"], body["next"], body["suggestion"]) == (
        "received",
        "awaiting_triage",
        None,
    )

    monkeypatch.setenv("HOTLINE_MODEL_DIR", str(demo_model))
    runtime.get_settings.cache_clear()
    with runtime.get_database().session() as db_session:
        routed = intake.triage_pending(
            db_session=db_session, settings=get_settings(), older_than=timedelta(0)
        )
    assert routed == 1
    read = client.get(f"/api/v1/work-orders/{body['number']}", headers=login("agent")).json()
    assert read["state"] in ("dispatched", "review")


def test_readyz_is_green_with_a_model(client: TestClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ready"
