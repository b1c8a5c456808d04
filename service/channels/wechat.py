"""WeChat official-account server protocol (plaintext mode): signatures, messages, replies.

WeChat signs every request to the server URL with query parameters `signature`, `timestamp`
and `nonce`, where signature = sha1 of the three strings [token, timestamp, nonce] sorted and
concatenated. GET carries `echostr`, returned as is to prove we hold the token; POST carries an
XML message, answered by a passive XML reply (within WeChat's 5 s). WeChat retries an
unanswered message with the same `MsgId`, so the MsgId is the appeal's idempotency key.

Replays are refused: the timestamp must be within the window of now, and a POST's nonce must not
have been seen within it (`wechat_nonces`). The encrypted ("safe") mode is not supported.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from dataclasses import dataclass
from datetime import timedelta
from xml.etree.ElementTree import Element

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, fromstring
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from router.errors import AppError, Forbidden
from router.orm import utcnow
from service.channels.limits import (
    BodyEncodingError,
    canonical_charset,
    charset_of,
    decode_text,
)
from service.channels.models import WechatMessage, WechatNonce

__all__ = [
    "InvalidSignature",
    "InvalidWechatMessage",
    "ReplayedRequest",
    "WechatMessageIn",
    "check_signature",
    "check_timestamp",
    "claim_nonce",
    "parse_message",
    "record_message",
    "signature",
    "text_reply",
]

MAX_FIELD = 64
_XML_DECLARATION = re.compile(rb"^\s*<\?xml[^>]*\?>")
_DECLARED_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*encoding\s*=\s*["']([A-Za-z0-9_.\-]+)["']""")


class InvalidSignature(Forbidden):
    """Missing or wrong WeChat signature: the request does not come from WeChat."""


class ReplayedRequest(Forbidden):
    """A signed request sent again: its timestamp is outside the window or its nonce was used."""


class InvalidWechatMessage(AppError):
    """The XML body is not a WeChat message we can read."""


@dataclass(frozen=True, kw_only=True)
class WechatMessageIn:
    to_user: str
    from_user: str
    create_time: int
    msg_type: str
    content: str = ""
    msg_id: str | None = None
    event: str = ""

    @property
    def key(self) -> str:
        """WeChat's own deduplication key: MsgId, or sender + CreateTime when there is none."""
        if self.msg_id:
            return f"wechat:{self.msg_id}"
        return f"wechat:{self.from_user}:{self.create_time}"


def signature(token: str, timestamp: str, nonce: str) -> str:
    return hashlib.sha1("".join(sorted((token, timestamp, nonce))).encode("utf-8")).hexdigest()


def check_signature(
    token: str, *, sig: str | None, timestamp: str | None, nonce: str | None
) -> None:
    if not sig or not timestamp or not nonce:
        raise InvalidSignature("缺少微信签名参数（signature、timestamp、nonce）")
    if len(timestamp) > MAX_FIELD or len(nonce) > MAX_FIELD:
        raise InvalidSignature("微信签名参数过长")
    expected = signature(token, timestamp, nonce)
    if not hmac.compare_digest(expected.encode(), sig.strip().lower().encode()):
        raise InvalidSignature("微信签名校验失败")


def check_timestamp(timestamp: str, *, window: int, now: float | None = None) -> None:
    try:
        sent = int(timestamp)
    except ValueError:
        raise ReplayedRequest("timestamp 不是整数") from None
    if abs((time.time() if now is None else now) - sent) > window:
        raise ReplayedRequest(f"请求时间戳超出 {window} 秒的有效期")


