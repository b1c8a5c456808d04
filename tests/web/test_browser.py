"""End to end in headless Chromium: an agent takes a call, the department accepts and replies, the
supervisor's dashboard shows it; no page requests anything from another host."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]

Browser = Any  # tests/web/conftest.py:Browser (a conftest cannot be imported)
SignIn = Callable[[str], None]
CALL = (
    "您好，我家小区门口的路灯坏了半个多月了，晚上一片漆黑，老人小孩出门很不安全，请尽快派人维修。"
)
NOISE = "楼上邻居每天深夜装修施工，噪音太大影响休息。"
REPLY = "已于今日安排路灯维修班组到现场更换灯具，路灯已恢复照明。"
KPIS = ("appeals", "dispatched")


def wait(driver: WebDriver, seconds: float = 15) -> WebDriverWait:
    # Lists and details re-render after every action: an element read mid-render is retried.
    return WebDriverWait(driver, seconds, ignored_exceptions=(StaleElementReferenceException,))


def kpis(browser: Browser) -> dict[str, int]:
    """The dashboard's totals, after its statistics have loaded."""
    driver = browser.driver
    wait(driver).until(
        lambda d: d.execute_script(
            "return document.body.dataset.statsLoaded"
            " || document.getElementById('stats-error').textContent || null"
        )
    )
    error = driver.find_element(By.ID, "stats-error").text
    assert not error, f"dashboard statistics failed: {error}"
    values = {}
    for name in KPIS:
        node = driver.find_element(By.CSS_SELECTOR, f"#kpi-{name} .value")
        values[name] = int(node.get_attribute("data-value") or "0")
    return values


def token(base_url: str, username: str) -> dict[str, str]:
    form = {"username": username, "password": os.environ["HOTLINE_DEMO_PASSWORD"]}
    with httpx.Client(base_url=base_url) as http:
        response = http.post("/api/v1/auth/token", data=form)
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def department_of(base_url: str, number: str) -> str:
    """Where the order went (asked through the API, as a supervisor)."""
    with httpx.Client(base_url=base_url, headers=token(base_url, "supervisor")) as http:
        order = http.get(f"/api/v1/work-orders/{number}").json()
    assert order["state"] == "dispatched", order
    return str(order["department_code"])


def test_wrong_password_shows_an_error_on_the_login_page(browser: Browser) -> None:
    driver = browser.driver
    browser.open("/console")
    wait(driver).until(ec.url_contains("/login?next=/console"))
    driver.find_element(By.ID, "username").send_keys("agent")
    driver.find_element(By.ID, "password").send_keys("wrong-password")
    driver.find_element(By.ID, "login-submit").click()
    error = wait(driver).until(ec.visibility_of_element_located((By.ID, "login-error")))
    assert "用户名或密码错误" in error.text
    browser.screenshot("login-error")
    assert browser.external_requests() == []


