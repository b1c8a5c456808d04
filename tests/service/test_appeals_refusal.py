"""Intake refuses text with no Chinese content (or only whitespace) on every channel; short
Chinese text is kept and goes to review with the gate's flags; /classify shows the flags."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from router.workorders.models import Appeal
from service import runtime
from service.api.appeals import REFUSED_TEXT
from service.api.wechat import NOT_CHINESE
from service.channels.phone_queue import PoisonMessage, RefusedText, parse_transcript

Login = Callable[[str], dict[str, str]]

ENGLISH = "The streetlight outside my building has been broken for two weeks, please fix it."
REFUSED = [
    (ENGLISH, "no_chinese"),
    ("hello", "no_chinese"),
    ("😀😡👍🙏", "no_chinese"),
    ("13800138000", "no_chinese"),
    ("https://example.com/a", "no_chinese"),
    ("   \n\t\u3000 ", "blank"),
]


def appeal_count() -> int:
    with runtime.get_database().session() as db_session:
        return int(db_session.scalar(select(func.count()).select_from(Appeal)) or 0)


def assert_refused(response: Any, code: str) -> None:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "ValidationError"
    [error] = [e for e in body["detail"] if e["loc"] == ["body", "text"]]
    assert error["type"] == code
    assert error["msg"] == REFUSED_TEXT[code]
    assert "中文" in error["msg"]


@pytest.mark.parametrize(("text", "code"), REFUSED)
def test_appeal_without_chinese_is_a_422_and_stores_nothing(
    client: TestClient, login: Login, text: str, code: str
) -> None:
    before = appeal_count()
    response = client.post(
        "/api/v1/appeals", json={"channel": "web", "text": text}, headers=login("agent")
    )
    assert_refused(response, code)
    assert appeal_count() == before


def test_short_chinese_appeal_is_accepted_and_sent_to_review(
    client: TestClient, login: Login
) -> None:
    response = client.post(
        "/api/v1/appeals", json={"channel": "phone", "text": "路灯坏了"}, headers=login("agent")
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["state"] == "review"
    assert body["next"] == "awaiting_review"
    assert "too_short" in body["suggestion"]["ood"]
    assert body["suggestion"]["auto_dispatch"] is False
    order = client.get(f"/api/v1/work-orders/{body['number']}", headers=login("supervisor"))
    assert "too_short" in order.json()["suggestion"]["ood"]  # the agent sees why


def test_mixed_chinese_and_english_appeal_is_accepted(client: TestClient, login: Login) -> None:
    text = "小区的WiFi信号太差，联通宽带经常断网，打客服10010也没人处理，希望尽快解决。"
    response = client.post(
        "/api/v1/appeals", json={"channel": "web", "text": text}, headers=login("agent")
    )
    assert response.status_code == 201, response.text
    assert "no_chinese" not in response.json()["suggestion"]["ood"]


def test_classify_returns_the_gate_flags(client: TestClient, login: Login) -> None:
    english = client.post("/api/v1/classify", json={"text": ENGLISH}, headers=login("agent"))
    assert english.status_code == 200, english.text
    assert "no_chinese" in english.json()["ood"]
    assert english.json()["auto_dispatch"] is False
    short = client.post("/api/v1/classify", json={"text": "路灯坏了"}, headers=login("agent"))
    assert short.json()["ood"] == ["too_short"]


# --- phone ------------------------------------------------------------------------------------


def transcript(call_id: str, text: str) -> bytes:
    return json.dumps({"call_id": call_id, "text": text}, ensure_ascii=False).encode()


def test_phone_transcript_without_chinese_is_a_422(client: TestClient, login: Login) -> None:
    headers = {**login("agent"), "Content-Type": "application/json"}
    before = appeal_count()
    response = client.post(
        "/api/v1/phone/transcripts", content=transcript("R-1", ENGLISH), headers=headers
    )
    assert_refused(response, "no_chinese")
    assert appeal_count() == before


def test_short_phone_transcript_is_kept_and_reviewed(client: TestClient, login: Login) -> None:
    headers = {**login("agent"), "Content-Type": "application/json"}
    response = client.post(
        "/api/v1/phone/transcripts", content=transcript("R-2", "井盖丢了"), headers=headers
    )
    assert response.status_code == 201, response.text
    assert response.json()["state"] == "review"
    assert "too_short" in response.json()["suggestion"]["ood"]


@pytest.mark.parametrize("text", [ENGLISH, "😀😀", "110"])
def test_queued_transcript_without_chinese_is_poison(text: str) -> None:
    # poison is acked and dead-lettered with its reason (see service.channels.phone_queue)
    with pytest.raises(RefusedText) as refused:
        parse_transcript(transcript("Q-1", text))
    assert isinstance(refused.value, PoisonMessage)
    assert refused.value.code == "no_chinese"
    assert refused.value.call_id == "Q-1"
    assert "no Chinese" in refused.value.reason


def test_queued_short_transcript_is_not_poison() -> None:
    assert parse_transcript(transcript("Q-2", "停水了")).text == "停水了"


# --- WeChat and Open311 -----------------------------------------------------------------------


def test_wechat_message_without_chinese_gets_a_polite_reply_and_no_order(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.service.test_wechat import TOKEN, post, reply_of, text_message

    monkeypatch.setenv("HOTLINE_WECHAT_TOKEN", TOKEN)
    runtime.get_settings.cache_clear()
    before = appeal_count()
    reply = reply_of(post(client, text_message("hello", msg_id="990001")))
    assert reply["Content"] == NOT_CHINESE
    blank = reply_of(post(client, text_message("   ", msg_id="990002")))
    assert "为空" in blank["Content"]
    assert appeal_count() == before


def test_open311_description_without_chinese_is_a_422(client: TestClient) -> None:
    from tests.service.test_open311 import form

    before = appeal_count()
    response = client.post("/open311/v2/requests.json", data=form(description=ENGLISH))
    assert response.status_code == 422, response.text
    assert response.json() == [{"code": 422, "description": REFUSED_TEXT["no_chinese"]}]
    assert appeal_count() == before