def claim_nonce(*, db_session: Session, nonce: str, window: int) -> None:
    """Record `nonce` as used; `ReplayedRequest` if it was used within the window.

    Rows are kept for twice the window: a timestamp accepted up to one window in the future
    stays valid until one window after it.
    """
    now = utcnow()
    db_session.execute(
        delete(WechatNonce).where(WechatNonce.seen_at < now - timedelta(seconds=2 * window))
    )
    try:
        with db_session.begin_nested():
            db_session.add(WechatNonce(nonce=nonce, seen_at=now))
            db_session.flush()
    except IntegrityError:
        raise ReplayedRequest("该请求已处理过（nonce 重复）") from None


def _child_text(root: Element, name: str) -> str:
    node = root.find(name)
    return (node.text or "").strip() if node is not None else ""


def parse_message(body: bytes, *, content_type: str | None = None) -> WechatMessageIn:
    """Parse a WeChat XML message safely (no entities, no DTDs) in UTF-8 or GB18030/GBK."""
    charset = charset_of(content_type)
    declared = _DECLARED_ENCODING.match(body)
    if charset is None and declared is not None:
        charset = canonical_charset(declared.group(1).decode("ascii"))
    try:
        text = decode_text(_XML_DECLARATION.sub(b"", body, count=1), charset)
    except BodyEncodingError as exc:
        raise InvalidWechatMessage(str(exc)) from None
    try:
        root = fromstring(text, forbid_dtd=True)
    except (ParseError, DefusedXmlException) as exc:
        raise InvalidWechatMessage(f"消息不是有效的 XML：{exc}") from None
    if root.tag != "xml":
        raise InvalidWechatMessage("消息的根元素应为 <xml>")
    to_user = _child_text(root, "ToUserName")
    from_user = _child_text(root, "FromUserName")
    msg_type = _child_text(root, "MsgType").lower()
    if not to_user or not from_user or not msg_type:
        raise InvalidWechatMessage("消息缺少 ToUserName、FromUserName 或 MsgType")
    if len(to_user) > MAX_FIELD or len(from_user) > MAX_FIELD:
        raise InvalidWechatMessage("ToUserName 或 FromUserName 过长")
    try:
        create_time = int(_child_text(root, "CreateTime") or "0")
    except ValueError:
        raise InvalidWechatMessage("CreateTime 不是整数") from None
    content = _child_text(root, "Content")
    if msg_type == "voice":  # WeChat's speech recognition, when the account has it enabled
        content = _child_text(root, "Recognition")
    msg_id = _child_text(root, "MsgId") or None
    if msg_id is not None and len(msg_id) > MAX_FIELD:
        raise InvalidWechatMessage("MsgId 过长")
    return WechatMessageIn(
        to_user=to_user,
        from_user=from_user,
        create_time=create_time,
        msg_type=msg_type,
        content=content,
        msg_id=msg_id,
        event=_child_text(root, "Event").lower(),
    )


def _cdata(value: str) -> str:
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def text_reply(message: WechatMessageIn, content: str, *, now: int | None = None) -> str:
    """The passive reply: a text message from the account back to the sender."""
    created = int(time.time()) if now is None else now
    return (
        "<xml>"
        f"<ToUserName>{_cdata(message.from_user)}</ToUserName>"
        f"<FromUserName>{_cdata(message.to_user)}</FromUserName>"
        f"<CreateTime>{created}</CreateTime>"
        "<MsgType><![CDATA[text]]></MsgType>"
        f"<Content>{_cdata(content)}</Content>"
        "</xml>"
    )


def record_message(*, db_session: Session, message: WechatMessageIn, appeal_id: int) -> None:
    """Remember who sent the message that became `appeal_id` (once per message key)."""
    exists = db_session.scalar(
        select(WechatMessage.id).where(WechatMessage.message_key == message.key)
    )
    if exists is not None:
        return
    try:
        with db_session.begin_nested():
            db_session.add(
                WechatMessage(
                    message_key=message.key,
                    open_id=message.from_user,
                    account=message.to_user,
                    appeal_id=appeal_id,
                )
            )
            db_session.flush()
    except IntegrityError:
        pass  # a concurrent retry of the same message recorded it first
