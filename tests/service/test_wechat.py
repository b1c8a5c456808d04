"""The WeChat official-account endpoint, driven with the requests WeChat's servers send."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable
from typing import Any
from xml.etree.ElementTree import fromstring

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from router.workorders.models import Appeal
from service import runtime
from service.channels.models import WechatMessage
from service.channels.wechat import parse_message, signature

TOKEN = "hotline-wechat-token"
OPENID = "oX7Fq5Wm3yLkT9aJ0nB2cD4eF6gH"
ACCOUNT = "gh_3c884a361561"
TEXT = "人民路和解放路交叉口的红绿灯坏了，早高峰很堵，请尽快修一下。"


@pytest.fixture
def wechat(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> TestClient:
    monkeypatch.setenv("HOTLINE_WECHAT_TOKEN", TOKEN)
    runtime.get_settings.cache_clear()
    return client


def signed(
    token: str = TOKEN, *, timestamp: int | None = None, nonce: str | None = None
) -> dict[str, str]:
    """Query parameters as WeChat signs them: sha1 of the sorted [token, timestamp, nonce]."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    nonce = nonce or str(uuid.uuid4().int % 10**10)
    sig = hashlib.sha1("".join(sorted([token, ts, nonce])).encode()).hexdigest()
    return {"signature": sig, "timestamp": ts, "nonce": nonce, "openid": OPENID}


def text_message(content: str = TEXT, msg_id: str = "23467890123456789") -> str:
    return (
        "<xml>"
        f"<ToUserName><![CDATA[{ACCOUNT}]]></ToUserName>"
        f"<FromUserName><![CDATA[{OPENID}]]></FromUserName>"
        f"<CreateTime>{int(time.time())}</CreateTime>"
        "<MsgType><![CDATA[text]]></MsgType>"
        f"<Content><![CDATA[{content}]]></Content>"
        f"<MsgId>{msg_id}</MsgId>"
        "</xml>"
    )


def post(client: TestClient, xml: str | bytes, params: dict[str, str] | None = None) -> Any:
    body = xml.encode("utf-8") if isinstance(xml, str) else xml
    headers = {"Content-Type": "text/xml"}
    return client.post("/wechat", params=params or signed(), content=body, headers=headers)


def reply_of(response: Any) -> dict[str, str]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/xml")
    root = fromstring(response.content)
    return {child.tag: child.text or "" for child in root}


def test_signature_is_sha1_of_the_sorted_parts() -> None:
    # The example of WeChat's documentation, computed independently of our helper.
    parts = sorted(["token", "1409304348", "xxxxxx"])
    assert (
        signature("token", "1409304348", "xxxxxx")
        == hashlib.sha1("".join(parts).encode()).hexdigest()
    )


def test_echo_check_answers_echostr_only_with_a_valid_signature(wechat: TestClient) -> None:
    response = wechat.get("/wechat", params={**signed(), "echostr": "7296510932865123456"})
    assert response.status_code == 200
    assert response.text == "7296510932865123456"
    assert response.headers["content-type"].startswith("text/plain")
    for params in (
        {**signed("another-token"), "echostr": "1"},
        {"timestamp": str(int(time.time())), "nonce": "1", "echostr": "1"},
        {"echostr": "1"},
    ):
        response = wechat.get("/wechat", params=params)
        assert response.status_code == 403, params
        assert response.json()["error"] == "InvalidSignature"


