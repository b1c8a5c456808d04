"""Open311 GeoReport v2, driven as a civic app drives it: form-encoded POSTs, JSON and XML reads."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote, urlencode
from xml.etree.ElementTree import fromstring

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from router.catalogue.models import Category
from router.workorders.models import Appeal, WorkOrder
from service import runtime

Login = Callable[[str], dict[str, str]]
TEXT = "A3区联丰路米兰春天小区门口的路灯坏了半个多月，晚上一片漆黑，请尽快维修。联系电话13812345678"


def leaf_code() -> str:
    with runtime.get_database().session() as db_session:
        return db_session.scalars(
            select(Category.code).where(Category.level == 3).order_by(Category.code).limit(1)
        ).one()


def form(**extra: str) -> dict[str, str]:
    return {
        "service_code": leaf_code(),
        "description": TEXT,
        "lat": "28.2282",
        "long": "112.9388",
        "address_string": "A3区联丰路米兰春天小区",
        "phone": "13812345678",
        "first_name": "小明",
        "last_name": "王",
        "email": "wang@example.com",
        **extra,
    }


def submit(client: TestClient, **extra: str) -> dict[str, object]:
    response = client.post("/open311/v2/requests.json", data=form(**extra))
    assert response.status_code == 201, response.text
    [created] = response.json()
    return created


def test_services_are_the_leaf_categories_and_have_definitions(client: TestClient) -> None:
    response = client.get("/open311/v2/services.json")
    assert response.status_code == 200
    services = response.json()
    with runtime.get_database().session() as db_session:
        leaves = db_session.scalars(select(Category).where(Category.level == 3)).all()
    assert len(services) == len(leaves) > 100
    first = services[0]
    assert set(first) >= {
        "service_code",
        "service_name",
        "description",
        "metadata",
        "type",
        "group",
    }
    assert (first["metadata"], first["type"]) == (False, "realtime")
    leaf = next(c for c in leaves if c.code == first["service_code"])
    assert first["service_name"] == leaf.name and first["description"] == leaf.path
    assert leaf.path.startswith(first["group"] + "/")
    code = leaf_code()
    definition = client.get(f"/open311/v2/services/{code}.json")
    assert definition.status_code == 200
    assert definition.json()["service_code"] == code and definition.json()["attributes"] == []
    missing = client.get("/open311/v2/services/nope.json")
    assert missing.status_code == 404
    assert missing.json() == [{"code": 404, "description": "服务 nope 不存在"}]


def test_post_request_as_an_open311_client_does(client: TestClient) -> None:
    # Exactly what a GeoReport v2 client library sends: form-encoded, UTF-8 percent-escapes.
    body = urlencode(form(api_key="ignored-when-no-keys-are-configured"))
    response = client.post(
        "/open311/v2/requests.json",
        content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 201, response.text
    [created] = response.json()
    assert set(created) == {"service_request_id", "service_notice", "account_id"}
    number = created["service_request_id"]
    assert f"工单号：{number}" in created["service_notice"]

    with runtime.get_database().session() as db_session:
        order = db_session.scalars(select(WorkOrder).where(WorkOrder.number == number)).one()
        appeal = order.appeal
        assert appeal.channel == "open311"
        assert appeal.text == TEXT
        assert appeal.caller_phone == "13812345678" and appeal.caller_name == "王小明"
        assert (appeal.latitude, appeal.longitude) == (28.2282, 112.9388)
        assert appeal.address == "A3区联丰路米兰春天小区"
        assert order.state in ("dispatched", "review")

    read = client.get(f"/open311/v2/requests/{number}.json")
    assert read.status_code == 200
    [request] = read.json()
    assert request["service_request_id"] == number
    assert request["status"] == "open"
    assert request["lat"] == 28.2282 and request["address"] == "A3区联丰路米兰春天小区"
    assert "13812345678" not in request["description"], "public endpoint: personal data masked"
    assert "138****5678" in request["description"]
    assert request["requested_datetime"].endswith("+08:00")


def test_requests_are_listed_and_filtered(client: TestClient) -> None:
    first = submit(client)["service_request_id"]
    second = submit(client, phone="13900001111")["service_request_id"]
    listed = client.get("/open311/v2/requests.json").json()
    assert [r["service_request_id"] for r in listed] == [second, first]

    by_id = client.get("/open311/v2/requests.json", params={"service_request_id": f"{first},nope"})
    assert [r["service_request_id"] for r in by_id.json()] == [first]
    assert client.get("/open311/v2/requests.json", params={"status": "closed"}).json() == []
    assert len(client.get("/open311/v2/requests.json", params={"status": "open"}).json()) == 2
    future = client.get("/open311/v2/requests.json", params={"start_date": "2999-01-01T00:00:00Z"})
    assert future.json() == []
    code = listed[0]["service_code"]
    by_code = client.get("/open311/v2/requests.json", params={"service_code": code}).json()
    assert {r["service_code"] for r in by_code} == {code}
    bad = client.get("/open311/v2/requests.json", params={"status": "pending"})
    assert bad.status_code == 400 and bad.json()[0]["code"] == 400
    bad_date = client.get("/open311/v2/requests.json", params={"end_date": "yesterday"})
    assert bad_date.status_code == 400


def test_only_open311_requests_are_public(client: TestClient, login: Login) -> None:
    web = client.post(
        "/api/v1/appeals", json={"channel": "web", "text": TEXT}, headers=login("agent")
    ).json()["number"]
    assert client.get(f"/open311/v2/requests/{web}.json").status_code == 404
    assert client.get("/open311/v2/requests.json").json() == []


def test_xml_variants(client: TestClient) -> None:
    services = fromstring(client.get("/open311/v2/services.xml").content)
    assert services.tag == "services" and services[0].tag == "service"
    assert services[0].findtext("metadata") == "false"
    response = client.post("/open311/v2/requests.xml", data=form())
    assert response.status_code == 201
    created = fromstring(response.content)
    number = created.findtext("request/service_request_id")
    assert created.tag == "service_requests" and number
    read = fromstring(client.get(f"/open311/v2/requests/{number}.xml").content)
    assert read.findtext("request/status") == "open"
    error = client.get("/open311/v2/requests/nope.xml")
    assert error.status_code == 404
    assert fromstring(error.content).findtext("error/code") == "404"


BAD_REQUESTS = [
    ({"service_code": ""}, "service_code"),
    ({"service_code": "99"}, "服务 99 不存在"),
    ({"lat": "", "long": "", "address_string": ""}, "须提供位置"),
    ({"lat": "north"}, "lat"),
    ({"lat": "91"}, "lat"),
    ({"long": ""}, "同时提供"),
    ({"phone": "call me"}, "phone"),
    ({"description": "字" * 5001}, "description"),
]


def test_bad_requests_get_open311_errors(client: TestClient) -> None:
    for change, fragment in BAD_REQUESTS:
        response = client.post("/open311/v2/requests.json", data=form(**change))
        assert response.status_code == 400, change
        [error] = response.json()
        assert error["code"] == 400 and fragment in error["description"], change
    with runtime.get_database().session() as db_session:
        assert db_session.scalars(select(Appeal)).first() is None


def test_api_key_is_required_when_configured(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOTLINE_OPEN311_API_KEYS", "app-one-key,app-two-key")
    runtime.get_settings.cache_clear()
    assert client.post("/open311/v2/requests.json", data=form()).status_code == 403
    wrong = client.post("/open311/v2/requests.json", data=form(api_key="guess"))
    assert wrong.status_code == 403 and wrong.json()[0]["code"] == 403
    assert (
        client.post("/open311/v2/requests.json", data=form(api_key="app-two-key")).status_code
        == 201
    )


def test_idempotency_key_returns_the_first_request(client: TestClient) -> None:
    headers = {"Idempotency-Key": "app-77-submission-1"}
    first = client.post("/open311/v2/requests.json", data=form(), headers=headers)
    again = client.post(
        "/open311/v2/requests.json", data=form(description="别的内容"), headers=headers
    )
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    with runtime.get_database().session() as db_session:
        assert len(db_session.scalars(select(Appeal).where(Appeal.channel == "open311")).all()) == 1


def test_forms_in_chinese_charsets_are_decoded_and_garbage_refused(client: TestClient) -> None:
    for charset in ("GBK", "gb18030", "gb2312", "CP936"):
        body = urlencode(form(), encoding=charset)
        response = client.post(
            "/open311/v2/requests.json",
            content=body,
            headers={"Content-Type": f"application/x-www-form-urlencoded; charset={charset}"},
        )
        assert response.status_code == 201, response.text
        number = response.json()[0]["service_request_id"]
        with runtime.get_database().session() as db_session:
            appeal = db_session.scalars(
                select(Appeal)
                .join(WorkOrder, WorkOrder.appeal_id == Appeal.id)
                .where(WorkOrder.number == number)
            ).one()
        assert (appeal.text, appeal.caller_name) == (TEXT, "王小明"), charset
    gbk = client.post(
        "/open311/v2/requests.json",
        content=urlencode(form(), encoding="gbk"),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert gbk.status_code == 201, gbk.text
    garbage = (
        "service_code=" + leaf_code() + "&address_string=x&description=" + quote(b"\xff\xfe\xff")
    )
    bad = client.post(
        "/open311/v2/requests.json",
        content=garbage,
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=gbk"},
    )
    assert bad.status_code == 400
    assert bad.json()[0]["code"] == 400
