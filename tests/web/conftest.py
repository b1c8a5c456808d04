"""Fixtures for the pages: the real app served by uvicorn on a free port, and headless Chromium.

Chromium and its driver are Debian's (`scripts/browser.sh` installs them); Selenium is given the
driver's path, so Selenium Manager never downloads anything. Without them the browser tests skip,
or fail when HOTLINE_REQUIRE_SERVICES=1 (as `make test` sets).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("HOTLINE_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("HOTLINE_CHROMEDRIVER", "/usr/bin/chromedriver"))
REQUIRE_SERVICES = os.environ.get("HOTLINE_REQUIRE_SERVICES") == "1"
WINDOW = (1366, 768)
"""The usual call-centre monitor; tests/web/test_layout.py also uses 1920×1080."""


DEMO_PASSWORD = os.environ.get("HOTLINE_DEMO_PASSWORD", "test-demo-password")


def artifacts_dir() -> Path:
    base = os.environ.get("HOTLINE_TEST_ARTIFACTS")
    root = Path(base) if base else ROOT / "var" / "test-artifacts"
    path = root / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def plain_http(seeded_env: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Tests talk plain HTTP: the session cookie must not be `Secure` there."""
    from service.config import get_settings

    monkeypatch.setenv("HOTLINE_SESSION_COOKIE_SECURE", "false")
    get_settings.cache_clear()
    return seeded_env


@pytest.fixture
def live_server(plain_http: str) -> Iterator[str]:
    """The real app (API + pages) served by uvicorn in a thread; yields its base URL."""
    import uvicorn

    from service.api.app import create_app

    port = _free_port()
    config = uvicorn.Config(
        create_app(), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-live", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@dataclass
class Browser:
    """A headless Chromium (1366×768 unless `window_size` says otherwise) that remembers every
    URL any page requested."""

    driver: Any
    base_url: str
    requested: list[str] = field(default_factory=list)
    console: list[dict[str, Any]] = field(default_factory=list)
    shots: list[Path] = field(default_factory=list)

    def open(self, path: str) -> None:
        self.driver.get(self.base_url + path)

    def collect_logs(self) -> None:
        """Drain Chrome's performance and console logs (each read empties them)."""
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message.get("method") == "Network.requestWillBeSent":
                self.requested.append(message["params"]["request"]["url"])
        self.console.extend(self.driver.get_log("browser"))

    def external_requests(self) -> list[str]:
        self.collect_logs()
        origin = urlsplit(self.base_url)
        return [
            url
            for url in self.requested
            if not url.startswith("data:")
            and (urlsplit(url).scheme, urlsplit(url).netloc) != (origin.scheme, origin.netloc)
        ]

    def screenshot(self, name: str) -> Path:
        path = artifacts_dir() / f"{name}.png"
        self.driver.save_screenshot(str(path))
        self.shots.append(path)
        return path


def _need_chromium() -> None:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if not missing:
        return
    message = f"{', '.join(missing)} missing (run scripts/browser.sh)"
    if REQUIRE_SERVICES:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def window_size() -> tuple[int, int]:
    """The viewport of `browser`; a module overrides this fixture to test other sizes."""
    return WINDOW


@pytest.fixture
def browser(
    live_server: str, monkeypatch: pytest.MonkeyPatch, window_size: tuple[int, int]
) -> Iterator[Browser]:
    _need_chromium()
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must never fetch anything
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",  # tests run as root in CI
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={window_size[0]},{window_size[1]}",
        "--lang=zh-CN",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    driver.set_page_load_timeout(30)
    # The viewport itself at that size (the window size would include the browser's frame).
    width, height = window_size
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
    )
    try:
        yield Browser(driver=driver, base_url=live_server)
    finally:
        driver.quit()


@pytest.fixture
def sign_in(browser: Browser) -> Callable[[str], None]:
    """Sign in through the login page as the named demo account (signing out first)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    def _sign_in(username: str) -> None:
        browser.driver.delete_all_cookies()
        browser.open("/login")
        wait = WebDriverWait(browser.driver, 15)
        wait.until(ec.element_to_be_clickable((By.ID, "username"))).send_keys(username)
        browser.driver.find_element(By.ID, "password").send_keys(DEMO_PASSWORD)
        browser.driver.find_element(By.ID, "login-submit").click()
        # A script, not an element: the login page's body goes stale when the next page loads.
        wait.until(lambda d: "/login" not in d.current_url)
        wait.until(lambda d: d.execute_script("return document.body.dataset.ready || null"))

    return _sign_in
