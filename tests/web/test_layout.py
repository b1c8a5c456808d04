"""The pages' layout, measured in the DOM at the call centre's 1366×768 and at 1920×1080, with a
realistic inbox (48 generated appeals, orders of the departments with the longest names, accepted,
overdue and escalated ones) for the agent, the department (with six orders, and with one) and
the supervisor.

What is measured, on every table of the page:

* no cell is narrower than the widest word of its text (words as Chrome's ICU dictionary
  segments Chinese, widths from the cell's own fonts): a department's name never stacks one
  character a line;
* the inbox never scrolls sideways (the document and the table), and its key columns (number,
  department, deadline, deadline status) lie inside the viewport;
* no inbox row is taller than four lines.

Screenshots of each view go to the artifacts directory (see conftest); docs/screenshots/ holds a
representative set.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]

Browser = Any  # tests/web/conftest.py:Browser
SignIn = Callable[[str], None]
SIZES = [(1366, 768), (1920, 1080)]
ORDERS = 48
REPEAT_CALLER = "13700001111"
ROW_MAX_PX = 4 * 21 + 14  # four lines of 14px/1.5 text and the cell's padding

# Returns, for the cells matching a selector, those narrower than their widest word.
WIDEST_WORDS = """
const cells = document.querySelectorAll(arguments[0]);
const words = new Intl.Segmenter("zh-CN", { granularity: "word" });
const ctx = document.createElement("canvas").getContext("2d");
const problems = [];
let measured = 0;
for (const cell of cells) {
  const box = cell.getBoundingClientRect();
  if (!box.width || !cell.getClientRects().length) continue;  // hidden (another tab)
  const style = getComputedStyle(cell);
  const inner = box.width - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight)
    - parseFloat(style.borderLeftWidth) - parseFloat(style.borderRightWidth);
  let widest = 0;
  let word = "";
  const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    ctx.font = getComputedStyle(node.parentElement).font;
    for (const { segment } of words.segment(node.data)) {
      const text = segment.trim();
      if (!text) continue;
      const width = ctx.measureText(text).width;
      if (width > widest) { widest = width; word = text; }
    }
  }
  measured += 1;
  if (inner + 0.5 < widest) {
    problems.push({ cell: cell.textContent.slice(0, 30), word, word_px: widest, cell_px: inner });
  }
}
return { measured, problems };
"""

SIDEWAYS = """
const doc = document.documentElement;
return {
  document: [doc.scrollWidth, doc.clientWidth],
  tables: [...document.querySelectorAll(".table-wrap")]
    .filter((w) => w.getClientRects().length)
    .map((w) => [w.scrollWidth, w.clientWidth]),
};
"""

# For each named header of #orders: its box and the first row's cell, against the viewport and
# the scrolling box around the table.
KEY_COLUMNS = """
const names = arguments[0];
const table = document.getElementById("orders");
const wrap = table.closest(".table-wrap").getBoundingClientRect();
const headers = [...table.querySelectorAll("thead th")];
const row = table.querySelector("tbody tr");
const out = {};
for (const name of names) {
  const index = headers.findIndex((th) => th.textContent.trim() === name);
  if (index < 0) { out[name] = null; continue; }
  const boxes = [headers[index], row.children[index]].map((n) => n.getBoundingClientRect());
  out[name] = boxes.every((b) => b.width > 0 && b.left >= -0.5 && b.left >= wrap.left - 0.5
    && b.right <= Math.min(innerWidth, wrap.right) + 0.5);
}
return out;
"""


@pytest.fixture(params=SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def window_size(request: pytest.FixtureRequest) -> tuple[int, int]:
    size: tuple[int, int] = request.param
    return size


def wait(driver: WebDriver, seconds: float = 20) -> WebDriverWait:
    return WebDriverWait(driver, seconds, ignored_exceptions=(StaleElementReferenceException,))


def token(base_url: str, username: str) -> dict[str, str]:
    form = {"username": username, "password": os.environ["HOTLINE_DEMO_PASSWORD"]}
    response = httpx.post(f"{base_url}/api/v1/auth/token", data=form)
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def seed(base_url: str) -> dict[str, Any]:
    """Generated appeals through the API; the longest-named departments get a dozen of them, one
    is accepted and escalated, a few run out of time."""
    from fixtures.generator import generate_appeals
    from router.orm import utcnow
    from router.workorders.models import WorkOrder
    from service import runtime

    agent = httpx.Client(base_url=base_url, headers=token(base_url, "agent"), timeout=30)
    supervisor = httpx.Client(base_url=base_url, headers=token(base_url, "supervisor"), timeout=30)
    numbers = []
    for i, appeal in enumerate(generate_appeals(ORDERS, seed=1366)):
        body = {
            "channel": appeal["channel"],
            "title": appeal["title"],
            "text": appeal["text"],
            "caller_phone": REPEAT_CALLER if i % 16 == 0 else f"1390000{i:04d}",
            "caller_name": "欧阳文华" if i % 2 else "李强",
            "address": f"{appeal['district']}区金刚路{i + 1}号",
        }
        created = agent.post("/api/v1/appeals", json=body)
        assert created.status_code == 201, created.text
        number = created.json()["number"]
        if created.json()["state"] == "review":
            dispatched = agent.post(f"/api/v1/work-orders/{number}/dispatch", json={})
            assert dispatched.status_code == 200, dispatched.text
        numbers.append(number)
    departments = supervisor.get("/api/v1/reference/departments").json()["items"]
    longest = sorted(departments, key=lambda d: (-len(d["name"]), d["code"]))[:4]
    for i, number in enumerate(numbers[:12]):
        target = longest[0 if i < 6 else 1 + i % 2]["code"]
        order = supervisor.get(f"/api/v1/work-orders/{number}").json()
        if order["department_code"] != target:
            moved = supervisor.post(
                f"/api/v1/work-orders/{number}/reassign",
                json={"department_code": target, "reason": "按职责调整承办单位"},
            )
            assert moved.status_code == 200, moved.text
    # The fourth gets one order only: a one-row table is where the department view used to
    # scroll sideways and hide the deadline badge.
    single = supervisor.post(
        f"/api/v1/work-orders/{numbers[12]}/reassign",
        json={"department_code": longest[3]["code"], "reason": "按职责调整承办单位"},
    )
    assert single.status_code == 200, single.text
    lead = longest[0]
    department = httpx.Client(
        base_url=base_url, headers=token(base_url, f"dept_{lead['code'].lower()}"), timeout=30
    )
    accepted = numbers[0]
    assert department.post(f"/api/v1/work-orders/{accepted}/accept").status_code == 200
    escalated = supervisor.post(
        f"/api/v1/work-orders/{numbers[3]}/escalate", json={"reason": "久拖不办，请今日内反馈"}
    )
    assert escalated.status_code == 200, escalated.text
    with runtime.get_database().session() as db_session:
        for number in numbers[1:12:4] + numbers[20:23]:
            order = db_session.query(WorkOrder).filter_by(number=number).one()
            order.deadline_at = utcnow() - timedelta(hours=2)
    for client in (agent, supervisor, department):
        client.close()
    return {
        "numbers": numbers,
        "department": lead,
        "single": longest[3],
        "accepted": accepted,
        "accepted_text": next(iter(generate_appeals(ORDERS, seed=1366)))["text"],
    }


def register_model(demo_model_dir: Path) -> None:
    """The demo model as a registered version: the dashboard lists it with its metrics."""
    from service import runtime
    from service.config import get_settings
    from training import registry

    with runtime.get_database().session() as db_session:
        registry.register(
            db_session=db_session,
            artifact_dir=demo_model_dir,
            versions_dir=get_settings().model_versions_dir,
            source="test",
            move=False,
        )


@pytest.fixture
def inbox_data(browser: Browser, demo_model_dir: Path) -> Iterator[dict[str, Any]]:
    register_model(demo_model_dir)
    yield seed(browser.base_url)


def size_name(driver: WebDriver) -> str:
    width, height = driver.execute_script("return [innerWidth, innerHeight]")
    return f"{width}x{height}"


def assert_words_fit(driver: WebDriver, selector: str, at_least: int = 1) -> None:
    found = driver.execute_script(WIDEST_WORDS, selector)
    assert found["measured"] >= at_least, f"{selector}: only {found['measured']} cells measured"
    assert found["problems"] == [], f"{selector}: cells narrower than a word: {found['problems']}"


def assert_inbox_layout(driver: WebDriver, key_columns: list[str], rows: int = 5) -> None:
    wait(driver).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#orders tbody tr")) >= rows)
    assert_words_fit(driver, "#orders th, #orders td", at_least=(rows + 1) * len(key_columns))
    sideways = driver.execute_script(SIDEWAYS)
    width, visible = sideways["document"]
    assert width <= visible, f"the page scrolls sideways: {width} > {visible}"
    for width, visible in sideways["tables"]:
        assert width <= visible, f"the table scrolls sideways: {width} > {visible}"
    shown = driver.execute_script(KEY_COLUMNS, key_columns)
    assert shown == dict.fromkeys(key_columns, True), shown
    heights = driver.execute_script(
        "return [...document.querySelectorAll('#orders tbody tr')]"
        ".map((r) => r.getBoundingClientRect().height)"
    )
    assert max(heights) <= ROW_MAX_PX, f"rows up to {max(heights):.0f} px tall"


def open_order(driver: WebDriver, number: str) -> None:
    row = wait(driver).until(
        ec.element_to_be_clickable((By.CSS_SELECTOR, f'#orders tr[data-number="{number}"]'))
    )
    row.click()
    wait(driver).until(lambda d: d.find_element(By.ID, "detail-number").text.find(number) >= 0)


def test_inbox_fits_the_screen_for_agent_department_and_supervisor(
    browser: Browser, sign_in: SignIn, inbox_data: dict[str, Any]
) -> None:
    driver = browser.driver
    size = size_name(driver)
    centre_columns = ["工单号", "承办单位", "办理时限", "时限状态"]

    sign_in("agent")
    driver.get(browser.base_url + "/inbox")
    wait(driver).until(lambda d: d.execute_script("return document.body.dataset.ready || null"))
    assert_inbox_layout(driver, centre_columns)
    browser.screenshot(f"inbox-agent-{size}")

    # The supervisor: an accepted order offers 督办 and 改派, as the workflow allows.
    sign_in("supervisor")
    driver.get(browser.base_url + "/inbox")
    assert_inbox_layout(driver, centre_columns)
    open_order(driver, inbox_data["accepted"])
    buttons = wait(driver).until(
        lambda d: (
            [
                b.get_attribute("data-action")
                for b in d.find_elements(By.CSS_SELECTOR, "#order-actions button")
            ]
            or None
        )
    )
    assert buttons == ["redispatch", "escalate"]
    assert_inbox_layout(driver, centre_columns)  # the detail panel leaves the table whole
    browser.screenshot(f"inbox-supervisor-{size}")
    driver.find_element(By.ID, "action-escalate").click()
    reason = wait(driver).until(
        ec.visibility_of_element_located((By.CSS_SELECTOR, "#action-forms textarea"))
    )
    reason.send_keys("请于今日内联系来电人并反馈进度")
    driver.find_element(By.CSS_SELECTOR, "#action-forms button[type=submit]").click()
    wait(driver).until(lambda d: "督办" in d.find_element(By.ID, "events").text)

    # The department with the longest name: its own orders, the whole appeal and the caller.
    department = inbox_data["department"]
    sign_in(f"dept_{department['code'].lower()}")
    assert department["name"] in driver.find_element(By.ID, "inbox-title").text
    assert_inbox_layout(driver, ["工单号", "办理时限", "时限状态"])
    open_order(driver, inbox_data["accepted"])
    text = driver.find_element(By.ID, "appeal-text").text
    assert inbox_data["accepted_text"].split("\n")[-1][-20:] in text  # the end: not an excerpt
    call = driver.find_element(By.ID, "call-back")
    assert call.get_attribute("href").startswith("tel:1")
    assert "*" not in call.text
    actions = [
        b.get_attribute("data-action")
        for b in driver.find_elements(By.CSS_SELECTOR, "#order-actions button")
    ]
    assert actions == ["return", "request_extension", "reply"]
    assert_inbox_layout(driver, ["工单号", "办理时限", "时限状态"])
    browser.screenshot(f"inbox-department-{size}")

    # A department with a single order.
    sign_in(f"dept_{inbox_data['single']['code'].lower()}")
    assert_inbox_layout(driver, ["工单号", "办理时限", "时限状态"], rows=1)
    assert len(driver.find_elements(By.CSS_SELECTOR, "#orders tbody tr")) == 1
    browser.screenshot(f"inbox-department-one-order-{size}")
    assert browser.external_requests() == []


def test_console_and_dashboard_fit_the_screen(
    browser: Browser, sign_in: SignIn, inbox_data: dict[str, Any]
) -> None:
    driver = browser.driver
    size = size_name(driver)

    # The console: the suggestion's department and the chosen line name the same department.
    sign_in("agent")
    driver.find_element(By.ID, "address").send_keys("A3区观沙岭街道滨江路")
    driver.find_element(By.ID, "appeal-text").send_keys(
        "小区门口的路灯坏了半个多月了，晚上一片漆黑，老人小孩出门很不安全，请尽快派人维修。"
    )
    wait(driver).until(lambda d: d.find_element(By.ID, "suggested-path").text.count("/") == 2)
    wait(driver).until(lambda d: d.find_elements(By.ID, "chosen-department"))
    suggested = driver.find_element(By.ID, "suggested-department")
    chosen = driver.find_element(By.ID, "chosen-department")
    assert suggested.get_attribute("data-code") == chosen.get_attribute("data-code")
    assert suggested.text == chosen.text
    for extra in driver.find_elements(By.ID, "suggested-assisting"):
        assert suggested.text not in extra.text, "the lead is not also listed as assisting"
    driver.find_element(By.ID, "caller-phone").send_keys(REPEAT_CALLER)
    wait(driver).until(
        lambda d: len(d.find_elements(By.CSS_SELECTOR, "#caller-inline tbody tr")) >= 2
    )
    assert_words_fit(driver, "#caller-inline th, #caller-inline td", at_least=8)
    browser.screenshot(f"console-{size}")
    driver.find_element(By.ID, "tab-button-caller").click()
    driver.find_element(By.ID, "caller-search").send_keys(REPEAT_CALLER)
    driver.find_element(By.CSS_SELECTOR, "#caller-form button[type=submit]").click()
    wait(driver).until(
        lambda d: len(d.find_elements(By.CSS_SELECTOR, "#caller-list tbody tr")) >= 3
    )
    assert_words_fit(driver, "#caller-list th, #caller-list td", at_least=12)
    browser.screenshot(f"console-caller-history-{size}")

    # The dashboard: whole labels, Chinese throughout, dates as 2026-01-31 in any browser locale.
    sign_in("supervisor")
    wait(driver).until(lambda d: d.execute_script("return document.body.dataset.statsLoaded"))
    wait(driver).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#model-table tbody tr"))
    labels = driver.find_elements(By.CSS_SELECTOR, "#chart-categories .hbar-label")
    assert labels, "the top categories are listed"
    for label in labels:
        assert label.text == label.get_attribute("title"), "a label is shown whole"
    assert_words_fit(driver, ".hbar-label", at_least=len(labels))
    assert_words_fit(driver, "#departments td, #model-table td", at_least=10)
    models = driver.find_element(By.ID, "models").text
    assert "rows" not in models and "样本数" in models, models
    for name in ("date-from", "date-to"):
        field = driver.find_element(By.ID, name)
        assert field.get_attribute("type") == "text"
        assert driver.execute_script(
            "return /^\\d{4}-\\d{2}-\\d{2}$/.test(arguments[0].value)", field
        )
    sideways = driver.execute_script(SIDEWAYS)
    assert sideways["document"][0] <= sideways["document"][1], sideways
    browser.screenshot(f"dashboard-{size}")
    assert browser.external_requests() == []
