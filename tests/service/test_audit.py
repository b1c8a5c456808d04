from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from router.catalogue.models import Department
from router.workorders.workflow import Role
from service import runtime
from service.api.app import create_app
from service.auth import audit
from service.auth import service as auth_service
from service.auth.models import AuditEntry
from service.auth.security import SYSTEM_ACTOR, Actor, hash_password

PASSWORD = "correct-horse-battery"
T0 = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)


@cache
def password_hash() -> str:
    return hash_password(PASSWORD)


def add_user(username: str, role: Role, department_code: str | None = None) -> None:
    with runtime.get_database().session() as db_session:
        auth_service.create_user(
            db_session=db_session,
            actor=SYSTEM_ACTOR,
            username=username,
            password=PASSWORD,
            password_hash=password_hash(),
            role=role.value,
            department_code=department_code,
        )


def sign_in(client: TestClient, username: str) -> dict[str, str]:
    response = client.post("/api/v1/auth/token", data={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def entries(**filters: object) -> list[AuditEntry]:
    with runtime.get_database().session() as db_session:
        query = select(AuditEntry).filter_by(**filters).order_by(AuditEntry.id)
        return list(db_session.scalars(query))


@pytest.fixture
def client(app_env: str) -> TestClient:
    with runtime.get_database().session() as db_session:
        db_session.add(Department(code="D1", name="住建局", kind="city"))
    add_user("agent1", Role.AGENT)
    add_user("boss", Role.SUPERVISOR)
    add_user("root", Role.ADMIN)
    add_user("housing1", Role.DEPARTMENT, "D1")
    return TestClient(create_app())


def test_a_successful_login_is_audited_with_actor_role_and_address(client: TestClient) -> None:
    sign_in(client, "housing1")
    (entry,) = entries(action="auth.login")
    assert (entry.actor, entry.role, entry.target_type) == ("housing1", "department", "user")
    assert entry.remote_addr == "testclient"


def test_a_failed_login_is_audited_although_the_request_fails(client: TestClient) -> None:
    response = client.post("/api/v1/auth/token", data={"username": "agent1", "password": "nope"})
    assert response.status_code == 401
    client.post("/api/v1/auth/token", data={"username": "nobody", "password": "nope"})
    failures = entries(action="auth.login_failed")
    assert [(e.actor, e.role, e.detail) for e in failures] == [
        ("agent1", "anonymous", {"reason": "bad_password"}),
        ("nobody", "anonymous", {"reason": "unknown_user"}),
    ]


def test_account_and_key_changes_are_audited_with_the_admin_and_no_secret(
    client: TestClient,
) -> None:
    admin = sign_in(client, "root")
    user = client.post(
        "/api/v1/users",
        json={"username": "new1", "password": "new-password-1", "role": "agent"},
        headers=admin,
    ).json()
    client.patch(
        f"/api/v1/users/{user['id']}", json={"password": "changed-password"}, headers=admin
    )
    key = client.post("/api/v1/departments/D1/api-keys", json={"name": "sys"}, headers=admin).json()
    client.delete(f"/api/v1/api-keys/{key['id']}", headers=admin)

    changes = [e for e in entries(actor="root") if e.action != "auth.login"]
    assert [(e.action, e.target_type, e.target_id) for e in changes] == [
        ("user.create", "user", str(user["id"])),
        ("user.update", "user", str(user["id"])),
        ("api_key.create", "api_key", str(key["id"])),
        ("api_key.revoke", "api_key", str(key["id"])),
    ]
    assert all(e.role == "admin" for e in changes)
    assert changes[1].detail == {"username": "new1", "password": "changed"}
    logged = " ".join(str(e.detail) for e in entries())
    for secret in (key["key"], "new-password-1", "changed-password", PASSWORD):
        assert secret not in logged


def test_logout_is_audited(client: TestClient) -> None:
    headers = sign_in(client, "agent1")
    client.post("/api/v1/auth/logout", headers=headers)
    assert [e.actor for e in entries(action="auth.logout")] == ["agent1"]


@pytest.fixture
def history(app_env: str) -> None:
    alice = Actor(username="alice", role="agent", remote_addr="10.0.0.1")
    bob = Actor(username="bob", role="supervisor")
    with runtime.get_database().session() as db_session:
        for minutes, actor, action in [
            (0, alice, "work_order.dispatch"),
            (10, bob, "work_order.escalate"),
            (20, alice, "user.create"),
            (30, bob, "user.update"),
        ]:
            audit.record(
                db_session=db_session,
                actor=actor,
                action=action,
                target_type="work_order",
                target_id=minutes,
                detail={"minutes": minutes},
                at=T0 + timedelta(minutes=minutes),
            )


def test_record_stores_who_did_what_to_what_from_where(history: None) -> None:
    first = entries(actor="alice")[0]
    assert (first.actor, first.role, first.action) == ("alice", "agent", "work_order.dispatch")
    assert (first.target_type, first.target_id, first.detail) == ("work_order", "0", {"minutes": 0})
    assert first.remote_addr == "10.0.0.1"
    assert first.at == T0


@pytest.mark.parametrize(
    ("filters", "minutes"),
    [
        ({}, [30, 20, 10, 0]),
        ({"actor": "alice"}, [20, 0]),
        ({"action": "user.create"}, [20]),
        ({"action": "work_order."}, [10, 0]),
        ({"target_id": "10"}, [10]),
        ({"since": T0 + timedelta(minutes=10)}, [30, 20, 10]),
        ({"until": T0 + timedelta(minutes=10)}, [0]),
        ({"actor": "bob", "since": T0, "until": T0 + timedelta(minutes=30)}, [10]),
    ],
    ids=["all", "actor", "action", "action-family", "target", "since", "until", "combined"],
)
def test_search_filters_and_orders_newest_first(
    history: None, filters: dict[str, object], minutes: list[int]
) -> None:
    with runtime.get_database().session() as db_session:
        found, total = audit.search(db_session=db_session, **filters)  # type: ignore[arg-type]
    assert [entry.detail["minutes"] for entry in found] == minutes
    assert total == len(minutes)


def test_search_pages_with_the_total_of_all_matches(history: None) -> None:
    with runtime.get_database().session() as db_session:
        found, total = audit.search(db_session=db_session, limit=2, offset=1)
    assert [entry.detail["minutes"] for entry in found] == [20, 10]
    assert total == 4


def test_supervisors_read_the_audit_log_over_http(client: TestClient) -> None:
    sign_in(client, "agent1")
    headers = sign_in(client, "boss")
    since = (T0 - timedelta(days=3650)).isoformat()
    response = client.get(
        "/api/v1/audit", params={"action": "auth.login", "since": since}, headers=headers
    )
    assert response.status_code == 200
    body = response.json()
    assert [item["actor"] for item in body["items"]] == ["boss", "agent1"]
    assert body["total"] == 2
    assert set(body["items"][0]) == {
        "id",
        "at",
        "actor",
        "role",
        "action",
        "target_type",
        "target_id",
        "detail",
        "remote_addr",
    }


@pytest.mark.parametrize("username", ["agent1", "housing1"])
def test_agents_and_departments_cannot_read_the_audit_log(
    client: TestClient, username: str
) -> None:
    response = client.get("/api/v1/audit", headers=sign_in(client, username))
    assert response.status_code == 403


@pytest.mark.parametrize(
    "params",
    [{"since": "2026-11-02T01:00:00"}, {"since": "yesterday"}, {"limit": "0"}, {"offset": "-1"}],
    ids=["naive-time", "not-a-time", "zero-limit", "negative-offset"],
)
def test_bad_audit_filters_are_validation_errors(
    client: TestClient, params: dict[str, str]
) -> None:
    response = client.get("/api/v1/audit", params=params, headers=sign_in(client, "boss"))
    assert response.status_code == 422
    assert response.json()["error"] == "ValidationError"
