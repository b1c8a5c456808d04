from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Annotated

import jwt
import pytest
from fastapi import APIRouter, Depends, FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from router.catalogue.models import Department
from router.workorders import queries
from router.workorders import service as workorders
from router.workorders.models import WorkOrder
from router.workorders.workflow import Role
from service import runtime
from service.api.app import create_app
from service.api.deps import DbSession
from service.api.security import CurrentActor, DepartmentScope, department_scope, require_roles
from service.auth import service as auth_service
from service.auth.models import ApiKey, User
from service.auth.security import (
    SYSTEM_ACTOR,
    Actor,
    create_access_token,
    hash_password,
)

PASSWORD = "correct-horse-battery"
SECRET = "test-secret-key-not-for-production"  # tests/conftest.py sets HOTLINE_SECRET_KEY


@cache
def password_hash() -> str:
    # argon2 is slow on purpose; hash the shared test password once per run.
    return hash_password(PASSWORD)


def add_departments(*codes: str) -> None:
    with runtime.get_database().session() as db_session:
        db_session.add_all(Department(code=code, name=f"{code}局", kind="city") for code in codes)


def add_user(
    username: str, role: Role, department_code: str | None = None, *, active: bool = True
) -> None:
    with runtime.get_database().session() as db_session:
        user = auth_service.create_user(
            db_session=db_session,
            actor=SYSTEM_ACTOR,
            username=username,
            password=PASSWORD,
            password_hash=password_hash(),
            role=role.value,
            department_code=department_code,
        )
        user.active = active


