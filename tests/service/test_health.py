from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app


@pytest.fixture
def client(app_env: str) -> TestClient:
    return TestClient(create_app())


def test_healthz_answers(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_names_the_missing_model(client: TestClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 503
    checks = {check["name"]: check for check in response.json()["checks"]}
    assert checks["database"]["ok"] is True
    assert checks["broker"]["ok"] is True
    assert checks["model"]["ok"] is False
    assert "no model" in checks["model"]["detail"]


def test_readyz_reports_unreachable_broker(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service import runtime

    monkeypatch.setenv("HOTLINE_BROKER_URL", "amqp://nobody:nothing@127.0.0.1:9//")
    monkeypatch.setenv("HOTLINE_BROKER_CONNECT_TIMEOUT", "0.5")
    runtime.get_settings.cache_clear()
    response = client.get("/readyz")
    assert response.status_code == 503
    broker = next(c for c in response.json()["checks"] if c["name"] == "broker")
    assert broker["ok"] is False
    assert "unreachable" in broker["detail"]


def test_unmigrated_database_is_not_ready(
    settings_env: object, monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    from service import runtime

    runtime.reset()
    response = TestClient(create_app()).get("/readyz")
    assert response.status_code == 503
    database = next(c for c in response.json()["checks"] if c["name"] == "database")
    assert "run hotline migrate" in database["detail"]


def test_unknown_probe_is_a_404_with_a_machine_readable_body(
    seeded_env: str, client: TestClient, login: Callable[[str], dict[str, str]]
) -> None:
    response = client.get("/api/v1/system/probes/nope", headers=login("admin"))
    assert response.status_code == 404
    assert response.json() == {
        "error": "NotFound",
        "detail": "probe nope not found",
        "code": "NOT_FOUND",
        "message": "请求的资源不存在",
    }


def test_probes_are_for_operators_only(
    seeded_env: str, client: TestClient, login: Callable[[str], dict[str, str]]
) -> None:
    assert client.post("/api/v1/system/probes").status_code == 401
    assert client.post("/api/v1/system/probes", headers=login("agent")).status_code == 403
    assert client.post("/api/v1/system/probes", headers=login("supervisor")).status_code == 202