def test_agent_to_department_to_supervisor(browser: Browser, sign_in: SignIn) -> None:
    driver = browser.driver

    # The supervisor's figures before the call.
    sign_in("supervisor")
    assert "/dashboard" in driver.current_url
    before = kpis(browser)
    browser.screenshot("01-dashboard-before")

    # The agent types the caller's words; the suggestion follows the text.
    sign_in("agent")
    assert "/console" in driver.current_url
    text = driver.find_element(By.ID, "appeal-text")
    text.send_keys(CALL[:12])
    text.send_keys(CALL[12:])
    path = wait(driver).until(ec.visibility_of_element_located((By.ID, "suggested-path")))
    wait(driver).until(lambda d: d.find_element(By.ID, "suggested-path").text.count("/") == 2)
    suggested = path.get_attribute("data-code")
    alternatives = driver.find_elements(By.CSS_SELECTOR, "#alternatives li")
    assert 1 <= len(alternatives) <= 5
    assert alternatives[0].get_attribute("data-code") == suggested
    assert driver.find_elements(By.CSS_SELECTOR, "#terms .chip"), "explaining terms are shown"
    assert driver.find_element(By.ID, "suggested-confidence").text.endswith("%")

    # The category tree can be searched (the agent keeps the suggestion here).
    driver.find_element(By.ID, "tree-filter").send_keys("路灯")

    def shown_leaves(d: WebDriver) -> list[str]:
        nodes = d.find_elements(By.CSS_SELECTOR, "#category-tree .node.leaf")
        return [n.get_attribute("title") or "" for n in nodes if n.is_displayed()]

    leaves = wait(driver).until(shown_leaves)
    assert all("路灯" in title for title in leaves), leaves
    driver.find_element(By.ID, "caller-phone").send_keys("13800138000")
    driver.find_element(By.ID, "caller-name").send_keys("张先生")
    driver.find_element(By.ID, "address").send_keys("A3区联丰路米兰春天小区")
    browser.screenshot("02-console-suggestion")

    driver.find_element(By.ID, "submit-appeal").click()
    created = wait(driver).until(ec.visibility_of_element_located((By.ID, "created-number")))
    number = created.text
    state = created.get_attribute("data-state")
    assert number and state in ("dispatched", "review")
    browser.screenshot("03-console-created")

    if state == "review":  # low confidence: the agent confirms it from the review queue
        driver.find_element(By.ID, "tab-button-review").click()
        row = wait(driver).until(
            ec.visibility_of_element_located((By.CSS_SELECTOR, f'tr[data-number="{number}"]'))
        )
        browser.screenshot("04-review-queue")
        row.find_element(By.CSS_SELECTOR, "button.confirm-dispatch").click()
        wait(driver).until(
            ec.invisibility_of_element_located((By.CSS_SELECTOR, f'tr[data-number="{number}"]'))
        )
    department = department_of(browser.base_url, number)

    # The department accepts and replies.
    sign_in(f"dept_{department.lower()}")
    assert "/inbox" in driver.current_url
    row = wait(driver).until(
        ec.element_to_be_clickable((By.CSS_SELECTOR, f'#orders tr[data-number="{number}"]'))
    )
    assert row.get_attribute("data-deadline") == "normal"
    assert row.find_element(By.CSS_SELECTOR, ".deadline-normal")
    row.click()
    wait(driver).until(ec.element_to_be_clickable((By.ID, "action-accept"))).click()
    wait(driver).until(
        lambda d: d.find_element(By.ID, "detail-number").get_attribute("data-state") == "accepted"
    )
    wait(driver).until(ec.element_to_be_clickable((By.ID, "action-reply"))).click()
    reply = wait(driver).until(
        ec.visibility_of_element_located((By.CSS_SELECTOR, "#action-forms textarea"))
    )
    reply.send_keys(REPLY)
    browser.screenshot("05-inbox-reply")
    driver.find_element(By.CSS_SELECTOR, "#action-forms button[type=submit]").click()
    wait(driver).until(
        lambda d: d.find_element(By.ID, "detail-number").get_attribute("data-state") == "replied"
    )
    actions = [
        e.get_attribute("data-action") for e in driver.find_elements(By.CSS_SELECTOR, "#events li")
    ]
    assert {"accept", "reply"} <= set(actions)
    assert REPLY in driver.find_element(By.ID, "events").text
    browser.screenshot("06-inbox-replied")

    # The supervisor sees the new appeal in the figures.
    sign_in("supervisor")
    after = kpis(browser)
    assert after["appeals"] == before["appeals"] + 1
    assert after["dispatched"] == before["dispatched"] + 1
    browser.screenshot("07-dashboard-after")

    # Nothing was requested from anywhere but the app itself, on any page.
    assert browser.external_requests() == []
    assert any(url.endswith("/static/js/common.js") for url in browser.requested)
    assert any("/api/v1/classify" in url for url in browser.requested)
    errors = [
        entry["message"]
        for entry in browser.console
        if entry["level"] == "SEVERE" and "Failed to load resource" not in entry["message"]
    ]
    assert errors == [], errors


