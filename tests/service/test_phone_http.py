"""Phone transcripts over HTTP: the `intake.phone` queue's payload, posted by the call centre."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from router.workorders.models import Appeal
from service import runtime

Login = Callable[[str], dict[str, str]]

TRANSCRIPT: dict[str, object] = {
    "call_id": "CC-20261123-000417",
    "text": "喂，你好，我想反映一下，我们小区门口那个路灯坏了半个多月了，晚上黑乎乎的，"
    "老人出门不安全。",
    "caller_phone": "13800138000",
    "caller_name": "李女士",
    "address": "A3区联丰路米兰春天小区",
    "agent_id": "1024",
    "started_at": "2026-11-23T09:15:00",
    "duration_seconds": 96.5,
    "asr_confidence": 0.91,
}
URL = "/api/v1/phone/transcripts"


def api_key(client: TestClient, login: Login, department: str) -> dict[str, str]:
    response = client.post(
        f"/api/v1/departments/{department}/api-keys",
        json={"name": f"{department} system"},
        headers=login("admin"),
    )
    assert response.status_code == 201, response.text
    return {"X-API-Key": response.json()["key"]}


def post(
    client: TestClient, headers: dict[str, str], body: bytes, content_type: str = "application/json"
) -> Any:
    return client.post(URL, content=body, headers={**headers, "Content-Type": content_type})


def utf8(payload: dict[str, object]) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")


def appeals_of(call_id: str) -> list[Appeal]:
    with runtime.get_database().session() as db_session:
        return list(db_session.scalars(select(Appeal).where(Appeal.external_id == call_id)))


def test_call_centre_key_submits_a_transcript_once(client: TestClient, login: Login) -> None:
    centre = api_key(client, login, "hotline")
    first = post(client, centre, utf8(TRANSCRIPT))
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["state"] in ("dispatched", "review") and body["suggestion"]["category_code"]
    again = post(client, centre, utf8({**TRANSCRIPT, "text": "重复推送的同一通电话"}))
    assert again.status_code == 200
    assert again.json()["number"] == body["number"]

    [appeal] = appeals_of(str(TRANSCRIPT["call_id"]))
    assert appeal.channel == "phone"
    assert appeal.text == TRANSCRIPT["text"]
    assert (appeal.caller_phone, appeal.caller_name) == ("13800138000", "李女士")
    assert appeal.idempotency_key == f"phone:{TRANSCRIPT['call_id']}", "shared with the queue"


def test_agent_token_may_submit_and_other_departments_may_not(
    client: TestClient, login: Login
) -> None:
    assert post(client, login("agent"), utf8({**TRANSCRIPT, "call_id": "A-1"})).status_code == 201
    assert post(client, {}, utf8({**TRANSCRIPT, "call_id": "A-2"})).status_code == 401
    housing = api_key(client, login, "housing")
    refused = post(client, housing, utf8({**TRANSCRIPT, "call_id": "A-3"}))
    assert refused.status_code == 403
    assert refused.json()["error"] == "Forbidden"
    assert (
        post(client, login("dept_housing"), utf8({**TRANSCRIPT, "call_id": "A-4"})).status_code
        == 403
    )
    assert appeals_of("A-3") == [] and appeals_of("A-4") == []


def test_gbk_transcripts_declared_or_not_are_decoded(client: TestClient, login: Login) -> None:
    agent = login("agent")
    gbk = json.dumps({**TRANSCRIPT, "call_id": "G-1"}, ensure_ascii=False).encode("gbk")
    assert post(client, agent, gbk, "application/json; charset=GBK").status_code == 201
    gb18030 = json.dumps({**TRANSCRIPT, "call_id": "G-2"}, ensure_ascii=False).encode("gb18030")
    assert post(client, agent, gb18030).status_code == 201  # undeclared: detected
    assert [a.text for a in appeals_of("G-1") + appeals_of("G-2")] == [TRANSCRIPT["text"]] * 2


def test_bad_transcripts_are_a_400_with_the_reason(client: TestClient, login: Login) -> None:
    agent = login("agent")
    cases = [
        (b"not json", "not JSON"),
        (utf8({"text": "没有通话编号"}), "call_id is missing"),
        (utf8({"call_id": "B-1"}), "text is missing"),
        (utf8({**TRANSCRIPT, "call_id": "B-2", "text": "长" * 5001}), "longer than 5000"),
        (utf8({**TRANSCRIPT, "call_id": "B-3", "started_at": "yesterday"}), "ISO 8601"),
        (utf8({**TRANSCRIPT, "call_id": "B-6", "started_at": "0001-01-01T00:00"}), "out of range"),
        (utf8({**TRANSCRIPT, "call_id": "B-4", "caller_phone": "1" * 40}), "caller_phone"),
        (utf8({**TRANSCRIPT, "call_id": "B-5", "appeal_type": "rant"}), "appeal_type"),
        ("\xff\xfe".encode("latin-1") + b"{}", "neither UTF-8 nor GB18030"),
    ]
    for body, reason in cases:
        response = post(client, agent, body)
        assert response.status_code == 400, (body[:40], response.text)
        assert response.json()["error"] == "InvalidTranscript"
        assert reason in response.json()["detail"], (reason, response.json())
    bad_charset = post(client, agent, utf8(TRANSCRIPT), "application/json; charset=big5")
    assert bad_charset.status_code == 415
