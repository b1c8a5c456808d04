"""考核排名 in headless Chromium: the supervisor reaches it from the dashboard's navigation, sees
the ranking with an escalated department on the red list, and drills down to its orders."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]

Browser = Any  # tests/web/conftest.py:Browser (a conftest cannot be imported)
SignIn = Callable[[str], None]
CALLS = (
    "小区门口的路灯坏了半个多月，晚上一片漆黑，老人小孩出门很不安全，请尽快派人维修。",
    "我家楼下的垃圾已经三天没人清运了，臭气熏天，请尽快处理。",
)


def wait(driver: WebDriver, seconds: float = 15) -> WebDriverWait:
    return WebDriverWait(driver, seconds, ignored_exceptions=(StaleElementReferenceException,))


def seed(base_url: str) -> dict[str, str]:
    """Two appeals dispatched on receipt, both escalated by the supervisor; returns each
    order's department by number."""
    password = os.environ["HOTLINE_DEMO_PASSWORD"]
    departments = {}
    with httpx.Client(base_url=base_url) as http:

        def token(user: str) -> dict[str, str]:
            form = {"username": user, "password": password}
            response = http.post("/api/v1/auth/token", data=form)
            return {"Authorization": f"Bearer {response.json()['access_token']}"}

        agent, supervisor = token("agent"), token("supervisor")
        for index, text in enumerate(CALLS):
            body = {"channel": "web", "text": text, "caller_phone": f"1371234567{index}"}
            response = http.post("/api/v1/appeals", json=body, headers=agent)
            assert response.status_code == 201, response.text
            number = response.json()["number"]
            order = http.get(f"/api/v1/work-orders/{number}", headers=supervisor).json()
            assert order["state"] == "dispatched", order
            departments[number] = str(order["department_code"])
            response = http.post(
                f"/api/v1/work-orders/{number}/escalate",
                json={"reason": "群众反映强烈"},
                headers=supervisor,
            )
            assert response.status_code == 200, response.text
    return departments


def test_supervisor_ranks_departments_and_drills_down(
    browser: Browser, sign_in: SignIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service import runtime

    monkeypatch.setenv("HOTLINE_AUTO_DISPATCH_THRESHOLD", "0")
    runtime.get_settings.cache_clear()
    departments = seed(browser.base_url)
    first = next(iter(departments.values()))
    driver = browser.driver

    sign_in("supervisor")
    link = wait(driver).until(
        lambda d: d.find_element(By.CSS_SELECTOR, ".topbar nav a[href='/assessment']")
    )
    assert link.text == "考核排名"
    link.click()
    wait(driver).until(lambda d: d.execute_script("return document.body.dataset.assessmentLoaded"))
    assert driver.find_element(By.ID, "assessment-error").text == ""

    # Every dispatch escalated: 0 points for escalations, 100 for returns and extensions,
    # nothing else rated yet: (0*10 + 100*10 + 100*5) / 25 = 60, below 80: red.
    red_row = driver.find_element(By.CSS_SELECTOR, f"tr[data-code='{first}']")
    assert "level-red" in (red_row.get_attribute("class") or "")
    assert "红牌" in red_row.text
    total = driver.find_element(By.ID, "total-row")
    assert total.find_elements(By.TAG_NAME, "td")[2].text == "2"  # 受理量
    browser.screenshot("assessment-ranking")

    red_row.find_element(By.CSS_SELECTOR, ".figure[data-figure='escalations']").click()
    wait(driver).until(lambda d: d.execute_script("return document.body.dataset.drillLoaded"))
    cells = driver.find_elements(By.CSS_SELECTOR, "#drill-table tbody td")
    expected = [number for number, code in departments.items() if code == first]
    assert [cell.text for cell in cells] == [text for n in expected for text in (n, "督办")]
    assert "督办 明细" in driver.find_element(By.ID, "drill-title").text
    export = driver.find_element(By.ID, "export").get_attribute("href") or ""
    assert "/api/v1/assessment/export.xlsx?unit=department&month=" in export
    browser.screenshot("assessment-drill-down")
    assert browser.external_requests() == []