def test_agent_overrides_the_suggestion_from_the_category_tree(
    browser: Browser, sign_in: SignIn
) -> None:
    driver = browser.driver
    sign_in("agent")
    driver.find_element(By.ID, "appeal-text").send_keys(NOISE)
    wait(driver).until(lambda d: d.find_element(By.ID, "suggested-path").text.count("/") == 2)
    suggested = driver.find_element(By.ID, "suggested-path").get_attribute("data-code")

    driver.find_element(By.ID, "tree-filter").send_keys("噪声")

    def other_leaf(d: WebDriver) -> Any:
        nodes = d.find_elements(By.CSS_SELECTOR, "#category-tree .node.leaf")
        shown = [n for n in nodes if n.is_displayed() and n.get_attribute("data-code") != suggested]
        return shown[0] if shown else False

    leaf = wait(driver).until(other_leaf)
    chosen = leaf.get_attribute("data-code")
    leaf.click()
    assert driver.find_element(By.ID, "chosen-code").get_attribute("data-code") == chosen
    assert "坐席改选" in driver.find_element(By.ID, "chosen").text
    driver.find_element(By.ID, "caller-phone").send_keys("13912345678")
    browser.screenshot("08-console-override")
    driver.find_element(By.ID, "submit-appeal").click()
    created = wait(driver).until(ec.visibility_of_element_located((By.ID, "created-number")))
    number = created.text
    assert created.get_attribute("data-state") == "dispatched"

    with httpx.Client(base_url=browser.base_url, headers=token(browser.base_url, "agent")) as http:
        order = http.get(f"/api/v1/work-orders/{number}").json()
        categories = http.get("/api/v1/reference/categories").json()["items"]
    lead = next(c["lead_department_code"] for c in categories if c["code"] == chosen)
    assert order["department_code"] == lead
    if any(e["action"] == "dispatch" for e in order["events"]):  # went through review
        assert order["category_code"] == chosen
        assert order["events"][-1]["data"]["label_source"] == "agent_override"

    # The caller's earlier appeals include this one.
    driver.find_element(By.ID, "tab-button-caller").click()
    driver.find_element(By.ID, "caller-search").send_keys("13912345678")
    driver.find_element(By.CSS_SELECTOR, "#caller-form button[type=submit]").click()
    wait(driver).until(
        lambda d: (
            number in d.find_element(By.ID, "caller-list").text
            or d.find_elements(By.CSS_SELECTOR, "#caller-list .error-box")
        )
    )
    assert number in driver.find_element(By.ID, "caller-list").text
    browser.screenshot("09-console-caller-history")
    assert browser.external_requests() == []


def test_department_sees_overdue_orders_in_red_and_returns_one_with_a_reason(
    browser: Browser, sign_in: SignIn
) -> None:
    from datetime import timedelta

    from router.orm import utcnow
    from router.workorders.models import WorkOrder
    from service import runtime

    driver = browser.driver
    with httpx.Client(base_url=browser.base_url, headers=token(browser.base_url, "agent")) as http:
        created = http.post("/api/v1/appeals", json={"channel": "web", "text": CALL}).json()
        number = created["number"]
        if created["state"] == "review":
            assert http.post(f"/api/v1/work-orders/{number}/dispatch", json={}).status_code == 200
    department = department_of(browser.base_url, number)
    with runtime.get_database().session() as db_session:  # its handling time ran out an hour ago
        order = db_session.query(WorkOrder).filter_by(number=number).one()
        order.deadline_at = utcnow() - timedelta(hours=1)

    sign_in(f"dept_{department.lower()}")
    row = wait(driver).until(
        ec.visibility_of_element_located((By.CSS_SELECTOR, f'#orders tr[data-number="{number}"]'))
    )
    assert row.get_attribute("data-deadline") == "overdue"
    assert "row-overdue" in (row.get_attribute("class") or "")
    assert row.find_element(By.CSS_SELECTOR, ".deadline-overdue").text == "超期"

    # The filter "已超期" keeps it; "未超期" does not.
    Select(driver.find_element(By.ID, "filter-overdue")).select_by_value("false")
    selector = f'#orders tr[data-number="{number}"]'
    wait(driver).until(lambda d: not d.find_elements(By.CSS_SELECTOR, selector))
    Select(driver.find_element(By.ID, "filter-overdue")).select_by_value("true")
    row = wait(driver).until(
        ec.element_to_be_clickable((By.CSS_SELECTOR, f'#orders tr[data-number="{number}"]'))
    )
    browser.screenshot("10-inbox-overdue")

    row.click()
    wait(driver).until(ec.element_to_be_clickable((By.ID, "action-return"))).click()
    reason = wait(driver).until(
        ec.visibility_of_element_located((By.CSS_SELECTOR, "#action-forms textarea"))
    )
    reason.send_keys("该路段路灯不属于本单位管养范围")
    driver.find_element(By.CSS_SELECTOR, "#action-forms button[type=submit]").click()
    wait(driver).until(
        lambda d: d.find_element(By.ID, "detail-number").get_attribute("data-state") == "review"
    )
    assert "不属于本单位管养范围" in driver.find_element(By.ID, "events").text
    browser.screenshot("11-inbox-returned")
    assert browser.external_requests() == []
