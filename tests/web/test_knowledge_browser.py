"""The console's reference answers in headless Chromium: they follow what the agent types, and a
consultation is answered and closed at intake (直接办结) from one of them."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select, WebDriverWait

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]

Browser = Any
SignIn = Callable[[str], None]
QUESTION = "老年人免费乘坐公交车的优待证怎么办理"
ANSWER = "年满65周岁的老年人可持身份证到所在社区服务中心办理老年人优待证，凭证免费乘坐市内公交。"


def wait(driver: WebDriver, seconds: float = 15) -> WebDriverWait:
    return WebDriverWait(driver, seconds, ignored_exceptions=(StaleElementReferenceException,))


def headers(base_url: str, username: str) -> dict[str, str]:
    form = {"username": username, "password": os.environ["HOTLINE_DEMO_PASSWORD"]}
    with httpx.Client(base_url=base_url) as http:
        response = http.post("/api/v1/auth/token", data=form)
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def test_agent_sees_reference_answers_and_answers_a_consultation_at_once(
    browser: Browser, sign_in: SignIn
) -> None:
    with httpx.Client(
        base_url=browser.base_url, headers=headers(browser.base_url, "supervisor")
    ) as http:
        created = http.post(
            "/api/v1/knowledge/articles",
            json={"question": QUESTION, "answer": ANSWER, "approve": True},
        )
        assert created.status_code == 201, created.text
        article_id = created.json()["id"]

    driver = browser.driver
    sign_in("agent")
    Select(driver.find_element(By.ID, "appeal-type")).select_by_value("consultation")
    driver.find_element(By.ID, "appeal-text").send_keys("请问家里老人坐公交车的优待证在哪里办理？")
    item = wait(driver).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, f"#knowledge-list [data-article='{article_id}']")
    )[0]
    assert "政府部门" not in item.text and "知识库" in item.text
    browser.screenshot("20-console-knowledge")
    item.find_element(By.CSS_SELECTOR, "button.primary").click()
    done = wait(driver).until(lambda d: d.find_elements(By.ID, "knowledge-answered"))[0]
    assert "已直接办结" in done.text
    number = done.text.split()[1]

    with httpx.Client(
        base_url=browser.base_url, headers=headers(browser.base_url, "supervisor")
    ) as http:
        order = http.get(f"/api/v1/work-orders/{number}").json()
    assert order["state"] == "closed"
    assert order["events"][-1]["data"] == {"answer": ANSWER, "article_id": article_id}
    assert browser.external_requests() == []
