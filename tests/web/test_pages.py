"""The pages without a browser: who is sent where, headers, bundled assets, reference data."""

from __future__ import annotations

import os
import re
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from service.web.pages import STATIC_DIR, TEMPLATE_DIR

Login = Callable[[str], dict[str, str]]
PASSWORD = os.environ["HOTLINE_DEMO_PASSWORD"]  # set by tests/conftest.py
PAGES = ["/console", "/inbox", "/dashboard", "/assessment"]
# Who is sent where does not depend on the database: SQLite only (the reference data runs on both).
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
EXTERNAL = re.compile(r"""(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}""", re.IGNORECASE)


@pytest.fixture
def browser_client(plain_http: str) -> TestClient:
    """A client that keeps cookies, like a browser (plain HTTP, so the cookie is not Secure), and
    sends its page's origin with each POST, as browsers do."""
    from service.api.app import create_app

    return TestClient(create_app(), headers={"Origin": "http://testserver"})


def sign_in(client: TestClient, username: str) -> None:
    response = client.post("/api/v1/auth/login", data={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text


@SQLITE_ONLY
@pytest.mark.parametrize("path", ["/", *PAGES])
def test_pages_send_a_visitor_without_session_to_login(
    browser_client: TestClient, path: str
) -> None:
    response = browser_client.get(path, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == f"/login?next={path}"


@SQLITE_ONLY
def test_an_expired_or_forged_session_is_sent_to_login_not_an_error(
    browser_client: TestClient,
) -> None:
    browser_client.cookies.set("hotline_session", "not-a-token")
    response = browser_client.get("/console", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login")


@SQLITE_ONLY
@pytest.mark.parametrize(
    ("username", "home", "refused"),
    [
        ("agent", "/console", "/dashboard"),
        ("agent", "/console", "/assessment"),
        ("supervisor", "/dashboard", None),
        ("admin", "/dashboard", None),
        ("dept_housing", "/inbox", "/console"),
        ("dept_housing", "/inbox", "/assessment"),
    ],
)
def test_each_role_lands_on_its_page_and_is_kept_out_of_others(
    browser_client: TestClient, username: str, home: str, refused: str | None
) -> None:
    sign_in(browser_client, username)
    response = browser_client.get("/", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == home
    page = browser_client.get(home)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    if refused is not None:
        response = browser_client.get(refused, follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"] == home


@SQLITE_ONLY
def test_pages_forbid_every_other_origin(browser_client: TestClient) -> None:
    response = browser_client.get("/login")
    assert response.status_code == 200
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert "connect-src 'self'" in policy
    assert "http" not in policy  # no allowed CDN
    assert "<title>登录" in response.text


@SQLITE_ONLY
def test_session_cookie_is_http_only_and_same_site(browser_client: TestClient) -> None:
    response = browser_client.post(
        "/api/v1/auth/login", data={"username": "agent", "password": PASSWORD}
    )
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=lax" in cookie or "samesite=strict" in cookie


@SQLITE_ONLY
def test_every_asset_a_page_names_is_bundled_and_served(browser_client: TestClient) -> None:
    names = sorted(TEMPLATE_DIR.glob("*.html"))
    assert {p.stem for p in names} == {"login", "console", "inbox", "dashboard", "assessment"}
    for template in names:
        html = template.read_text(encoding="utf-8")
        # What the browser loads by itself: scripts, stylesheets, icons (links are navigation).
        assets = re.findall(r"""<(?:script|link)\b[^>]*\b(?:src|href)="([^"]+)\"""", html)
        assert assets, template
        for asset in assets:
            if asset.startswith("data:"):
                continue
            assert asset.startswith("/static/"), f"{template.name}: {asset}"
            response = browser_client.get(asset)
            assert response.status_code == 200, asset


def test_no_bundled_file_points_at_another_host() -> None:
    files = [p for p in STATIC_DIR.rglob("*") if p.is_file()] + list(TEMPLATE_DIR.glob("*.html"))
    assert files
    for path in files:
        text = path.read_text(encoding="utf-8")
        # The SVG namespace is an identifier, never fetched.
        text = text.replace("http://www.w3.org/2000/svg", "")
        assert not EXTERNAL.search(text), f"{path.name}: {EXTERNAL.search(text)}"


@SQLITE_ONLY
def test_pages_stay_out_of_the_openapi_document(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert not {"/", "/login", *PAGES} & set(paths)
    assert not [p for p in paths if p.startswith("/static")]
    assert "/api/v1/reference/categories" in paths


def test_reference_lists_the_category_tree_and_departments(
    client: TestClient, login: Login
) -> None:
    response = client.get("/api/v1/reference/categories", headers=login("agent"))
    assert response.status_code == 200
    categories = response.json()["items"]
    by_code = {c["code"]: c for c in categories}
    levels = {level: [c for c in categories if c["level"] == level] for level in (1, 2, 3)}
    assert all(levels.values())
    for leaf in levels[3]:
        parent = by_code[leaf["parent_code"]]
        assert parent["level"] == 2
        assert leaf["path"].startswith(parent["path"] + "/")
    departments = client.get("/api/v1/reference/departments", headers=login("dept_housing"))
    assert departments.status_code == 200
    codes = {d["code"] for d in departments.json()["items"]}
    assert "housing" in codes
    assert {c["lead_department_code"] for c in levels[3]} - {None} <= codes


@SQLITE_ONLY
def test_reference_needs_a_signed_in_user(client: TestClient) -> None:
    response = client.get("/api/v1/reference/categories")
    assert response.status_code == 401
    assert response.json()["error"] == "Unauthorized"
