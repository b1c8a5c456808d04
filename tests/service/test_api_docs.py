"""/docs and /redoc reference only assets the app serves itself (no CDN, no web fonts)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

SOURCES = re.compile(r"""(?:src|href)=["']([^"']+)["']|url:\s*['"]([^'"]+)['"]""")


@pytest.fixture
def docs_client(settings_env: Path) -> TestClient:
    from service.api.app import create_app

    return TestClient(create_app())


@pytest.mark.parametrize(
    ("page", "assets"),
    [
        ("/docs", {"swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"}),
        ("/redoc", {"redoc.standalone.js", "favicon.png"}),
    ],
)
def test_docs_pages_load_only_local_assets_and_those_are_served(
    docs_client: TestClient, page: str, assets: set[str]
) -> None:
    response = docs_client.get(page)
    assert response.status_code == 200
    html = response.text
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert "http://" not in html and "https://" not in html and "//cdn" not in html
    referenced = {a or b for a, b in SOURCES.findall(html)}
    assert {r.rsplit("/", 1)[-1] for r in referenced if r.startswith("/docs-assets/")} == assets
    for url in referenced:
        assert url.startswith("/"), url
        served = docs_client.get(url)
        assert served.status_code == 200, url
        assert len(served.content) > 1000, url


def test_the_openapi_document_the_docs_read_is_served(docs_client: TestClient) -> None:
    document = docs_client.get("/openapi.json").json()
    assert "/api/v1/appeals" in document["paths"]
