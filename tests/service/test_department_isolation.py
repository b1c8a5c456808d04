"""Department isolation, proved for every route the application has (read from `app.routes`, so
an endpoint added later is covered without touching this file).

* Every route with a work-order `{number}` in its path answers a department user exactly as for
  a number that does not exist (404 where departments may act at all, the role's 403 otherwise),
  and leaves the other department's order untouched.
* Every other `/api/v1` route refuses a department user (401/403) unless it is listed in
  `DEPARTMENT_ROUTES` with the reason departments need it; what those routes and the pages
  answer never mentions another department's order.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import select

from service import runtime

Login = Callable[[str], dict[str, str]]

TEXT = "小区门口的路灯坏了半个多月，晚上一片漆黑，老人小孩出门很不安全，请尽快派人维修。"
MISSING = "20200101-0000000"
SKIPPED_METHODS = {"HEAD", "OPTIONS"}

DEPARTMENT_ROUTES = {
    ("POST", "/api/v1/auth/token"): "sign in",
    ("POST", "/api/v1/auth/login"): "sign in (pages)",
    ("POST", "/api/v1/auth/logout"): "sign out",
    ("GET", "/api/v1/auth/me"): "who am I",
    ("GET", "/api/v1/work-orders"): "the department's inbox (scoped)",
    ("GET", "/api/v1/notifications"): "the department's notifications (scoped)",
    ("POST", "/api/v1/notifications/{notification_id}/read"): "mark its own notification read",
    ("GET", "/api/v1/reference/categories"): "public reference data",
    ("GET", "/api/v1/reference/departments"): "public reference data",
    ("POST", "/api/v1/knowledge/proposals"): (
        "propose a knowledge article from the reply of its own closed order (scoped: another"
        " department's order is a 404)"
    ),
}
"""Routes under /api/v1 without a work-order number that a department user may reach."""

NOT_DEPARTMENT_FACING = ("/open311/",)
"""Citizen channels with their own access rules (Open311 lets citizens follow any request)."""

PATH_VALUES = {"fmt": "json", "phone": "13812345678", "code": "housing", "version": "v1"}


# -- requests built from the OpenAPI document ------------------------------------------------------


def _resolve(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def example(schema: dict[str, Any], components: dict[str, Any]) -> Any:
    """A small value valid for `schema` (required fields only)."""
    schema = _resolve(schema, components)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [s for s in schema[key] if _resolve(s, components).get("type") != "null"]
            return example(options[0], components)
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties", {})
        return {name: example(properties[name], components) for name in schema.get("required", [])}
    if kind == "array":
        return [example(schema.get("items", {}), components)] * schema.get("minItems", 0)
    if kind == "integer":
        return max(int(schema.get("minimum", 1)), 1)
    if kind == "number":
        return max(float(schema.get("minimum", 1)), 1.0)
    if kind == "boolean":
        return False
    if schema.get("format") == "date-time":
        return (datetime.now(UTC) + timedelta(days=30)).isoformat()
    if schema.get("format") == "date":
        return datetime.now(UTC).date().isoformat()
    if "pattern" in schema:
        return "13812345678"
    return "测试" * max(1, (int(schema.get("minLength", 1)) + 1) // 2)


def request(
    client: TestClient,
    openapi: dict[str, Any],
    method: str,
    path: str,
    token_headers: dict[str, str],
    number: str | None = None,
) -> httpx.Response:
    """Call `method path` with valid path values and body, as the signed-in user."""
    components = openapi.get("components", {}).get("schemas", {})
    operation = openapi["paths"].get(path, {}).get(method.lower(), {})
    types = {p["name"]: p.get("schema", {}) for p in operation.get("parameters", [])}

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "number":
            assert number is not None
            return number
        if name in PATH_VALUES:
            return PATH_VALUES[name]
        return str(example(types.get(name, {"type": "integer"}), components))

    url = re.sub(r"\{([a-z_]+)(?::[a-z]+)?\}", fill, path)
    query = {
        p["name"]: example(p.get("schema", {}), components)
        for p in operation.get("parameters", [])
        if p["in"] == "query" and p.get("required")
    }
    content = operation.get("requestBody", {}).get("content", {})
    token = token_headers["Authorization"].removeprefix("Bearer ")
    # The bearer token for the API, the same token as session cookie for the pages.
    headers = token_headers | {"Cookie": f"hotline_session={token}"}
    kwargs: dict[str, Any] = {"params": query, "headers": headers}
    if "application/json" in content:
        kwargs["json"] = example(content["application/json"]["schema"], components)
    elif "application/x-www-form-urlencoded" in content:
        kwargs["data"] = example(content["application/x-www-form-urlencoded"]["schema"], components)
    return client.request(method, url, **kwargs)


def routes(client: TestClient) -> list[tuple[str, str]]:
    found = []
    for route in iter_route_contexts(client.app.routes):  # type: ignore[attr-defined]
        for method in sorted(route.methods or ()):
            if method not in SKIPPED_METHODS and route.path:
                found.append((method, route.path))
    return found


# -- orders of two departments --------------------------------------------------------------------


def dispatched_order(client: TestClient, login: Login) -> dict[str, Any]:
    response = client.post(
        "/api/v1/appeals",
        json={"channel": "web", "text": TEXT, "caller_phone": "13812345678"},
        headers=login("agent"),
    )
    assert response.status_code == 201, response.text
    assert response.json()["state"] == "dispatched"
    return read(client, login, response.json()["number"])


def read(client: TestClient, login: Login, number: str) -> dict[str, Any]:
    response = client.get(f"/api/v1/work-orders/{number}", headers=login("supervisor"))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def another_departments_order(client: TestClient, login: Login, own: str) -> dict[str, Any]:
    from router.catalogue.models import Department

    order = dispatched_order(client, login)
    with runtime.get_database().session() as db_session:
        other = next(
            code
            for code in db_session.scalars(
                select(Department.code).where(Department.kind == "city").order_by(Department.code)
            )
            if code != own
        )
    moved = client.post(
        f"/api/v1/work-orders/{order['number']}/reassign",
        json={"department_code": other, "reason": "改派测试"},
        headers=login("supervisor"),
    )
    assert moved.status_code == 200, moved.text
    return read(client, login, order["number"])


def user_of(department_code: str) -> str:
    return f"dept_{department_code.lower()}"


@pytest.fixture
def setting(
    client: TestClient, login: Login, monkeypatch: pytest.MonkeyPatch
) -> tuple[str, dict[str, Any]]:
    """(department user, another department's order)."""
    monkeypatch.setenv("HOTLINE_AUTO_DISPATCH_THRESHOLD", "0")
    runtime.get_settings.cache_clear()
    own = dispatched_order(client, login)["department_code"]
    return user_of(own), another_departments_order(client, login, own)


# -- the tests ------------------------------------------------------------------------------------


def test_another_departments_order_is_a_404_on_every_work_order_route(
    client: TestClient, login: Login, setting: tuple[str, dict[str, Any]]
) -> None:
    user, other = setting
    openapi = client.get("/openapi.json").json()
    number_routes = [
        (method, path)
        for method, path in routes(client)
        if "{number}" in path and not path.startswith(NOT_DEPARTMENT_FACING)
    ]
    department_facing = set()
    for method, path in number_routes:
        seen = request(client, openapi, method, path, login(user), number=other["number"])
        missing = request(client, openapi, method, path, login(user), number=MISSING)
        label = f"{method} {path}"
        assert seen.status_code == missing.status_code, f"{label}: unlike a missing order"
        # The very same body too (the number the client sent aside).
        assert seen.text.replace(other["number"], "N") == missing.text.replace(MISSING, "N"), label
        assert seen.status_code in (403, 404), f"{label}: {seen.status_code} {seen.text[:200]}"

        own = dispatched_order(client, login)
        assert user_of(own["department_code"]) == user
        mine = request(client, openapi, method, path, login(user), number=own["number"])
        if mine.status_code in (401, 403):
            assert seen.status_code == mine.status_code, label  # a role refusal, nothing more
        else:
            assert mine.status_code < 500, f"{label}: {mine.status_code} {mine.text[:300]}"
            assert seen.status_code == 404, label
            department_facing.add((method, path))

    assert department_facing >= {
        ("GET", "/api/v1/work-orders/{number}"),
        ("POST", "/api/v1/work-orders/{number}/accept"),
        ("POST", "/api/v1/work-orders/{number}/return"),
        ("POST", "/api/v1/work-orders/{number}/extension"),
        ("POST", "/api/v1/work-orders/{number}/reply"),
    }
    after = read(client, login, other["number"])
    assert (after["state"], after["department_code"], len(after["events"])) == (
        other["state"],
        other["department_code"],
        len(other["events"]),
    ), "a refused request changed the other department's order"


def test_departments_reach_only_their_routes_and_never_see_other_orders(
    client: TestClient, login: Login, setting: tuple[str, dict[str, Any]]
) -> None:
    user, other = setting
    openapi = client.get("/openapi.json").json()
    for method, path in routes(client):
        if "{number}" in path or path.startswith(NOT_DEPARTMENT_FACING):
            continue  # the test above
        if (method, path) == ("POST", "/api/v1/auth/logout"):
            continue  # revokes the token this walk signs with (tests/service/test_auth.py)
        api = path.startswith("/api/v1/")
        if not api and (method != "GET" or "{" in path):
            continue  # channels with their own credentials (WeChat signature ...)
        response = request(client, openapi, method, path, login(user))
        label = f"{method} {path}"
        if api and (method, path) not in DEPARTMENT_ROUTES:
            assert response.status_code in (401, 403), (
                f"{label} answered {response.status_code} to a department user; if departments "
                "need it, add it to DEPARTMENT_ROUTES (and scope it to their own orders)"
            )
        else:
            assert response.status_code < 500, f"{label}: {response.text[:300]}"
        assert other["number"] not in response.text, f"{label} shows another department's order"

    # The same inbox shows the department's own orders, so the check above can fail.
    inbox = client.get("/api/v1/work-orders", headers=login(user)).json()
    assert inbox["total"] >= 1
    assert {item["department_code"] for item in inbox["items"]} == {user_of_code(user)}


def user_of_code(user: str) -> str:
    from router.catalogue.models import Department

    with runtime.get_database().session() as db_session:
        codes = db_session.scalars(select(Department.code))
        return next(code for code in codes if user_of(code) == user)