def test_endpoint_is_absent_without_a_token(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HOTLINE_WECHAT_TOKEN", raising=False)
    runtime.get_settings.cache_clear()
    assert client.get("/wechat", params={**signed(), "echostr": "1"}).status_code == 404
    assert post(client, text_message()).status_code == 404


def test_text_message_becomes_an_appeal_and_the_reply_names_the_work_order(
    wechat: TestClient, login: Callable[[str], dict[str, str]]
) -> None:
    reply = reply_of(post(wechat, text_message()))
    assert reply["MsgType"] == "text"
    assert reply["ToUserName"] == OPENID and reply["FromUserName"] == ACCOUNT
    assert reply["Content"].startswith("您的诉求已受理，工单号：")
    number = reply["Content"].split("工单号：")[1].split("。")[0]

    with runtime.get_database().session() as db_session:
        appeal = db_session.scalars(
            select(Appeal).where(Appeal.external_id == "23467890123456789")
        ).one()
        assert appeal.channel == "wechat"
        assert appeal.text == TEXT
        assert appeal.work_order is not None and appeal.work_order.number == number
        sender = db_session.scalars(
            select(WechatMessage).where(WechatMessage.appeal_id == appeal.id)
        ).one()
        assert (sender.open_id, sender.account) == (OPENID, ACCOUNT)
    assert (
        wechat.get(f"/api/v1/work-orders/{number}", headers=login("agent")).json()["channel"]
        == "wechat"
    )


def test_a_wechat_retry_of_the_same_message_returns_the_same_work_order(wechat: TestClient) -> None:
    first = reply_of(post(wechat, text_message(msg_id="99887766554433")))["Content"]
    # WeChat retries an unanswered message with a new signature but the same MsgId.
    again = reply_of(post(wechat, text_message(msg_id="99887766554433")))["Content"]
    assert again == first
    with runtime.get_database().session() as db_session:
        count = len(
            db_session.scalars(select(Appeal).where(Appeal.external_id == "99887766554433")).all()
        )
    assert count == 1


def test_a_message_with_a_wrong_signature_is_refused_and_stores_nothing(wechat: TestClient) -> None:
    response = post(wechat, text_message(msg_id="5550001"), params=signed("not-our-token"))
    assert response.status_code == 403
    assert response.json() == {
        "error": "InvalidSignature",
        "detail": "微信签名校验失败",
        "code": "WECHAT_SIGNATURE_INVALID",
        "message": "微信消息签名无效",
    }
    with runtime.get_database().session() as db_session:
        assert (
            db_session.scalars(select(Appeal).where(Appeal.external_id == "5550001")).first()
            is None
        )


def test_a_replayed_request_is_refused(wechat: TestClient) -> None:
    params = signed()
    assert post(wechat, text_message(msg_id="5550002"), params=params).status_code == 200
    replay = post(wechat, text_message(msg_id="5550003"), params=params)
    assert replay.status_code == 403
    assert replay.json()["error"] == "ReplayedRequest"


def test_a_request_outside_the_time_window_is_refused(wechat: TestClient) -> None:
    for age in (-360, 360, 3600):  # the window is 300 s either way
        stale = signed(timestamp=int(time.time()) - age)
        response = post(wechat, text_message(msg_id=f"777{age}"), params=stale)
        assert response.status_code == 403, age
        assert response.json()["error"] == "ReplayedRequest"
        echo = wechat.get("/wechat", params={**stale, "echostr": "1"})
        assert echo.status_code == 403, age


def test_other_messages_get_a_polite_reply_and_no_appeal(wechat: TestClient) -> None:
    image = (
        f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName>"
        f"<FromUserName><![CDATA[{OPENID}]]></FromUserName><CreateTime>1700000000</CreateTime>"
        "<MsgType><![CDATA[image]]></MsgType><PicUrl><![CDATA[http://mmbiz.qpic.cn/x]]></PicUrl>"
        "<MediaId><![CDATA[media_id]]></MediaId><MsgId>1234567890123456</MsgId></xml>"
    )
    reply = reply_of(post(wechat, image))
    assert "仅支持受理文字留言" in reply["Content"]
    event = (
        f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName>"
        f"<FromUserName><![CDATA[{OPENID}]]></FromUserName><CreateTime>1700000000</CreateTime>"
        "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]></Event></xml>"
    )
    assert "感谢关注" in reply_of(post(wechat, event))["Content"]
    response = post(
        wechat, "<xml><Encrypt>x</Encrypt></xml>", params={**signed(), "encrypt_type": "aes"}
    )
    assert response.status_code == 400
    assert "明文模式" in response.json()["detail"]
    with runtime.get_database().session() as db_session:
        assert db_session.scalars(select(Appeal).where(Appeal.channel == "wechat")).first() is None


def test_gbk_message_declared_in_the_xml_is_decoded(wechat: TestClient) -> None:
    body = ('<?xml version="1.0" encoding="GBK"?>' + text_message(msg_id="6660001")).encode("gbk")
    assert "工单号" in reply_of(post(wechat, body))["Content"]
    with runtime.get_database().session() as db_session:
        assert (
            db_session.scalars(select(Appeal.text).where(Appeal.external_id == "6660001")).one()
            == TEXT
        )


UNREADABLE = [
    b"not xml at all",
    b"<xml><ToUserName>a</ToUserName></xml>",
    # An entity-expansion bomb must be refused, never expanded.
    b'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
    b"<xml><Content>&b;</Content></xml>",
    "<xml>中文</xml>".encode("utf-16"),
]


def test_unreadable_messages_are_a_400(wechat: TestClient) -> None:
    for body in UNREADABLE:
        response = post(wechat, body)
        assert response.status_code == 400, body
        assert response.json()["error"] == "InvalidWechatMessage"


def test_parse_message_reads_voice_recognition_as_text() -> None:
    voice = (
        "<xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName><CreateTime>1</CreateTime>"
        "<MsgType>voice</MsgType><MediaId>m</MediaId><Format>amr</Format>"
        "<Recognition>楼下噪音太大了</Recognition><MsgId>42</MsgId></xml>"
    )
    message = parse_message(voice.encode())
    assert (message.msg_type, message.content, message.key) == (
        "voice",
        "楼下噪音太大了",
        "wechat:42",
    )
