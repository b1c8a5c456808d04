"""WeChat official-account server endpoint (plaintext mode): `GET /wechat` and `POST /wechat`.

Configure the account's server URL as https://<host>/wechat with the token in
`HOTLINE_WECHAT_TOKEN`; without a token the endpoint answers 404. Protocol details and replay
protection are in `service.channels.wechat`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse, Response

from classifier.ood import intake_refusal
from router.errors import InvalidInput, NotFound
from router.workorders import queries
from router.workorders import service as workorders
from router.workorders.workflow import Role
from service import intake
from service.channels import wechat
from service.channels.limits import MAX_TEXT_LENGTH, take_intake_hits
from service.config import Settings, get_settings
from service.observability import metrics
from service.runtime import get_database

router = APIRouter(tags=["wechat"])

XML_MEDIA_TYPE = "application/xml"
SignatureParam = Annotated[str | None, Query(max_length=128)]
ShortParam = Annotated[str | None, Query(max_length=64)]
ERRORS: dict[int | str, dict[str, object]] = {
    400: {"description": "Unreadable message, or the encrypted mode"},
    403: {"description": "Missing or wrong signature, or a replayed request"},
    404: {"description": "The WeChat channel is not configured"},
}

MESSAGE_EXAMPLE = (
    "<xml><ToUserName><![CDATA[gh_3c884a361561]]></ToUserName>"
    "<FromUserName><![CDATA[oX7Fq5Wm3yLkT9aJ0nB2cD4eF6gH]]></FromUserName>"
    "<CreateTime>1763860000</CreateTime><MsgType><![CDATA[text]]></MsgType>"
    "<Content><![CDATA[人民路和解放路交叉口的红绿灯坏了]]></Content>"
    "<MsgId>23467890123456789</MsgId></xml>"
)
ACCEPTED = "您的诉求已受理，工单号：{number}。我们将尽快转交相关部门办理，请留意后续回复。"
WELCOME = (
    "感谢关注12345政务服务便民热线！"
    "请直接用文字描述您的诉求（时间、地点、具体问题），我们会尽快受理。"
)
TEXT_ONLY = "您好，目前仅支持受理文字留言，请用文字描述您的诉求，或拨打12345热线。"
EMPTY_TEXT = "您好，留言内容为空，请用文字描述您的诉求。"
NOT_CHINESE = (
    "您好，我们目前只能受理中文留言，请用中文描述您的诉求（时间、地点、具体问题），"
    "或拨打12345热线。"
)
TOO_LONG = "您好，留言内容过长，请精简到 {limit} 字以内后重新发送。"
TOO_FAST = "您好，您提交得过于频繁，请约 {seconds} 秒后再试。"


def _token(settings: Settings) -> str:
    token = settings.wechat_token.get_secret_value()
    if not token:
        raise NotFound("微信公众号接入未启用")
    return token


@router.get(
    "/wechat",
    response_class=PlainTextResponse,
    responses=ERRORS,
    summary="WeChat server URL check (echo)",
)
def wechat_echo(
    signature: SignatureParam = None,
    timestamp: ShortParam = None,
    nonce: ShortParam = None,
    echostr: Annotated[str, Query(max_length=256)] = "",
) -> PlainTextResponse:
    """Answer WeChat's server check with `echostr` when the signature is ours."""
    settings = get_settings()
    token = _token(settings)
    wechat.check_signature(token, sig=signature, timestamp=timestamp, nonce=nonce)
    assert timestamp is not None  # checked above
    wechat.check_timestamp(timestamp, window=settings.wechat_replay_window_seconds)
    return PlainTextResponse(echostr)


@router.post(
    "/wechat",
    response_class=Response,
    responses={200: {"content": {XML_MEDIA_TYPE: {}}}, **ERRORS},
    summary="WeChat message push (passive XML reply)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"text/xml": {"schema": {"type": "string"}, "example": MESSAGE_EXAMPLE}},
        }
    },
)
async def wechat_message(
    request: Request,
    signature: SignatureParam = None,
    timestamp: ShortParam = None,
    nonce: ShortParam = None,
    encrypt_type: ShortParam = None,
) -> Response:
    """A signed message: text becomes an appeal; the reply names its work-order number."""
    settings = get_settings()
    token = _token(settings)
    wechat.check_signature(token, sig=signature, timestamp=timestamp, nonce=nonce)
    assert timestamp is not None and nonce is not None  # checked above
    wechat.check_timestamp(timestamp, window=settings.wechat_replay_window_seconds)
    if encrypt_type and encrypt_type.lower() != "raw":
        raise InvalidInput("仅支持明文模式，请在公众号后台将消息加解密方式设为明文模式")
    body = await request.body()
    reply = await run_in_threadpool(
        _handle_message,
        settings=settings,
        nonce=nonce,
        body=body,
        content_type=request.headers.get("content-type"),
    )
    if reply is None:
        return PlainTextResponse("success")  # "no reply" in WeChat's protocol
    return Response(reply, media_type=XML_MEDIA_TYPE)


def _handle_message(
    *, settings: Settings, nonce: str, body: bytes, content_type: str | None
) -> str | None:
    database = get_database()
    window = settings.wechat_replay_window_seconds
    with database.session() as db_session:
        wechat.claim_nonce(db_session=db_session, nonce=nonce, window=window)
    message = wechat.parse_message(body, content_type=content_type)
    if message.msg_type == "event":
        return wechat.text_reply(message, WELCOME) if message.event == "subscribe" else None
    if message.msg_type not in ("text", "voice") or (
        message.msg_type == "voice" and not message.content
    ):
        return wechat.text_reply(message, TEXT_ONLY)
    refusal = intake_refusal(message.content)  # blank, or no Chinese: no work order
    if refusal is not None:
        metrics.record_refused("wechat")
        return wechat.text_reply(message, EMPTY_TEXT if refusal == "blank" else NOT_CHINESE)
    if len(message.content) > MAX_TEXT_LENGTH:
        return wechat.text_reply(message, TOO_LONG.format(limit=MAX_TEXT_LENGTH))

    with database.session() as db_session:
        known = workorders.find_by_idempotency_key(db_session=db_session, key=message.key)
        number = known.number if known is not None else None
    if number is None:
        # A retry of a known message is not a new submission: only new ones count.
        # Only the openid: every message comes from WeChat's own servers, so their address says
        # nothing about the citizen, and the signed openid cannot be varied by a client.
        retry_after = take_intake_hits(database, settings, callers=[f"wechat:{message.from_user}"])
        if retry_after is not None:
            return wechat.text_reply(message, TOO_FAST.format(seconds=int(retry_after) + 1))
        result = intake.submit(
            database=database,
            settings=settings,
            appeal=workorders.AppealInput(
                channel="wechat",
                text=message.content,
                idempotency_key=message.key,
                external_id=message.msg_id or message.key,
            ),
            actor="wechat",
            role=Role.SYSTEM,
        )
        number = result.number
    with database.session() as db_session:
        order = queries.get_by_number_or_raise(db_session=db_session, number=number)
        wechat.record_message(db_session=db_session, message=message, appeal_id=order.appeal_id)
    return wechat.text_reply(message, ACCEPTED.format(number=number))
