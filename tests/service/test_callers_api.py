from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from router.workorders.queries import phone_spellings
from service import runtime

Login = Callable[[str], dict[str, str]]


def appeal(client: TestClient, login: Login, phone: str, text: str) -> str:
    body = {"channel": "phone", "text": text, "caller_phone": phone}
    response = client.post("/api/v1/appeals", json=body, headers=login("agent"))
    assert response.status_code == 201, response.text
    number: str = response.json()["number"]
    return number


def test_history_lists_the_callers_appeals_newest_first_in_any_spelling(
    client: TestClient, login: Login, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service.auth import audit

    monkeypatch.setenv("HOTLINE_AUTO_DISPATCH_THRESHOLD", "1.01")
    runtime.get_settings.cache_clear()
    first = appeal(client, login, "13812345678", "楼上漏水，我的身份证号430102199001011234")
    appeal(client, login, "13900001111", "别人的诉求：噪音扰民")
    second = appeal(client, login, "138-1234-5678", "小区路灯坏了，回电13812345678")

    response = client.post(
        "/api/v1/callers/history", json={"phone": "+86 138 1234 5678"}, headers=login("agent")
    )

    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert [item["number"] for item in items] == [second, first]
    assert items[0]["state"] == "review" and items[0]["channel"] == "phone"
    assert items[0]["text"] == "小区路灯坏了，回电138****5678"
    assert "430102199001011234" not in items[1]["text"]
    limited = client.post(
        "/api/v1/callers/history",
        json={"phone": "13812345678", "limit": 1},
        headers=login("supervisor"),
    )
    assert [item["number"] for item in limited.json()["items"]] == [second]
    with runtime.get_database().session() as db_session:
        entries, total = audit.search(db_session=db_session, action="caller.lookup")
        assert total == 2
        assert all("1234" not in (entry.target_id or "x1234") for entry in entries)


def test_unknown_caller_has_no_history_and_departments_are_refused(
    client: TestClient, login: Login
) -> None:
    def history(phone: str, headers: dict[str, str]) -> Response:
        return client.post("/api/v1/callers/history", json={"phone": phone}, headers=headers)

    empty = history("13700000000", login("admin"))
    assert empty.status_code == 200 and empty.json() == {"items": []}
    refused = history("13700000000", login("dept_housing"))
    assert refused.status_code == 403 and refused.json()["error"] == "Forbidden"
    assert history("13700000000", {}).status_code == 401
    assert history("abc", login("agent")).status_code == 422


def test_the_callers_number_never_appears_in_the_url(
    client: TestClient, login: Login, caplog: pytest.LogCaptureFixture
) -> None:
    """The access log and proxies see the URL: the lookup takes the number in its body."""
    schema = client.get("/openapi.json").json()
    caller_paths = [path for path in schema["paths"] if path.startswith("/api/v1/callers")]
    assert caller_paths == ["/api/v1/callers/history"]
    assert "get" not in schema["paths"]["/api/v1/callers/history"]
    assert not any(
        parameter["in"] in ("path", "query")
        for operation in schema["paths"]["/api/v1/callers/history"].values()
        for parameter in operation.get("parameters", [])
    )
    old = client.get("/api/v1/callers/13812345678/appeals", headers=login("agent"))
    assert old.status_code in (404, 405)
    caplog.set_level("INFO", logger="httpx")
    client.post("/api/v1/callers/history", json={"phone": "13812345678"}, headers=login("agent"))
    assert "13812345678" not in caplog.text


@pytest.mark.parametrize(
    "typed",
    ["13812345678", "+8613812345678", "008613812345678", "138 1234 5678", "+86-138-1234-5678"],
)
def test_phone_spellings_of_one_mobile_number_overlap(typed: str) -> None:
    assert {"13812345678", "+86 138 1234 5678", "138-1234-5678"} <= set(phone_spellings(typed))