def sign_in(client: TestClient, username: str, password: str = PASSWORD) -> str:
    response = client.post("/api/v1/auth/token", data={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def client(app_env: str) -> TestClient:
    add_departments("D1", "D2")
    add_user("agent1", Role.AGENT)
    add_user("boss", Role.SUPERVISOR)
    add_user("root", Role.ADMIN)
    add_user("housing1", Role.DEPARTMENT, "D1")
    add_user("transport1", Role.DEPARTMENT, "D2")
    return TestClient(create_app())


@pytest.fixture
def admin_headers(client: TestClient) -> dict[str, str]:
    return bearer(sign_in(client, "root"))


# --- sign-in ------------------------------------------------------------------------------


def test_password_login_returns_a_bearer_token_that_identifies_the_user(
    client: TestClient,
) -> None:
    response = client.post(
        "/api/v1/auth/token", data={"username": "housing1", "password": PASSWORD}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 480 * 60
    me = client.get("/api/v1/auth/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200
    assert me.json() == {
        "username": "housing1",
        "role": "department",
        "department_code": "D1",
        "kind": "user",
        "display_name": "",
    }


def test_token_carries_subject_role_department_and_lifetime(client: TestClient) -> None:
    claims = jwt.decode(sign_in(client, "housing1"), options={"verify_signature": False})
    assert claims["sub"] == "housing1"
    assert claims["role"] == "department"
    assert claims["dept"] == "D1"
    assert claims["exp"] - claims["iat"] == 480 * 60


def test_usernames_are_case_insensitive(client: TestClient) -> None:
    assert sign_in(client, "  Agent1 ")


def test_login_records_the_time_of_the_last_login(client: TestClient) -> None:
    sign_in(client, "agent1")
    with runtime.get_database().session() as db_session:
        user = db_session.scalars(select(User).where(User.username == "agent1")).one()
        assert user.last_login_at is not None


@pytest.mark.parametrize(
    ("username", "password"),
    [("agent1", "wrong-password"), ("nobody", PASSWORD), ("ghost", PASSWORD), ("x" * 500, "p")],
    ids=["wrong-password", "unknown-user", "deactivated", "absurd-username"],
)
def test_bad_credentials_are_one_indistinguishable_401(
    client: TestClient, username: str, password: str
) -> None:
    add_user("ghost", Role.AGENT, active=False)
    response = client.post("/api/v1/auth/token", data={"username": username, "password": password})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json() == {
        "error": "Unauthorized",
        "detail": "用户名或密码错误",
        "code": "UNAUTHORIZED",
        "message": "未登录或登录已失效，请重新登录",
    }


def test_an_oversized_password_is_refused_without_hashing_it(client: TestClient) -> None:
    # Past the sign-in body limit the request is refused before it is read (413); below it, a
    # password longer than any real one is refused before it is hashed (401).
    response = client.post(
        "/api/v1/auth/token", data={"username": "agent1", "password": "p" * 100_000}
    )
    assert response.status_code == 413
    assert response.json()["error"] == "PayloadTooLarge"
    response = client.post(
        "/api/v1/auth/token", data={"username": "agent1", "password": "p" * 5_000}
    )
    assert response.status_code == 401


def test_missing_form_fields_are_a_validation_error(client: TestClient) -> None:
    response = client.post("/api/v1/auth/token", data={"username": "agent1"})
    assert response.status_code == 422
    assert response.json()["error"] == "ValidationError"


# --- bearer tokens ------------------------------------------------------------------------


def test_no_credentials_is_a_401(client: TestClient) -> None:
    response = client.get("/api/v1/auth/me")
    assert response.status_code == 401
    assert response.json()["error"] == "Unauthorized"


def _token(**overrides: object) -> str:
    now = datetime.now(UTC)
    claims: dict[str, object] = {
        "sub": "agent1",
        "role": "agent",
        "dept": None,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=5)).timestamp()),
        "jti": "a" * 32,
    }
    claims.update(overrides)
    from service.auth.security import _signing_key

    return jwt.encode(
        {k: v for k, v in claims.items() if v is not ...}, _signing_key(SECRET), algorithm="HS256"
    )


BAD_TOKENS = {
    "garbage": "not-a-token",
    "empty": "",
    "three-dots": "a.b.c",
    "expired": _token(exp=int((datetime.now(UTC) - timedelta(minutes=1)).timestamp())),
    "other-key": create_access_token(
        username="agent1",
        role="agent",
        department_code=None,
        secret_key="some-other-secret",
        ttl=timedelta(minutes=5),
    ),
    "alg-none": jwt.encode({"sub": "agent1", "role": "agent"}, None, algorithm="none"),
    "no-exp": _token(exp=...),
    "sub-not-a-string": _token(sub=42),
    "role-not-a-string": _token(role=["admin"]),
    "dept-not-a-string": _token(dept=7),
    "unknown-user": _token(sub="nobody"),
    "no-session": _token(jti="0" * 32),  # well signed, but never issued: no sign-in session
    "no-jti": _token(jti=...),
}


@pytest.mark.parametrize("token", BAD_TOKENS.values(), ids=BAD_TOKENS.keys())
def test_every_unusable_token_is_a_401_never_a_500(client: TestClient, token: str) -> None:
    response = client.get("/api/v1/auth/me", headers=bearer(token))
    assert response.status_code == 401
    assert response.json()["error"] == "Unauthorized"


def test_a_non_bearer_authorization_header_is_not_accepted(client: TestClient) -> None:
    response = client.get("/api/v1/auth/me", headers={"Authorization": "Basic YWdlbnQxOng="})
    assert response.status_code == 401


def test_a_deactivated_users_token_stops_working(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    token = sign_in(client, "agent1")
    assert client.get("/api/v1/auth/me", headers=bearer(token)).status_code == 200
    user_id = _user_id("agent1")
    response = client.patch(
        f"/api/v1/users/{user_id}", json={"active": False}, headers=admin_headers
    )
    assert response.status_code == 200
    assert response.json()["active"] is False
    assert client.get("/api/v1/auth/me", headers=bearer(token)).status_code == 401


def test_the_role_comes_from_the_account_not_from_an_old_token(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    token = sign_in(client, "agent1")
    client.patch(
        f"/api/v1/users/{_user_id('agent1')}",
        json={"role": "department", "department_code": "D2"},
        headers=admin_headers,
    )
    me = client.get("/api/v1/auth/me", headers=bearer(token)).json()
    assert (me["role"], me["department_code"]) == ("department", "D2")


def _user_id(username: str) -> int:
    with runtime.get_database().session() as db_session:
        return db_session.scalars(select(User.id).where(User.username == username)).one()


# --- session cookie -----------------------------------------------------------------------


@pytest.fixture
def browser(client: TestClient) -> TestClient:
    # Outside development the cookie is Secure, so the browser must be on HTTPS. A browser sends
    # its page's origin with every POST; the service refuses cookie-authenticated ones without.
    return TestClient(
        client.app, base_url="https://testserver", headers={"Origin": "https://testserver"}
    )


def test_login_sets_an_httponly_session_cookie_that_the_pages_use(browser: TestClient) -> None:
    response = browser.post("/api/v1/auth/login", data={"username": "boss", "password": PASSWORD})
    assert response.status_code == 200
    assert response.json()["token_type"] == "bearer"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("hotline_session=")
    assert "HttpOnly" in cookie
    assert "samesite=lax" in cookie.lower()
    assert "Secure" in cookie
    assert browser.get("/api/v1/auth/me").json()["username"] == "boss"


def test_login_with_bad_credentials_sets_no_cookie(browser: TestClient) -> None:
    response = browser.post("/api/v1/auth/login", data={"username": "boss", "password": "nope"})
    assert response.status_code == 401
    assert "set-cookie" not in response.headers


def test_logout_clears_the_session_cookie(browser: TestClient) -> None:
    browser.post("/api/v1/auth/login", data={"username": "boss", "password": PASSWORD})
    response = browser.post("/api/v1/auth/logout")
    assert response.status_code == 204
    assert "hotline_session=" in response.headers["set-cookie"]
    assert "Max-Age=0" in response.headers["set-cookie"]
    assert browser.get("/api/v1/auth/me").status_code == 401


def test_logout_succeeds_with_a_stale_cookie(browser: TestClient) -> None:
    browser.cookies.set("hotline_session", "expired-or-forged")
    assert browser.post("/api/v1/auth/logout").status_code == 204


# --- roles --------------------------------------------------------------------------------


@pytest.mark.parametrize("username", ["agent1", "boss", "housing1"])
def test_non_admins_are_forbidden_the_account_endpoints(client: TestClient, username: str) -> None:
    response = client.get("/api/v1/users", headers=bearer(sign_in(client, username)))
    assert response.status_code == 403
    assert response.json()["error"] == "Forbidden"


def test_require_roles_needs_at_least_one_role() -> None:
    with pytest.raises(ValueError):
        require_roles()


# --- accounts -----------------------------------------------------------------------------


def test_admin_creates_a_department_user_who_can_sign_in(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    response = client.post(
        "/api/v1/users",
        json={
            "username": "Li.Wei",
            "password": "another-password",
            "role": "department",
            "department_code": "D2",
            "display_name": "李伟",
        },
        headers=admin_headers,
    )
    assert response.status_code == 201
    body = response.json()
    assert (body["username"], body["role"], body["department_code"]) == (
        "li.wei",
        "department",
        "D2",
    )
    assert "password" not in body and "password_hash" not in body
    assert sign_in(client, "li.wei", "another-password")


def test_passwords_are_stored_as_argon2_hashes(client: TestClient) -> None:
    with runtime.get_database().session() as db_session:
        stored = db_session.scalars(select(User.password_hash)).all()
    assert stored and all(value.startswith("$argon2id$") for value in stored)
    assert not any(PASSWORD in value for value in stored)


@pytest.mark.parametrize(
    ("payload", "status", "error"),
    [
        ({"username": "agent1", "role": "agent"}, 409, "Conflict"),
        ({"username": "AGENT1", "role": "agent"}, 409, "Conflict"),
        ({"username": "new", "role": "department"}, 400, "InvalidInput"),
        ({"username": "new", "role": "department", "department_code": "NOPE"}, 400, "InvalidInput"),
        ({"username": "new", "role": "agent", "department_code": "D1"}, 400, "InvalidInput"),
        ({"username": "new", "role": "superuser"}, 422, "ValidationError"),
        ({"username": "new", "role": "agent", "password": "short"}, 422, "ValidationError"),
        ({"username": "has space", "role": "agent"}, 400, "InvalidInput"),
    ],
    ids=[
        "duplicate",
        "duplicate-other-case",
        "department-missing",
        "department-unknown",
        "department-on-agent",
        "unknown-role",
        "short-password",
        "bad-username",
    ],
)
def test_invalid_accounts_are_refused_with_a_4xx(
    client: TestClient,
    admin_headers: dict[str, str],
    payload: dict[str, str],
    status: int,
    error: str,
) -> None:
    response = client.post(
        "/api/v1/users", json={"password": "long-enough-1", **payload}, headers=admin_headers
    )
    assert response.status_code == status, response.text
    assert response.json()["error"] == error


def test_admin_lists_users_filtered_by_department(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    response = client.get("/api/v1/users?role=department&department_code=D1", headers=admin_headers)
    assert response.status_code == 200
    assert response.json()["total"] == 1
    assert [u["username"] for u in response.json()["items"]] == ["housing1"]


def test_admin_cannot_lock_themselves_out(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    response = client.patch(
        f"/api/v1/users/{_user_id('root')}", json={"active": False}, headers=admin_headers
    )
    assert response.status_code == 400


def test_unknown_user_is_a_404(client: TestClient, admin_headers: dict[str, str]) -> None:
    response = client.patch("/api/v1/users/999999", json={"active": False}, headers=admin_headers)
    assert response.status_code == 404


# --- API keys -----------------------------------------------------------------------------


def test_a_department_system_authenticates_with_its_api_key(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    response = client.post(
        "/api/v1/departments/D1/api-keys", json={"name": "工单系统"}, headers=admin_headers
    )
    assert response.status_code == 201
    created = response.json()
    secret = created["key"]
    assert created["prefix"] == secret[:8]
    me = client.get("/api/v1/auth/me", headers={"X-API-Key": secret})
    assert me.status_code == 200
    assert me.json() == {
        "username": f"api_key:{secret[:8]}",
        "role": "department",
        "department_code": "D1",
        "kind": "api_key",
        "display_name": "工单系统",
    }
    listed = client.get("/api/v1/api-keys?department_code=D1", headers=admin_headers).json()
    assert [item["id"] for item in listed["items"]] == [created["id"]]
    assert all("key" not in item for item in listed["items"])
    assert listed["items"][0]["last_used_at"] is not None


def test_only_the_hash_of_an_api_key_is_stored(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    secret = client.post(
        "/api/v1/departments/D1/api-keys", json={"name": "sys"}, headers=admin_headers
    ).json()["key"]
    with runtime.get_database().session() as db_session:
        key = db_session.scalars(select(ApiKey)).one()
        stored = [str(getattr(key, column.key)) for column in ApiKey.__table__.columns]
    assert not any(secret in value for value in stored)
    assert len(key.key_hash) == 64


def test_a_revoked_api_key_stops_working(client: TestClient, admin_headers: dict[str, str]) -> None:
    created = client.post(
        "/api/v1/departments/D2/api-keys", json={"name": "sys"}, headers=admin_headers
    ).json()
    assert (
        client.delete(f"/api/v1/api-keys/{created['id']}", headers=admin_headers).status_code == 204
    )
    assert (
        client.delete(f"/api/v1/api-keys/{created['id']}", headers=admin_headers).status_code == 204
    )
    response = client.get("/api/v1/auth/me", headers={"X-API-Key": created["key"]})
    assert response.status_code == 401
    assert response.json()["error"] == "Unauthorized"


@pytest.mark.parametrize("secret", ["", "short", "hk_" + "x" * 43, "y" * 10_000])
def test_an_unknown_api_key_is_a_401(client: TestClient, secret: str) -> None:
    response = client.get("/api/v1/auth/me", headers={"X-API-Key": secret})
    assert response.status_code == 401


def test_api_keys_cannot_use_the_admin_endpoints(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    secret = client.post(
        "/api/v1/departments/D1/api-keys", json={"name": "sys"}, headers=admin_headers
    ).json()["key"]
    response = client.get("/api/v1/users", headers={"X-API-Key": secret})
    assert response.status_code == 403


def test_an_api_key_for_an_unknown_department_is_a_404(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    response = client.post(
        "/api/v1/departments/NOPE/api-keys", json={"name": "sys"}, headers=admin_headers
    )
    assert response.status_code == 404
    assert client.delete("/api/v1/api-keys/424242", headers=admin_headers).status_code == 404


# --- department isolation -----------------------------------------------------------------


def _orders_router() -> APIRouter:
    """A stand-in for the work-order endpoints, scoped the way they will be."""
    test_router = APIRouter()

    @test_router.get("/test/orders")
    def list_orders(db_session: DbSession, scope: DepartmentScope) -> list[str]:
        query = select(WorkOrder.number).order_by(WorkOrder.number)
        if scope is not None:
            query = query.where(WorkOrder.department_code == scope)
        return list(db_session.scalars(query))

    @test_router.get("/test/orders/{number}")
    def get_order(number: str, db_session: DbSession, actor: CurrentActor) -> dict[str, str]:
        order = queries.get_by_number_or_raise(
            db_session=db_session, number=number, department_code=department_scope(actor)
        )
        return {"number": order.number}

    @test_router.get("/test/supervisors-only")
    def supervisors_only(
        actor: Annotated[Actor, Depends(require_roles(Role.SUPERVISOR, Role.ADMIN))],
    ) -> dict[str, str]:
        return {"username": actor.username}

    return test_router


@pytest.fixture
def orders(client: TestClient) -> dict[str, str]:
    numbers = {}
    with runtime.get_database().session() as db_session:
        for code in ("D1", "D2"):
            order, _ = workorders.receive_appeal(
                db_session=db_session,
                appeal=workorders.AppealInput(channel="web", text=f"{code} 的诉求"),
            )
            order.department_code = code
            numbers[code] = order.number
    app: FastAPI = client.app  # type: ignore[assignment]
    app.include_router(_orders_router())
    return numbers


def test_a_department_sees_only_its_own_orders(client: TestClient, orders: dict[str, str]) -> None:
    housing = bearer(sign_in(client, "housing1"))
    assert client.get("/test/orders", headers=housing).json() == [orders["D1"]]
    agent = bearer(sign_in(client, "agent1"))
    assert client.get("/test/orders", headers=agent).json() == sorted(orders.values())


def test_another_departments_order_is_a_404_like_a_missing_one(
    client: TestClient, orders: dict[str, str]
) -> None:
    housing = bearer(sign_in(client, "housing1"))
    assert client.get(f"/test/orders/{orders['D1']}", headers=housing).status_code == 200
    foreign = client.get(f"/test/orders/{orders['D2']}", headers=housing)
    missing = client.get("/test/orders/20990101-9999999", headers=housing)
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json()["error"] == missing.json()["error"] == "NotFound"
    assert orders["D2"] in foreign.json()["detail"]  # names only what the caller asked for


def test_a_department_api_key_is_scoped_like_its_users(
    client: TestClient, orders: dict[str, str], admin_headers: dict[str, str]
) -> None:
    secret = client.post(
        "/api/v1/departments/D2/api-keys", json={"name": "sys"}, headers=admin_headers
    ).json()["key"]
    headers = {"X-API-Key": secret}
    assert client.get("/test/orders", headers=headers).json() == [orders["D2"]]
    assert client.get(f"/test/orders/{orders['D1']}", headers=headers).status_code == 404


def test_require_roles_admits_only_the_listed_roles(
    client: TestClient, orders: dict[str, str]
) -> None:
    assert client.get("/test/supervisors-only", headers=bearer(sign_in(client, "boss"))).json() == {
        "username": "boss"
    }
    response = client.get("/test/supervisors-only", headers=bearer(sign_in(client, "agent1")))
    assert response.status_code == 403


def test_department_scope_is_none_for_centre_roles() -> None:
    for role in ("agent", "supervisor", "admin", "system"):
        assert department_scope(Actor(username="x", role=role)) is None
    assert department_scope(Actor(username="x", role="department", department_code="D1")) == "D1"


def test_a_department_actor_without_a_department_is_never_widened_to_all() -> None:
    from router.errors import Forbidden

    with pytest.raises(Forbidden):
        department_scope(Actor(username="x", role="department"))


# --- demo accounts ------------------------------------------------------------------------


def _seed(db_session: Session) -> list[str]:
    return auth_service.seed_demo_accounts(
        db_session=db_session, password="demo-password", department_codes=["D1", "D2"]
    )


def test_demo_accounts_are_seeded_once_per_role_and_department(app_env: str) -> None:
    add_departments("D1", "D2")
    with runtime.get_database().session() as db_session:
        created = _seed(db_session)
    assert created == ["agent", "supervisor", "admin", "dept_d1", "dept_d2"]
    with runtime.get_database().session() as db_session:
        assert _seed(db_session) == []
        users = {u.username: u for u in db_session.scalars(select(User))}
    assert {name: users[name].role for name in created} == {
        "agent": "agent",
        "supervisor": "supervisor",
        "admin": "admin",
        "dept_d1": "department",
        "dept_d2": "department",
    }
    assert users["dept_d1"].department_code == "D1"
    assert users["dept_d1"].display_name == "D1局"
    client = TestClient(create_app())
    for name in created:
        assert sign_in(client, name, "demo-password")


def test_demo_seeding_refuses_an_unknown_department(app_env: str) -> None:
    from router.errors import InvalidInput

    with runtime.get_database().session() as db_session, pytest.raises(InvalidInput):
        auth_service.seed_demo_accounts(
            db_session=db_session, password="demo-password", department_codes=["NOPE"]
        )


# --- sign-in throttling -------------------------------------------------------------------


def _token_status(client: TestClient, username: str, password: str) -> int:
    response = client.post("/api/v1/auth/token", data={"username": username, "password": password})
    return response.status_code


def test_failed_sign_ins_lock_the_account_and_the_address_in_every_process(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service.auth import audit

    monkeypatch.setenv("HOTLINE_LOGIN_MAX_FAILURES_PER_ACCOUNT", "3")
    monkeypatch.setenv("HOTLINE_LOGIN_MAX_FAILURES_PER_ADDRESS", "5")
    runtime.get_settings.cache_clear()
    assert [_token_status(client, "root", f"guess-{i}") for i in range(3)] == [401] * 3
    locked = client.post("/api/v1/auth/token", data={"username": "root", "password": PASSWORD})
    assert locked.status_code == 429, "even the right password, once the account is locked"
    assert locked.json()["error"] == "TooManyRequests"
    assert 1 <= int(locked.headers["Retry-After"]) <= 1350
    # another API process, another address: the account stays locked (one shared store)
    elsewhere = TestClient(create_app(), client=("198.51.100.20", 50000))
    assert _token_status(elsewhere, "ROOT", PASSWORD) == 429
    # the address: two more failures on other accounts reach its limit of five
    assert [_token_status(client, "agent1", "x-guess"), _token_status(client, "nobody", "y")] == [
        401,
        401,
    ]
    assert _token_status(client, "boss", PASSWORD) == 429, "the address is locked for everyone"
    assert _token_status(client, "root", PASSWORD) == 429
    assert _token_status(elsewhere, "boss", PASSWORD) == 200, "not another address"
    with runtime.get_database().session() as db_session:
        _, failed = audit.search(db_session=db_session, action="auth.login_failed")
        throttled, _ = audit.search(db_session=db_session, action="auth.login_throttled")
    assert failed == 5, "a throttled attempt never reaches the password check"
    assert {tuple(entry.detail["limits"]) for entry in throttled} == {
        ("login.account",),
        ("login.account", "login.address"),
        ("login.address",),
    }


def test_a_successful_sign_in_clears_the_accounts_failures(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOTLINE_LOGIN_MAX_FAILURES_PER_ACCOUNT", "3")
    runtime.get_settings.cache_clear()
    assert [_token_status(client, "boss", "wrong") for _ in range(2)] == [401, 401]
    assert _token_status(client, "boss", PASSWORD) == 200
    assert [_token_status(client, "boss", "wrong") for _ in range(3)] == [401, 401, 401]
    assert _token_status(client, "boss", PASSWORD) == 429


# --- sessions: revocation and cross-site requests ------------------------------------------


def test_logout_revokes_a_bearer_token_at_once_in_every_process(client: TestClient) -> None:
    token = sign_in(client, "boss")
    other_process = TestClient(create_app())
    assert other_process.get("/api/v1/auth/me", headers=bearer(token)).status_code == 200
    assert client.post("/api/v1/auth/logout", headers=bearer(token)).status_code == 204
    refused = other_process.get("/api/v1/auth/me", headers=bearer(token))
    assert refused.status_code == 401 and refused.json()["error"] == "Unauthorized"
    assert client.get("/api/v1/auth/me", headers=bearer(sign_in(client, "boss"))).status_code == 200


def test_logout_revokes_the_session_cookie_even_if_the_browser_keeps_it(
    browser: TestClient,
) -> None:
    browser.post("/api/v1/auth/login", data={"username": "boss", "password": PASSWORD})
    stolen = browser.cookies["hotline_session"]
    assert browser.post("/api/v1/auth/logout").status_code == 204
    browser.cookies.set("hotline_session", stolen)
    assert browser.get("/api/v1/auth/me").status_code == 401
    assert browser.get("/api/v1/auth/me", headers=bearer(stolen)).status_code == 401


NEW_USER = {"username": "csrf-victim", "password": "long-enough-1", "role": "agent"}


def test_cookie_authenticated_changes_must_come_from_the_services_own_pages(
    browser: TestClient,
) -> None:
    browser.post("/api/v1/auth/login", data={"username": "root", "password": PASSWORD})
    for headers in (
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Origin": "", "Referer": "https://evil.example/page"},
        {"Origin": ""},  # neither header: refused as well
    ):
        refused = browser.post("/api/v1/users", json=NEW_USER, headers=headers)
        assert refused.status_code == 403, headers
        assert refused.json()["error"] == "CrossSiteRequest"
    with runtime.get_database().session() as db_session:
        assert auth_service.get_user(db_session=db_session, username="csrf-victim") is None
    from_referer = browser.post(
        "/api/v1/users", json=NEW_USER, headers={"Origin": "", "Referer": "https://testserver/x"}
    )
    assert from_referer.status_code == 201, from_referer.text
    assert (
        browser.get("/api/v1/auth/me", headers={"Origin": "https://evil.example"}).status_code
        == 200
    )


def test_bearer_and_api_key_clients_are_not_subject_to_the_origin_check(
    client: TestClient,
) -> None:
    token = sign_in(client, "root")
    headers = bearer(token) | {"Origin": "https://elsewhere.example"}
    created = client.post("/api/v1/users", json=NEW_USER, headers=headers)
    assert created.status_code == 201, created.text


def test_allowed_origins_may_send_cookie_authenticated_requests(
    browser: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOTLINE_ALLOWED_ORIGINS", "https://hotline.example.gov.cn")
    runtime.get_settings.cache_clear()
    browser.post("/api/v1/auth/login", data={"username": "root", "password": PASSWORD})
    answer = browser.post(
        "/api/v1/users", json=NEW_USER, headers={"Origin": "https://hotline.example.gov.cn"}
    )
    assert answer.status_code == 201, answer.text


def test_another_site_cannot_sign_a_browser_in(browser: TestClient) -> None:
    """Login CSRF: the attacker's account in the victim's browser."""
    response = browser.post(
        "/api/v1/auth/login",
        data={"username": "boss", "password": PASSWORD},
        headers={"Origin": "https://evil.example"},
    )
    assert response.status_code == 403 and response.json()["error"] == "CrossSiteRequest"
    assert "set-cookie" not in response.headers
    assert browser.get("/api/v1/auth/me").status_code == 401


def test_a_new_password_signs_every_session_of_the_user_out(client: TestClient) -> None:
    token = sign_in(client, "boss")
    admin = bearer(sign_in(client, "root"))
    user_id = _user_id("boss")
    changed = client.patch(
        f"/api/v1/users/{user_id}", json={"password": "another-password-1"}, headers=admin
    )
    assert changed.status_code == 200, changed.text
    assert client.get("/api/v1/auth/me", headers=bearer(token)).status_code == 401
    assert client.get("/api/v1/auth/me", headers=admin).status_code == 200
