"""/docs (Swagger UI) and /redoc (ReDoc) render in headless Chromium with the CDNs blocked and
request nothing from another host."""

from __future__ import annotations

from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]

Browser = Any  # tests/web/conftest.py:Browser (a conftest cannot be imported)
# Where FastAPI's stock pages fetch their scripts, styles, favicon and fonts from.
REDOCLY_BADGE = "https://cdn.redoc.ly/redoc/logo-mini.svg"
CDN_HOSTS = ("cdn.jsdelivr.net", "unpkg.com", "fastapi.tiangolo.com", "fonts.googleapis.com")


def _block_cdns(browser: Browser) -> None:
    browser.driver.execute_cdp_cmd("Network.enable", {})
    urls = [f"*://{host}/*" for host in CDN_HOSTS] + [
        "*://fonts.gstatic.com/*",
        "*://cdn.redoc.ly/*",
    ]
    browser.driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": urls})


@pytest.mark.parametrize(
    ("page", "rendered"),
    [
        ("/docs", ".swagger-ui .opblock-tag"),  # one section per tag: the spec was rendered
        ("/redoc", "[role=menuitem], .menu-content li"),
    ],
)
def test_api_docs_render_offline(browser: Browser, page: str, rendered: str) -> None:
    _block_cdns(browser)
    browser.open(page)
    WebDriverWait(browser.driver, 30).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, rendered))
    )
    assert "/api/v1/appeals" in browser.driver.page_source
    browser.screenshot(f"api-docs{page.replace('/', '-')}")
    # ReDoc's search index runs in a worker loaded from a blob: URL of the page's own origin.
    # Its "API docs by Redocly" badge asks for a logo on Redocly's CDN: the page's
    # Content-Security-Policy refuses it, so nothing is loaded and the page does not wait for it.
    same_origin_blobs = f"blob:{browser.base_url}/"
    external = [u for u in browser.external_requests() if not u.startswith(same_origin_blobs)]
    assert set(external) <= {REDOCLY_BADGE}
    loaded = browser.driver.execute_script(
        "return [...document.images].filter(i => i.src.startsWith('http') && i.naturalWidth > 0"
        " && !i.src.startsWith(location.origin)).map(i => i.src)"
    )
    assert loaded == []
